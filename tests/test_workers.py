"""CPU-bound capabilities run off the event loop, in worker processes a deadline can stop.

Finding (issue 10): everything ran on the one event loop, so a single small request froze
the server for every tenant, and a skill's ``timeout`` could not stop a computation.
These tests use a real pool of worker processes (pebble, forkserver).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import AsyncIterator

import pytest

import worker_fns
from engine_util import engine_for, registry_with, run, skill
from skillrun.engine.capability import cpu_capability
from skillrun.engine.workers import TENANT, ProcessOffload

pytestmark = pytest.mark.anyio

BIG = "x" * 10_000  # above the inline threshold used here


@pytest.fixture
async def offload() -> AsyncIterator[ProcessOffload]:
    pool = ProcessOffload(2, inline_max_chars=1000, per_tenant=1, memory_mb=512)
    await pool.start()
    yield pool
    await pool.close()


REGISTRY = registry_with(
    cpu_capability("test.spin", worker_fns.spin),
    cpu_capability("test.where", worker_fns.where),
    cpu_capability("test.refuse", worker_fns.refuse),
    cpu_capability("test.hog", worker_fns.hog),
)


async def test_small_inputs_run_inline_large_ones_in_a_worker(offload: ProcessOffload) -> None:
    small = await offload.call(worker_fns.where, {"text": "x"})
    large = await offload.call(worker_fns.where, {"text": BIG})
    assert small["pid"] == os.getpid()
    assert large["pid"] != os.getpid()


async def test_a_runaway_step_is_killed_at_its_timeout_and_its_worker_replaced(offload: ProcessOffload) -> None:
    s = skill(
        """
        id: runaway
        version: "1"
        steps:
          - id: spin
            uses: test.spin
            timeout: 300ms
            input: {text: "${inputs.text}"}
        """,
        REGISTRY,
    )
    engine = engine_for(s, registry=REGISTRY, offload=offload)
    t0 = time.monotonic()
    outcome, rec, _ = await run(engine, s, {"text": BIG})
    assert time.monotonic() - t0 < 5
    assert outcome.status == "failed" and outcome.error is not None and outcome.error["kind"] == "timeout"
    assert rec.types("spin") == ["step_start", "step_failed"]
    # Both workers answer afterwards (the killed one was replaced).
    pids = {(await offload.call(worker_fns.where, {"text": BIG, "tag": str(i)}))["pid"] for i in range(6)}
    assert len(pids) >= 1 and os.getpid() not in pids


async def test_the_run_deadline_is_hard_for_cpu_bound_work(offload: ProcessOffload) -> None:
    """``options.timeout_ms`` (the run's limit) stops a computation that never yields."""
    s = skill(
        """
        id: runaway2
        version: "1"
        steps:
          - id: spin
            uses: test.spin
            input: {text: "${inputs.text}"}
        """,
        REGISTRY,
    )
    engine = engine_for(s, registry=REGISTRY, offload=offload)
    t0 = time.monotonic()
    outcome, _, _ = await run(engine, s, {"text": BIG}, timeout_s=0.3)
    assert time.monotonic() - t0 < 5
    assert outcome.status == "failed" and outcome.error == {"kind": "timeout", "message": "the run took longer than 0.3 s"}
    assert (await offload.call(worker_fns.where, {"text": BIG}))["pid"] != os.getpid()


async def test_cancelling_a_waiting_call_removes_it_from_the_queue(offload: ProcessOffload) -> None:
    busy = [asyncio.create_task(offload.call(worker_fns.where, {"text": BIG, "ms": 300, "tag": str(i)})) for i in range(3)]
    await asyncio.sleep(0.05)
    assert offload.queued >= 1
    busy[-1].cancel()
    await asyncio.gather(*busy, return_exceptions=True)
    assert offload.queued == 0


async def test_a_capability_error_keeps_its_kind_across_the_process(offload: ProcessOffload) -> None:
    s = skill(
        """
        id: refuse
        version: "1"
        steps:
          - {id: r, uses: test.refuse, input: {text: "${inputs.text}"}}
        """,
        REGISTRY,
    )
    outcome, _, _ = await run(engine_for(s, registry=REGISTRY, offload=offload), s, {"text": BIG})
    assert outcome.error == {"kind": "custom_kind", "message": "refused on purpose"}


async def test_a_worker_out_of_memory_fails_the_step_not_the_server(offload: ProcessOffload) -> None:
    s = skill(
        """
        id: hog
        version: "1"
        steps:
          - {id: h, uses: test.hog, input: {text: "${inputs.text}"}}
        """,
        REGISTRY,
    )
    outcome, _, _ = await run(engine_for(s, registry=REGISTRY, offload=offload), s, {"text": BIG})
    assert outcome.error is not None and outcome.error["kind"] == "input_too_large"


async def test_one_tenants_flood_does_not_delay_another_tenants_call(offload: ProcessOffload) -> None:
    """Tenant A queues six 300 ms computations; B's one call, made after them, is served
    within the first round (per-tenant queues, round robin, at most one worker each here)."""

    async def as_tenant(tenant: str, tag: str, ms: int) -> dict[str, object]:
        TENANT.set(tenant)
        return await offload.call(worker_fns.where, {"text": BIG, "ms": ms, "tag": tag})

    flood = [asyncio.create_task(as_tenant("alice", f"a{i}", 300)) for i in range(6)]
    await asyncio.sleep(0.05)
    bob = await asyncio.create_task(as_tenant("bob", "b", 10))
    alice = await asyncio.gather(*flood)
    finished_before_bob = [r for r in alice if r["done_at"] < bob["done_at"]]  # type: ignore[operator]
    assert len(finished_before_bob) <= 1, (bob, alice)
