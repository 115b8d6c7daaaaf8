"""Shared fixtures: the app in-process (ASGI) and real uvicorn servers in subprocesses.

Use the ASGI ``client`` only for responses that end; heartbeats, incremental
delivery, disconnects and signals need ``server`` (a real process on a free port).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

import httpx
import pytest
from skillrun.http.app import create_app
from skillrun.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "test-key-0123456789"
OTHER_KEY = "other-key-9876543210"
REQUIRE_ALL = os.environ.get("SKILLRUN_REQUIRE_ALL") == "1"


def require_tool(name: str) -> str:
    """The tool's path; skip without it, but fail under SKILLRUN_REQUIRE_ALL=1 (CI)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed"
        if REQUIRE_ALL:
            pytest.fail(message + " (SKILLRUN_REQUIRE_ALL=1 forbids skipping)")
        pytest.skip(message)
    return path


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = dict(
        api_keys=[API_KEY, OTHER_KEY],
        validate_responses=True,
        rate_limit="100000/minute",
        rate_limit_anonymous="100000/minute",
        # Skills with http.request (web.summarize, doc.pipeline's webhook) must never
        # reach outside this machine, whatever URL a fuzzer generates.
        http_public=False,
    )
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
def app_factory() -> Callable[..., Any]:
    return lambda **overrides: create_app(make_settings(**overrides))


def asgi_client(app: Any) -> httpx.AsyncClient:
    """An in-process client of ``app`` with the test key preset."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers={"x-api-key": API_KEY}
    )


@pytest.fixture
async def client(app_factory: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a new app (fresh rate limits and runs) for each test."""
    async with asgi_client(app_factory()) as c:
        yield c


@pytest.fixture(scope="module")
def shared_app() -> Any:
    # Building an app costs ~0.3 s; modules whose tests change no state that
    # matters (the rate limit is far away) share one.
    return create_app(make_settings())


@pytest.fixture
async def shared_client(shared_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the module's shared app; a module opts in by aliasing ``client`` to it."""
    async with asgi_client(shared_app) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A real ``skillrun serve`` process."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def start_server(
    tmp_path: Path,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    command: list[str] | None = None,
) -> Server:
    """``command`` (default: this interpreter's ``-m skillrun``) ``serve --port P args``."""
    port = free_port()
    log_path = tmp_path / f"server-{port}.log"
    full_env = {
        **os.environ,
        "SKILLRUN_API_KEYS": f"{API_KEY},{OTHER_KEY}",
        "SKILLRUN_RATE_LIMIT": "100000/minute",
        "SKILLRUN_RATE_LIMIT_ANONYMOUS": "100000/minute",
        "SKILLRUN_HTTP_PUBLIC": "0",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [*(command or [sys.executable, "-m", "skillrun"]), "serve", "--port", str(port), *(args or [])],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=tmp_path,
        )
    server = Server(proc, port, log_path, env or {})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log()}")
        try:
            if httpx.get(server.url + "/v1/health/live", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server did not start:\n{server.log()}")


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def factory(env: dict[str, str] | None = None, args: list[str] | None = None) -> Server:
        s = start_server(tmp_path, env, args)
        started.append(s)
        return s

    yield factory
    for s in started:
        s.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("server"))
    yield s
    s.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One ``redis-server`` (AOF on) for the session; tests keep apart by key prefix."""
    from redis_util import RedisServer

    server = RedisServer(require_tool("redis-server"), tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Three local Redis Cluster masters (``redis-cli --cluster create``), for the session."""
    from redis_util import start_cluster

    nodes = start_cluster(require_tool("redis-server"), require_tool("redis-cli"), tmp_path_factory.mktemp("cluster"))
    yield nodes
    for node in nodes:
        node.stop()
