"""Schema version 2 (steps that wait for input: the runs' open-waits count): a database
written by the release before it (``fixtures/sqlite_v1_e6ef8cc.sql``, see its header)
is migrated at start, its runs served, the run it left running resumed to its end, and
new runs that wait for input are ``waiting`` in it."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Callable

import httpx

from conftest import Server
from skillrun.runs.sqlite import SCHEMA_VERSION
from test_sqlite_schema import old_database, user_version

ROOT = Path(__file__).resolve().parent.parent
KEY = "key-a-0123456789"
HEADERS = {"x-api-key": KEY}
COMPLETED = "run_76d2779476b38c70ae8e5763"
LEFT_RUNNING = "run_14d7be883c5350e36425df6f"  # 20 ticks of 200 ms, killed with kill -9 after 1.5 s


def test_a_version_1_database_is_migrated_and_takes_waiting_runs(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """user_version 1 -> 2 at start; the completed run stays completed; the run left
    running goes on from its log and completes; a demo.approval run is listed `waiting`."""
    # The run left running was started by demo.ticker as this release bundles it (only
    # the schema is old): its skill_start carries today's digest, or the resume would
    # rightly refuse a definition that changed since (ad159bfa2b866b3b at e6ef8cc).
    ticker = (ROOT / "service" / "skillrun" / "skills" / "demo.ticker.yaml").read_text()
    digest = hashlib.sha256(ticker.encode()).hexdigest()[:16]
    db = old_database(tmp_path / ".skillrun" / "skillrun.db", "sqlite_v1_e6ef8cc.sql", {"ad159bfa2b866b3b": digest})
    assert user_version(db) == 1
    server = server_factory(env={"SKILLRUN_API_KEYS": KEY, "SKILLRUN_RUN_RETENTION": "36500d"})
    assert user_version(db) == SCHEMA_VERSION == 2
    assert "schema migrated from version 1 to 2" in server.log()

    def run(run_id: str, wait: float = 0) -> dict[str, object]:
        r = httpx.get(f"{server.url}/v1/runs/{run_id}", params={"wait": wait}, headers=HEADERS, timeout=wait + 10)
        assert r.status_code == 200, r.text
        return dict(r.json())

    assert run(COMPLETED)["status"] == "completed"
    resumed = run(LEFT_RUNNING, wait=30)
    assert resumed["status"] == "completed" and resumed["result"]["outputs"] == {"ticks": 20}  # type: ignore[index]

    started = httpx.post(f"{server.url}/v1/skills/demo.approval/execute/async", json={"inputs": {"text": "A. B."}},
                         headers=HEADERS, timeout=10)
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    deadline = time.monotonic() + 20
    while run(run_id)["status"] != "waiting":
        assert time.monotonic() < deadline, run(run_id)
        time.sleep(0.05)
    listed = httpx.get(f"{server.url}/v1/runs", params={"status": "waiting"}, headers=HEADERS, timeout=10).json()
    assert [r["run_id"] for r in listed["runs"]] == [run_id]
