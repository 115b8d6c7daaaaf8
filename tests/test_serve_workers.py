"""``skillrun serve --workers N`` (issue 11): N serving processes on one port.

With a store only one process can serve (SQLite, ``:memory:``) N > 1 is refused with
a message that says to use Redis; a ``redis://`` store passes through. The supervisor
itself is store-agnostic, so its signals, restarts and startup failures are tested
here over per-worker in-memory stores (a shared store is the Redis tests' business).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import API_KEY, free_port
from sse_util import check_order, parse_sse
from skillrun.cli import _pool_per_worker, workers_problem
from skillrun.settings import Settings
from test_sqlite_ownership import serve_expecting_exit


@pytest.mark.parametrize("db", [None, ":memory:"])
def test_more_than_one_worker_on_a_one_process_store_is_refused_naming_redis(tmp_path: Path, db: str | None) -> None:
    """`skillrun serve --workers 2` on the default SQLite file, or on `:memory:`: exit 2
    before anything starts, saying the store serves one process and to use
    `--db redis://HOST:6379/0`; no database file is created."""
    done = serve_expecting_exit(tmp_path, ["--workers", "2", *(["--db", db] if db else [])])
    assert done.returncode == 2
    assert "--workers 2 needs a run store that all workers share" in done.stderr
    assert "Use Redis: --db redis://HOST:6379/0" in done.stderr
    assert not (tmp_path / ".skillrun").exists()


def test_zero_workers_is_refused(tmp_path: Path) -> None:
    """`--workers 0`: exit 2 with a message, not a server with no process."""
    done = serve_expecting_exit(tmp_path, ["--workers", "0"])
    assert done.returncode == 2 and "--workers 0: must be at least 1" in done.stderr


def test_a_redis_store_passes_the_workers_check_and_one_worker_any_store() -> None:
    assert workers_problem("redis://127.0.0.1:6379/0", 4) is None
    assert workers_problem("rediss://cache.example:6380/1", 2) is None
    assert workers_problem(".skillrun/skillrun.db", 1) is None and workers_problem(":memory:", 1) is None
    assert workers_problem("runs.db", 2) is not None


def test_each_worker_gets_its_share_of_the_cpu_pool_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each serving process has its own CPU worker pool: with `--workers N` the default
    pool size is the CPU count divided by N (at least 1); SKILLRUN_WORKER_PROCS wins."""
    monkeypatch.delenv("SKILLRUN_WORKER_PROCS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    for workers, expected in [(2, 4), (3, 2), (16, 1)]:
        settings = Settings(worker_procs=8)
        _pool_per_worker(settings, workers)
        assert settings.worker_procs == expected
    single = Settings(worker_procs=8)
    _pool_per_worker(single, 1)
    assert single.worker_procs == 8
    monkeypatch.setenv("SKILLRUN_WORKER_PROCS", "6")
    configured = Settings(worker_procs=6)
    _pool_per_worker(configured, 2)
    assert configured.worker_procs == 6


_SUPERVISE = """
import sys
from pathlib import Path
from skillrun.cli import ServeOptions, WorkerSupervisor
from skillrun.settings import Settings
settings = Settings(api_keys=[{key!r}], shutdown_grace_s=10, db=":memory:", http_public=False,
                    api_keys_file=Path({keys_file!r}) if {keys_file!r} else None)
sys.exit(WorkerSupervisor(settings, ServeOptions("127.0.0.1", {port}, "info"), 2).run())
"""


def _supervise(tmp_path: Path, keys_file: str = "") -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    log = tmp_path / f"supervisor-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SUPERVISE.format(key=API_KEY, port=port, keys_file=keys_file)],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
        )
    return proc, port, log


def _workers_of(parent: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(parent), "-f", "spawn_main"], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path, workers: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        if log.read_text().count("Application startup complete") >= workers:
            httpx.get(f"http://127.0.0.1:{port}/v1/health/ready", timeout=5).raise_for_status()
            return
        time.sleep(0.2)
    raise AssertionError(log.read_text())


def test_sigterm_drains_every_worker_and_a_dead_worker_is_replaced(tmp_path: Path) -> None:
    """Two workers on one port. One killed with kill -9 is replaced (two again); then a
    stream is open and the parent gets SIGTERM: the stream still ends with `done`
    completed, both workers exit, and the parent exits 0."""
    proc, port, log = _supervise(tmp_path)
    try:
        _wait_ready(proc, port, log, 2)
        first = _workers_of(proc.pid)
        assert len(first) == 2
        os.kill(min(first), signal.SIGKILL)
        _wait_ready(proc, port, log, 3)
        second = _workers_of(proc.pid)
        assert len(second) == 2 and min(first) not in second
        assert "died (exit -9): starting another" in log.read_text()

        body = {"inputs": {"steps": 30, "delay_ms": 100}}
        text, signalled = "", False
        with httpx.stream(
            "POST", f"http://127.0.0.1:{port}/v1/skills/demo.ticker/execute/stream",
            json=body, headers={"x-api-key": API_KEY}, timeout=30,
        ) as r:
            for chunk in r.iter_text():
                text += chunk
                if not signalled and len(parse_sse(text)[0]) >= 3:
                    proc.send_signal(signal.SIGTERM)
                    signalled = True
        events = [f.json for f in parse_sse(text)[0]]
        check_order(events)
        assert events[-1]["type"] == "done" and events[-1]["status"] == "completed"
        assert proc.wait(30) == 0
        assert "draining: up to 10.0 s for 1 run(s)" in log.read_text()  # the signal came mid-run
        assert not any(Path(f"/proc/{pid}").exists() for pid in second)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_worker_that_cannot_start_stops_the_group_with_exit_2(tmp_path: Path) -> None:
    """Workers whose configuration is broken (a keys file that does not exist) would fail
    the same way on every restart: the supervisor stops and exits 2, with the reason in its log."""
    proc, _port, log = _supervise(tmp_path, keys_file=str(tmp_path / "missing-keys.txt"))
    assert proc.wait(60) == 2
    assert "missing-keys.txt" in log.read_text() and "failed to start (exit 2)" in log.read_text()
