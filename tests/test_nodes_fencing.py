"""Issue 11/15, fencing: a node cut from Redis longer than its lease must not keep running
the runs a survivor resumes. It stops them itself when it cannot renew its lease in time,
and the append script refuses every event of a run another node holds now (a zombie's late
events), so one run never has two engines writing its log."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from skillrun.runs import EventRecord, RedisStore, RunRecord
from stores import store_db
from test_nodes import _log, _start, two_apps  # noqa: F401  (the fixture: nodes A and B on one Redis)

pytestmark = pytest.mark.anyio


def _run(run_id: str) -> RunRecord:
    return RunRecord(run_id=run_id, owner="key_a", skill_id="demo.ticker", trace_id="t", channel="http",
                     inputs={"steps": 1}, created_at="2026-01-01T00:00:00.000Z")


def _ev(seq: int, who: str) -> EventRecord:
    return EventRecord(seq, "step_start", json.dumps({"type": "step_start", "by": who}))


@pytest.mark.parametrize("kind", ["redis", "redis-cluster"])
async def test_a_zombies_late_events_are_refused_once_a_survivor_holds_the_run(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    """Node A writes events 1-2 of a run; node B takes the run over (``adopt``) and writes
    event 3; then A, back from a partition, sends its own events 3 and 4: both refused
    (the log holds B's 3 and nothing of A's after it), and A is told the run was taken."""
    db, options = store_db(request, tmp_path, kind)
    prefix, cluster = str(options["redis_prefix"]), bool(options.get("redis_cluster"))
    a, b = RedisStore(db, prefix=prefix, cluster=cluster), RedisStore(db, prefix=prefix, cluster=cluster)
    await a.open()
    await b.open()
    fenced: list[str] = []
    a.on_fenced = fenced.append
    try:
        await a.create(_run("r1"))
        a.append("r1", _ev(1, "a"))
        a.append("r1", _ev(2, "a"))
        assert await a.flushed(5)
        await b.adopt("r1")
        b.append("r1", _ev(3, "b"))
        assert await b.flushed(5)
        a.append("r1", _ev(3, "a"))
        a.append("r1", _ev(4, "a"))
        assert await a.flushed(5)
        log = await b.read("r1", 0)
        assert [(e.seq, json.loads(e.data)["by"]) for e in log] == [(1, "a"), (2, "a"), (3, "b")]
        assert fenced == ["r1"]
    finally:
        await a.close()
        await b.close()


def _cut_from_redis(app: Any) -> None:
    """The node's lease renewals fail from now on, as across a partition."""

    async def unreachable() -> None:
        raise RedisConnectionError("Connection refused (test: partitioned)")

    app.services.nodes._renew = unreachable


async def test_a_node_that_cannot_renew_its_lease_in_time_stops_its_runs_and_a_survivor_resumes_them(
    two_apps: tuple[Any, Any]
) -> None:
    """Node A runs demo.ticker (40 ticks, 50 ms apart) and can no longer renew its 1 s lease:
    it stops its engine before the lease lapses (no engine task left on A), and B resumes the
    run: the log ends in exactly one done, completed, with one skill_resumed seam and every
    tick once."""
    a, b = two_apps
    run_id = await _start(a, steps=40)
    await asyncio.sleep(0.4)
    _cut_from_redis(a)
    for _ in range(40):
        if a.services.runs.live == 0:
            break
        await asyncio.sleep(0.05)
    assert a.services.runs.live == 0 and a.services.nodes.fenced
    events = await asyncio.wait_for(_log(b, run_id), 15)
    types = [e.type for e in events]
    assert types.count("done") == 1 and '"status":"completed"' in events[-1].data, types[-4:]
    assert types.count("skill_resumed") == 1
    assert a.services.runs.live == 0  # A never ran it again
    done = json.loads(events[-1].data)
    assert done["outputs"]["ticks"] == 40, done["outputs"]


async def test_a_fenced_node_takes_its_runs_back_when_no_survivor_took_them(two_apps: tuple[Any, Any]) -> None:
    """Node A stops its run when its lease renewals fail; no survivor takes over (B's
    takeover is stopped); when A's renewals succeed again, A resumes the run itself from
    its log: it ends in one done, completed, after one skill_resumed."""
    a, b = two_apps
    for task in b.services.nodes._tasks:
        task.cancel()
    run_id = await _start(a, steps=30)
    await asyncio.sleep(0.4)
    renew = a.services.nodes._renew
    _cut_from_redis(a)
    for _ in range(40):
        if a.services.runs.live == 0:
            break
        await asyncio.sleep(0.05)
    assert a.services.runs.live == 0 and a.services.nodes.fenced
    a.services.nodes._renew = renew
    events = await asyncio.wait_for(_log(b, run_id), 15)
    types = [e.type for e in events]
    assert types.count("done") == 1 and '"status":"completed"' in events[-1].data, types[-4:]
    assert types.count("skill_resumed") == 1
    assert not a.services.nodes.fenced
