"""Fixtures for the client tests: a real ``skillrun serve`` process, both clients, and two
small real-socket helpers (a TCP proxy that cuts connections, a scripted HTTP server).

Every behaviour runs through ``Client`` and ``AsyncClient`` (the ``kind`` parameter). The
tests themselves are async; sync calls run in a worker thread (``call``/``collect``) so the
proxy and the scripted server, which live on the test's event loop, keep running.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator

import anyio
import httpx
import pytest

from skillrun_client import AsyncClient, AsyncStream, Backoff, Client, Event, RunResult, Stream

API_KEY = "client-test-key-0123456789"
FAST = Backoff(initial=0.01, maximum=0.05, jitter=0.1)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(tmp: Path, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    log_path = tmp / f"server-{port}.log"
    full_env = {
        **os.environ,
        "SKILLRUN_API_KEYS": API_KEY,
        "SKILLRUN_RATE_LIMIT": "100000/minute",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "skillrun", "serve", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=tmp,
        )  # fmt: skip
    server = Server(proc, f"http://127.0.0.1:{port}", log_path)
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
    proc.kill()
    raise RuntimeError(f"server did not start:\n{server.log()}")


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.kill()
    server.proc.wait(10)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("pyclient-server"))
    yield s
    stop_server(s)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def factory(env: dict[str, str] | None = None) -> Server:
        started.append(start_server(tmp_path, env))
        return started[-1]

    yield factory
    for s in started:
        stop_server(s)


AnyClient = Client | AsyncClient


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_client(kind: str) -> AsyncIterator[Callable[..., AnyClient]]:
    """``make_client(base_url, **options)`` → a Client or AsyncClient (per ``kind``), closed after."""
    made: list[AnyClient] = []

    def factory(base_url: str, **options: Any) -> AnyClient:
        options.setdefault("api_key", API_KEY)
        options.setdefault("backoff", FAST)
        c: AnyClient = (Client if kind == "sync" else AsyncClient)(base_url, **options)
        made.append(c)
        return c

    yield factory
    for c in made:
        if isinstance(c, AsyncClient):
            await c.close()
        else:
            c.close()


@pytest.fixture
def client(make_client: Callable[..., AnyClient], server: Server) -> AnyClient:
    return make_client(server.url)


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a client method: awaited when async, in a worker thread when sync."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args, **kwargs)
    return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))


async def collect(stream: Stream | AsyncStream, limit: int | None = None) -> list[Event]:
    """Every event of a stream (inside its context manager), or the first ``limit``."""
    if isinstance(stream, AsyncStream):
        out: list[Event] = []
        async with stream:
            async for e in stream:
                out.append(e)
                if len(out) == limit:
                    break
        return out

    def run() -> list[Event]:
        got: list[Event] = []
        with stream:
            for e in stream:
                got.append(e)
                if len(got) == limit:
                    break
        return got

    return await anyio.to_thread.run_sync(run)


async def in_thread_or_loop(stream: Stream | AsyncStream, sync_fn: Callable[[Stream], Any], async_fn: Callable[[AsyncStream], Awaitable[Any]]) -> Any:
    """Run one of two spellings of the same steps, for the stream's kind."""
    if isinstance(stream, AsyncStream):
        return await async_fn(stream)
    return await anyio.to_thread.run_sync(lambda: sync_fn(stream))


async def result_of(stream: Stream | AsyncStream) -> RunResult:
    if isinstance(stream, AsyncStream):
        return await stream.result()
    return await anyio.to_thread.run_sync(stream.result)


# --- a TCP proxy that cuts connections --------------------------------------------------


