"""RunManager: every way a run can end still ends its log with skill_completed + done."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_settings
from skillrun.http.app import build_services
from skillrun.runs import EventRecord, RunFinished, RunManager, RunRecord, SqliteStore, follow
from sse_util import check_order

pytestmark = pytest.mark.anyio


async def _log(store: object, run_id: str) -> list[dict[str, object]]:
    return [json.loads(e.data) async for batch in follow(store, run_id) for e in batch]  # type: ignore[arg-type]


async def test_cancel_before_the_first_step_still_closes_the_log() -> None:
    s = build_services(make_settings())
    run = await s.runs.start(s.catalog.get("demo.ticker"), {"steps": 3}, owner="o", channel="http")
    await s.runs.cancel(run.run_id)  # the task has not taken a single step yet
    events = await _log(s.store, run.run_id)
    check_order(events)
    assert events[-1]["status"] == "cancelled"
    assert (await s.store.get(run.run_id)).status == "cancelled"  # type: ignore[union-attr]
    with pytest.raises(RunFinished):
        await s.runs.cancel(run.run_id)


async def test_recover_closes_logs_a_dead_process_left_open(tmp_path: Path) -> None:
    """What kill -9 leaves: a running run whose last step started and never ended."""
    path = tmp_path / "runs.db"
    dead = SqliteStore(path)
    await dead.open()
    run = RunRecord("run_dead", "o", "demo.ticker", "t", "http-stream", {"steps": 5}, "2026-01-01T00:00:00.000Z")
    await dead.create(run)
    envelope = {"message": "m", "timestamp": "2026-01-01T00:00:00.000Z", "trace_id": "t", "run_id": "run_dead"}
    dead.append("run_dead", EventRecord(1, "skill_start", json.dumps(
        {"type": "skill_start", **envelope, "step_id": None,
         "data": {"skill_id": "demo.ticker", "version": "1", "execution_channel": "http-stream", "steps": ["tick"]}})))
    dead.append("run_dead", EventRecord(2, "step_start", json.dumps(
        {"type": "step_start", **envelope, "step_id": "tick", "data": {"uses": "util.sleep", "index": 0}})))
    await dead.close()

    s = build_services(make_settings())
    store = SqliteStore(path)
    await store.open()
    try:
        manager = RunManager(store, s.engine, s.catalog)
        assert await manager.recover() == 1
        assert await manager.recover() == 0  # nothing left to do the second time
        events = await _log(store, "run_dead")
        check_order(events)
        assert [e["type"] for e in events] == ["skill_start", "step_start", "step_failed", "skill_completed", "done"]
        assert events[2]["data"]["index"] == 0 and events[2]["data"]["error"]["kind"] == "interrupted"
        got = await store.get("run_dead")
        assert got is not None and got.status == "interrupted" and got.result["status"] == "interrupted"  # type: ignore[index]
    finally:
        await store.close()
