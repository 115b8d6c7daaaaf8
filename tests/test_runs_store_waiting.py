"""Issue 15: a run's ``waiting`` status is a projection of its log, alike in every store:
``step_waiting`` opens a wait, the event carrying ``waited_ms`` closes it, the run is
``waiting`` while any is open (two at once included), ``skill_resumed`` closes them all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from skillrun import events as ev
from skillrun.runs import EventRecord, RunRecord, RunStore
from stores import STORES, store_for

pytestmark = pytest.mark.anyio


def _ev(seq: int, type_: str, step_id: str | None = None, **data: Any) -> EventRecord:
    return EventRecord(seq, type_, json.dumps({"type": type_, "step_id": step_id, "data": data}))


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunStore]:
    s = store_for(request, tmp_path)
    await s.open()
    yield s
    await s.close()


async def _status_after(store: RunStore, event: EventRecord) -> str:
    store.append("r1", event)
    assert await store.wait("r1", event.seq - 1, 5)  # visible once stored
    run = await store.get("r1")
    assert run is not None
    return run.status


async def test_two_waits_at_once_keep_the_run_waiting_until_both_end(store: RunStore) -> None:
    """Items 0 and 1 both wait; answering item 1 leaves the run waiting (item 0 still
    waits); answering item 0 makes it running; it is listed under ?status=waiting only meanwhile."""
    await store.create(RunRecord(run_id="r1", owner="k", skill_id="s", trace_id="t", channel="http",
                                 inputs={}, created_at="2026-01-01T00:00:00.000Z"))
    assert await _status_after(store, _ev(1, "skill_start")) == "running"
    assert await _status_after(store, _ev(2, "step_waiting", "ask", index=0, prompt="?")) == "waiting"
    assert await _status_after(store, _ev(3, "step_waiting", "ask", index=1, prompt="?")) == "waiting"
    listed = await store.list_runs("k", statuses={"waiting"})
    assert [r.run_id for r in listed.runs] == ["r1"]
    # A step event that never waited changes nothing, even with "waited_ms" in its output's text.
    assert await _status_after(store, _ev(4, "step_completed", "x", produced_output={"t": '"waited_ms"'})) == "waiting"
    assert await _status_after(store, _ev(5, "step_completed", "ask", index=1, waited_ms=3.0)) == "waiting"
    assert await _status_after(store, _ev(6, "step_failed", "ask", index=0, waited_ms=9.0)) == "running"
    assert (await store.list_runs("k", statuses={"waiting"})).runs == []


async def test_a_resume_closes_the_waits_open_at_the_seam(store: RunStore) -> None:
    """A waiting run resumed after a restart is running again until its step waits anew;
    the answer then makes it running (the void wait before the seam is not counted)."""
    await store.create(RunRecord(run_id="r1", owner="k", skill_id="s", trace_id="t", channel="http",
                                 inputs={}, created_at="2026-01-01T00:00:00.000Z"))
    await _status_after(store, _ev(1, "skill_start"))
    assert await _status_after(store, _ev(2, "step_waiting", "ask", prompt="?")) == "waiting"
    assert await _status_after(store, _ev(3, "skill_resumed", restored=0, rerun=1, resumes=1)) == "running"
    assert await _status_after(store, _ev(4, "step_waiting", "ask", prompt="?")) == "waiting"
    assert await _status_after(store, _ev(5, "step_completed", "ask", waited_ms=1.0)) == "running"
    done = EventRecord(6, "done", json.dumps({"type": "done", "status": "completed", "skill_id": "s", "outputs": {}}))
    assert await _status_after(store, done) == "completed"


def test_projections_of_a_batch_are_what_projection_finds_event_by_event() -> None:
    """A store's commit takes a run's events a batch at a time (``events.projections``):
    every slice of a log gets exactly the changes ``projection`` gives its events one by
    one, in order, and ``[]`` when none changes anything (with or without "waited_ms"
    in the text of an event that never waited)."""
    done = EventRecord(10, "done", json.dumps({"type": "done", "status": "completed", "skill_id": "s", "outputs": {}}))
    log = [
        _ev(1, "skill_start"), _ev(2, "step_start", "x", uses="demo.tick"),
        _ev(3, "step_completed", "x", produced_output={"t": '"waited_ms"'}), _ev(4, "step_waiting", "ask", prompt="?"),
        _ev(5, "step_completed", "ask", waited_ms=3.0), _ev(6, "step_waiting", "ask", prompt="?"),
        _ev(7, "skill_resumed", restored=0, rerun=1, resumes=1), _ev(8, "step_failed", "ask", waited_ms=1.0),
        _ev(9, "step_completed", "y"), done,
    ]
    for i in range(len(log)):
        for j in range(i + 1, len(log) + 1):
            seqs, types, datas = zip(*log[i:j])
            found = [ev.projection(*e) for e in log[i:j]]
            assert ev.projections(seqs[0], types, datas) == [c for c in found if c != ev.NO_CHANGE], (i, j)
    seqs, types, datas = zip(*log[1:3])
    assert ev.projections(seqs[0], types, datas) == []
