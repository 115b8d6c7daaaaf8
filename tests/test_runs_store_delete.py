"""The stores' ``delete`` verb (memory and SQLite alike): a finished run goes with its
whole log and its idempotency key; a run still going and an unknown id are refused
(False) and nothing changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from skillrun.runs import EventRecord, MemoryStore, RunRecord, RunStore, SqliteStore

pytestmark = pytest.mark.anyio


def _run(run_id: str, **kw: Any) -> RunRecord:
    return RunRecord(run_id=run_id, owner="key_a", skill_id="demo.ticker", trace_id="t", channel="http",
                     inputs={"steps": 1}, created_at="2026-01-01T00:00:00.000Z", **kw)


def _ev(seq: int, type_: str, **payload: Any) -> EventRecord:
    return EventRecord(seq, type_, json.dumps({"type": type_, **payload}))


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunStore]:
    s: RunStore = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "runs.db")
    await s.open()
    yield s
    await s.close()


async def test_delete_removes_a_finished_run_its_log_and_its_idempotency_key(store: RunStore) -> None:
    """A finished run: ``delete`` is True, then ``get``/``read``/``list_runs`` find nothing
    and the same idempotency key creates a new run."""
    await store.create(_run("r1", idempotency_key="k1", request_hash="h"))
    store.append("r1", _ev(1, "skill_start"))
    store.append("r1", _ev(2, "done", status="completed", skill_id="demo.ticker", outputs={}))
    assert await store.wait("r1", 1, 5)
    assert await store.delete("r1") is True
    assert await store.get("r1") is None
    assert await store.read("r1", 0) == []
    assert (await store.list_runs("key_a")).runs == []
    assert await store.count_runs("key_a") == 0
    again = await store.create(_run("r2", idempotency_key="k1", request_hash="h"))
    assert again.run_id == "r2"


async def test_delete_refuses_a_run_still_going_and_an_unknown_id(store: RunStore) -> None:
    """A queued or running run is never deleted (False, still readable); an unknown id is False."""
    await store.create(_run("q"))
    assert await store.delete("q") is False
    await store.create(_run("r"))
    store.append("r", _ev(1, "skill_start"))
    assert await store.wait("r", 0, 5)
    assert await store.delete("r") is False
    assert (await store.get("r")) is not None and [e.seq for e in await store.read("r", 0)] == [1]
    assert await store.delete("nope") is False


async def test_sqlite_delete_is_durable_across_a_reopen(tmp_path: Path) -> None:
    """After a delete and a restart, the SQLite file holds neither the run nor its events."""
    path = tmp_path / "runs.db"
    s = SqliteStore(path)
    await s.open()
    await s.create(_run("r1"))
    s.append("r1", _ev(1, "done", status="failed", skill_id="demo.ticker", outputs={}))
    assert await s.wait("r1", 0, 5)
    assert await s.delete("r1") is True
    await s.close()
    s2 = SqliteStore(path)
    await s2.open()
    try:
        assert await s2.get("r1") is None and await s2.read("r1", 0) == []
    finally:
        await s2.close()
