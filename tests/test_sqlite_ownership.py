"""One process owns a SQLite run store (issue 11).

Finding: a second process on the same SQLite file silently marked the first one's live
runs ``interrupted``, the first then lost its next events to a UNIQUE violation, and the
run's log ended with two ``done``. Now the second ``skillrun serve`` refuses to start,
naming the file and the process holding it, and the first keeps running its runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable

import httpx

from conftest import API_KEY, OTHER_KEY, Server, free_port
from sse_util import check_order, parse_sse

HEADERS = {"x-api-key": API_KEY}
TICKER = "/v1/skills/demo.ticker"


def serve_expecting_exit(cwd: Path, args: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """``skillrun serve`` that should refuse to start: wait for it to exit by itself."""
    env = {**os.environ, "SKILLRUN_API_KEYS": f"{API_KEY},{OTHER_KEY}", "SKILLRUN_HTTP_PUBLIC": "0"}
    return subprocess.run(
        [sys.executable, "-m", "skillrun", "serve", "--port", str(free_port()), *(args or [])],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )


def test_second_process_on_the_same_file_refuses_and_the_first_keeps_running_its_runs(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """Two `skillrun serve` in one working directory (so one `.skillrun/skillrun.db`),
    the second started while the first streams a 100-step demo.ticker: the second exits
    non-zero saying which file and which pid holds it, and the first's stream goes on
    to `done` completed with every id once, in order."""
    first = server_factory()
    db = (tmp_path / ".skillrun" / "skillrun.db").resolve()
    body = {"inputs": {"steps": 100, "delay_ms": 100}}
    with httpx.Client(timeout=60) as client:
        with client.stream("POST", first.url + TICKER + "/execute/stream", json=body, headers=HEADERS) as r:
            run_id = r.headers["x-run-id"]
            text = ""
            chunks = r.iter_text()
            while len(parse_sse(text)[0]) < 3:
                text += next(chunks)

            second = serve_expecting_exit(tmp_path)
            assert second.returncode != 0
            assert f"the run store {db} is in use by another process (pid {first.proc.pid} " in second.stderr
            assert "--db redis://" in second.stderr
            # The refusal came while the run was live, and took nothing from it.
            run = client.get(f"{first.url}/v1/runs/{run_id}", headers=HEADERS).json()
            assert run["status"] == "running"

            for chunk in chunks:
                text += chunk
    frames = parse_sse(text)[0]
    events = [f.json for f in frames]
    check_order(events)
    assert [int(f.id or 0) for f in frames] == list(range(1, len(frames) + 1))
    assert [e["type"] for e in events].count("done") == 1
    assert events[-1]["type"] == "done" and events[-1]["status"] == "completed"
    assert first.proc.poll() is None
    assert "interrupted" not in first.log()


def test_the_same_file_by_another_path_is_refused_too(server_factory: Callable[..., Server], tmp_path: Path) -> None:
    """The lock is on the file, not the spelling: `--db /abs/path/.skillrun/skillrun.db`
    from another working directory is refused while the first process holds it."""
    first = server_factory()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    db = tmp_path / "sub" / ".." / ".skillrun" / "skillrun.db"
    second = serve_expecting_exit(elsewhere, ["--db", str(db)])
    assert second.returncode != 0
    assert f"pid {first.proc.pid} " in second.stderr and str(db.resolve()) in second.stderr


def test_a_holder_killed_with_kill_9_leaves_no_lock_behind(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """The kernel drops the lock with its process: after kill -9 of the first server the
    stale lock file (still naming it) does not stop the next one, which then names itself."""
    lock = tmp_path / ".skillrun" / "skillrun.db.lock"
    first = server_factory()
    assert json.loads(lock.read_text())["pid"] == first.proc.pid
    first.terminate(signal.SIGKILL)
    first.proc.wait(10)
    second = server_factory()
    assert json.loads(lock.read_text())["pid"] == second.proc.pid