@dataclass
class Proxy:
    """Forwards to ``upstream``; connection *i* is cut after ``cuts[i]`` bytes to the client.

    ``reset=True`` aborts (RST) instead of closing (FIN/EOF). Connections past the list
    of cuts pass everything. ``requests`` collects each connection's first bytes.
    """

    upstream_port: int
    cuts: list[int] = field(default_factory=list)
    reset: bool = False
    requests: list[bytes] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    port: int = 0
    _server: asyncio.base_events.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._forward(client_r, client_w)
        except asyncio.CancelledError:
            client_w.transport.abort()  # swallowed, so asyncio's stream callback sees a clean end

    async def _forward(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        n = len(self.requests)
        self.requests.append(b"")
        self.sent.append(0)
        limit = self.cuts[n] if n < len(self.cuts) else None
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def upstream() -> None:
            while data := await client_r.read(65536):
                self.requests[n] += data
                up_w.write(data)
                await up_w.drain()

        async def downstream() -> None:
            sent = 0
            while data := await up_r.read(65536):
                if limit is not None and sent + len(data) >= limit:
                    client_w.write(data[: limit - sent])
                    self.sent[n] = limit
                    await client_w.drain()
                    return
                sent += len(data)
                self.sent[n] = sent
                client_w.write(data)
                await client_w.drain()

        up = asyncio.ensure_future(upstream())
        try:
            await downstream()
        except (ConnectionError, OSError):
            pass
        finally:
            up.cancel()
            await asyncio.gather(up, return_exceptions=True)
            up_w.close()
            if self.reset:
                client_w.transport.abort()
            else:
                client_w.close()


# --- a scripted HTTP server -------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Handler = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class ScriptServer:
    """A tiny HTTP/1.1 server on a real socket; connection *i* is answered by ``handlers[i]``
    (the last handler answers any further connection). For answers the real server
    cannot be made to give: every status, broken streams, silence."""

    handlers: list[Handler]
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    _server: asyncio.base_events.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> ScriptServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for t in self._tasks:
            t.cancel()

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self._tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while True:  # keep-alive: one handler per request
                head = await r.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
                body = await r.readexactly(int(headers.get("content-length", "0")))
                req = Request(method, path, headers, body)
                self.requests.append(req)
                handler = self.handlers[min(len(self.requests) - 1, len(self.handlers) - 1)]
                await handler(req, w)
                if w.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            w.close()


def http_head(status: int, headers: dict[str, str] | None = None, *, chunked: bool = False, length: int | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} X"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    elif length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None, *, raw: bytes | None = None) -> Handler:
    """A handler that answers once with a JSON (or ``raw``) body."""
    import json as _json

    payload = raw if raw is not None else _json.dumps(body).encode()
    content_type = "application/problem+json" if status >= 400 else "application/json"

    async def handle(req: Request, w: asyncio.StreamWriter) -> None:
        w.write(http_head(status, {"Content-Type": content_type, **(headers or {})}, length=len(payload)) + payload)
        await w.drain()

    return handle


def sse_stream(*frames: bytes, run_id: str = "run_x", end: str = "close", pause: float = 0.0) -> Handler:
    """A handler that streams ``frames`` (chunked), then ``end``: ``close`` (EOF), ``finish``
    (a proper last chunk) or ``hang`` (send nothing more, keep the connection)."""

    async def handle(req: Request, w: asyncio.StreamWriter) -> None:
        w.write(http_head(200, {"Content-Type": "text/event-stream", "X-Run-Id": run_id}, chunked=True))
        for f in frames:
            w.write(chunk(f))
            await w.drain()
            if pause:
                await asyncio.sleep(pause)
        if end == "finish":
            w.write(b"0\r\n\r\n")
            await w.drain()
        elif end == "hang":
            await asyncio.sleep(3600)
        else:
            w.close()

    return handle


# --- valid events for scripted streams ----------------------------------------------------

TS = "2026-01-01T00:00:00Z"


def envelope(type_: str, run_id: str, step_id: str | None, data: Any) -> dict[str, Any]:
    return {"type": type_, "message": type_, "timestamp": TS, "step_id": step_id, "trace_id": "t", "run_id": run_id, "data": data}


def run_events(run_id: str = "run_x", steps: int = 2) -> list[dict[str, Any]]:
    """A complete, valid run: skill_start, a start/completed pair per step, skill_completed, done."""
    events = [envelope("skill_start", run_id, None, {"skill_id": "s", "version": "1", "execution_channel": "http-stream", "steps": ["a"]})]
    for i in range(steps):
        events.append(envelope("step_start", run_id, "a", {"uses": "util.sleep", "index": i}))
        events.append(envelope("step_completed", run_id, "a", {"produced_output": {}, "duration_ms": 1.0, "index": i}))
    events.append(envelope("skill_completed", run_id, None, {"status": "completed", "duration_ms": 2.0}))
    events.append(
        {"type": "done", "message": "Skill 's' completed.", "skill_id": "s", "status": "completed", "outputs": {"n": steps}, "trace_id": "t",
         "run_id": run_id, "duration_ms": 2.0, "steps": [{"id": "a", "status": "completed"}]}
    )  # fmt: skip
    return events


def frames(events: list[dict[str, Any]], first_id: int = 1) -> list[bytes]:
    import json as _json

    return [f"id: {first_id + i}\nevent: {e['type']}\ndata: {_json.dumps(e)}\n\n".encode() for i, e in enumerate(events)]
