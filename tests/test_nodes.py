"""Nodes sharing one Redis (or Redis Cluster), in-process: a cancel sent to one node
reaches the node running the engine task, and a node whose lease expires has its
runs closed by a survivor with the same events a restart's recovery writes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest

from skillrun.runs import follow
from stores import started, store_db

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["redis", "redis-cluster"])
async def two_apps(
    request: pytest.FixtureRequest, tmp_path: Path, app_factory: Callable[..., Any]
) -> AsyncIterator[tuple[Any, Any]]:
    """Apps A and B on one Redis (one prefix), each with its store, lease and cancel listener."""
    db, options = store_db(request, tmp_path)
    apps = [app_factory(db=db, node_lease_s=1.0, rate_limit_storage="memory://", **options) for _ in range(2)]
    async with started(*apps):
        yield apps[0], apps[1]


async def _start(app: Any, steps: int = 500) -> str:
    skill = app.services.catalog.get("demo.ticker")
    run = await app.services.runs.start(skill, {"steps": steps, "delay_ms": 50}, owner="key_a", channel="http")
    return str(run.run_id)


async def _log(app: Any, run_id: str) -> list[Any]:
    return [e async for batch in follow(app.services.store, run_id, 0, idle_s=1) for e in batch]


async def test_cancel_on_b_stops_the_engine_task_on_a_within_one_second(two_apps: tuple[Any, Any]) -> None:
    """RunManager.cancel on node B of a run whose engine task runs on node A: A's task
    is cancelled (Pub/Sub) and the log ends skill_completed + done cancelled within 1 s."""
    a, b = two_apps
    run_id = await _start(a)
    await asyncio.sleep(0.3)
    asked = time.monotonic()
    await b.services.runs.cancel(run_id)
    events = await asyncio.wait_for(_log(b, run_id), 5)
    assert time.monotonic() - asked < 1.0
    assert [e.type for e in events[-2:]] == ["skill_completed", "done"]
    assert '"status":"cancelled"' in events[-1].data
    assert a.services.runs.live == 0


async def test_a_node_whose_lease_expires_has_its_runs_closed_interrupted_by_a_survivor(
    two_apps: tuple[Any, Any]
) -> None:
    """Node A stops renewing its lease (1 s) with two runs open and its engine frozen:
    within lease + 5 s node B closes both logs as interrupted, every open step failed
    (here B resumes no run, SKILLRUN_MAX_RESUMES=0; tests/test_multinode.py has B
    resume a dead node's runs)."""
    a, b = two_apps
    b.services.runs.max_resumes = 0
    runs = [await _start(a), await _start(a)]
    await asyncio.sleep(0.3)
    for task in a.services.nodes._tasks:  # A goes silent: no renewals, no cancels heard
        task.cancel()
    a.services.store._writer.cancel()  # and nothing it appends reaches Redis any more (a frozen node)
    gone = time.monotonic()
    for run_id in runs:
        events = await asyncio.wait_for(_log(b, run_id), 1 + 5)
        assert events[-1].type == "done" and '"status":"interrupted"' in events[-1].data, events[-3:]
    assert time.monotonic() - gone < 1 + 5
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_running_and_stored_run_limits_count_every_nodes_runs(
    request: pytest.FixtureRequest, tmp_path: Path, app_factory: Callable[..., Any]
) -> None:
    """SKILLRUN_MAX_RUNNING_PER_KEY=1 on two nodes: with the key's run running on A, a
    start on B is refused 429; SKILLRUN_MAX_STORED_RUNS_PER_KEY=2: after two runs (one
    per node) a third on either node is refused 429."""
    from skillrun.runs.quotas import QuotaExceeded

    db, options = store_db(request, tmp_path, "redis")  # the counting is the same on a Cluster
    apps = [app_factory(db=db, max_running_per_key=1, max_stored_runs_per_key=2, rate_limit_storage="memory://",
                        **options) for _ in range(2)]
    for app in apps:
        await app.services.store.open()
    a, b = apps
    try:
        first = await _start(a, steps=100)
        with pytest.raises(QuotaExceeded) as running:
            await _start(b)
        assert running.value.status == 429 and "MAX_RUNNING_PER_KEY" in running.value.detail
        await a.services.runs.cancel(first)
        await asyncio.wait_for(_log(b, first), 5)
        await asyncio.sleep(0.2)  # the finished run leaves the running set
        second = await _start(b, steps=1)
        await asyncio.wait_for(_log(a, second), 5)
        with pytest.raises(QuotaExceeded) as stored:
            await _start(a, steps=1)
        assert stored.value.status == 429 and "MAX_STORED_RUNS_PER_KEY" in stored.value.detail
    finally:
        for app in apps:
            await app.services.runs.drain(5)
            await app.services.store.close()
