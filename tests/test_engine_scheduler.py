"""The DAG scheduler with real timing: concurrency, limits, timeouts and cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest

from engine_util import Probe, engine_for, registry_with, run, skill
from skillrun.engine.runner import CANCELLED, INTERRUPTED

pytestmark = pytest.mark.anyio


def _probe_skill(body: str, probe: Probe, **kw: object) -> tuple:
    reg = registry_with(probe.capability())
    s = skill(body, reg)
    return s, engine_for(s, registry=reg, **kw)


async def test_two_independent_200ms_steps_take_200ms_not_400() -> None:
    probe = Probe()
    s, eng = _probe_skill(
        """
        id: par
        version: "1"
        steps:
          - {id: a, uses: probe, needs: [], input: {ms: 200, tag: a}}
          - {id: b, uses: probe, needs: [], input: {ms: 200, tag: b}}
          - {id: c, uses: util.echo, needs: [a, b], input: {tags: ["${steps.a.tag}", "${steps.b.tag}"]}}
        """,
        probe,
    )
    t0 = time.perf_counter()
    outcome, rec, _ = await run(eng, s)
    elapsed = time.perf_counter() - t0
    assert outcome.status == "completed"
    assert 0.19 <= elapsed < 0.33, elapsed
    assert probe.peak == 2
    # c starts only after both a and b completed
    types = [(e["type"], e["step_id"]) for e in rec.events]
    assert types.index(("step_start", "c")) > max(types.index(("step_completed", "a")), types.index(("step_completed", "b")))
    assert rec.of("step_completed", "c")[0]["data"]["produced_output"] == {"tags": ["a", "b"]}


async def test_without_needs_steps_run_in_the_order_written() -> None:
    probe = Probe()
    s, eng = _probe_skill(
        """
        id: seq
        version: "1"
        steps:
          - {id: a, uses: probe, input: {ms: 100, tag: a}}
          - {id: b, uses: probe, input: {ms: 100, tag: b}}
        """,
        probe,
    )
    t0 = time.perf_counter()
    _, rec, _ = await run(eng, s)
    assert time.perf_counter() - t0 >= 0.2
    assert [(e["type"], e["step_id"]) for e in rec.events[1:-1]] == [
        ("step_start", "a"), ("step_completed", "a"), ("step_start", "b"), ("step_completed", "b"),
    ]
    assert probe.peak == 1


async def test_skill_max_parallel_bounds_steps_of_one_run() -> None:
    probe = Probe()
    s, eng = _probe_skill(
        """
        id: bounded
        version: "1"
        max_parallel: 2
        steps:
          - {id: a, uses: probe, needs: [], input: {ms: 100}}
          - {id: b, uses: probe, needs: [], input: {ms: 100}}
          - {id: c, uses: probe, needs: [], input: {ms: 100}}
          - {id: d, uses: probe, needs: [], input: {ms: 100}}
        """,
        probe,
    )
    t0 = time.perf_counter()
    outcome, _, _ = await run(eng, s)
    elapsed = time.perf_counter() - t0
    assert outcome.status == "completed"
    assert probe.peak == 2
    assert 0.19 <= elapsed < 0.33, elapsed


async def test_server_wide_max_parallel_bounds_capability_calls_across_runs() -> None:
    probe = Probe()
    s, eng = _probe_skill(
        """
        id: one
        version: "1"
        steps:
          - {id: a, uses: probe, needs: [], input: {ms: 100}}
          - {id: b, uses: probe, needs: [], input: {ms: 100}}
        """,
        probe,
        max_parallel=1,
    )
    t0 = time.perf_counter()
    results = await asyncio.gather(run(eng, s), run(eng, s))
    elapsed = time.perf_counter() - t0
    assert all(r[0].status == "completed" for r in results)
    assert probe.peak == 1
    assert elapsed >= 0.39, elapsed


async def test_a_timed_out_step_is_cancelled_and_leaves_no_task_behind() -> None:
    probe = Probe()
    s, eng = _probe_skill(
        """
        id: slow
        version: "1"
        steps:
          - {id: wait, uses: probe, timeout: 100ms, input: {ms: 5000, tag: wait}}
        """,
        probe,
    )
    before = asyncio.all_tasks()
    t0 = time.perf_counter()
    outcome, rec, _ = await run(eng, s)
    assert time.perf_counter() - t0 < 0.5
    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error["kind"] == "timeout"
    assert probe.cancelled == ["wait"] and probe.finished == []
    failed = rec.of("step_failed", "wait")[0]["data"]["error"]
    assert failed["kind"] == "timeout" and "100ms" not in failed["message"] and "0.1 s" in failed["message"]
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == before


async def test_parallel_timed_out_steps_leave_no_task_behind() -> None:
    probe = Probe()
    s, eng = _probe_skill(
        """
        id: slow2
        version: "1"
        steps:
          - {id: a, uses: probe, needs: [], timeout: 0.05, on_error: continue, input: {ms: 5000, tag: a}}
          - {id: b, uses: probe, needs: [], timeout: 50ms, on_error: continue, input: {ms: 5000, tag: b}}
        """,
        probe,
    )
    before = asyncio.all_tasks()
    outcome, rec, _ = await run(eng, s)
    assert outcome.status == "completed"  # continue: the failures are recorded, the run goes on
    assert sorted(probe.cancelled) == ["a", "b"]
    assert [e["data"]["error"]["kind"] for e in rec.of("step_failed")] == ["timeout", "timeout"]
    assert {x["id"]: x["status"] for x in outcome.steps} == {"a": "failed", "b": "failed"}
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == before


async def test_run_timeout_cancels_every_running_step() -> None:
    probe = Probe()
    s, eng = _probe_skill(
        """
        id: runlimit
        version: "1"
        timeout: 150ms
        steps:
          - {id: a, uses: probe, needs: [], input: {ms: 5000, tag: a}}
          - {id: b, uses: probe, needs: [], input: {ms: 5000, tag: b}}
          - {id: c, uses: probe, needs: [a, b], input: {ms: 1, tag: c}}
        """,
        probe,
    )
    t0 = time.perf_counter()
    outcome, rec, _ = await run(eng, s)
    assert time.perf_counter() - t0 < 0.5
    assert outcome.status == "failed" and outcome.error["kind"] == "timeout"  # type: ignore[index]
    assert sorted(probe.cancelled) == ["a", "b"]
    assert [e["data"]["error"]["kind"] for e in rec.of("step_failed")] == ["timeout", "timeout"]
    assert rec.of("step_skipped", "c")[0]["data"]["reason"].startswith("not run:")


async def test_request_timeout_is_the_smaller_limit() -> None:
    probe = Probe()
    s, eng = _probe_skill(
        """
        id: runlimit2
        version: "1"
        timeout: 10s
        steps:
          - {id: a, uses: probe, input: {ms: 5000, tag: a}}
        """,
        probe,
    )
    t0 = time.perf_counter()
    outcome, _, _ = await run(eng, s, timeout_s=0.1)
    assert time.perf_counter() - t0 < 0.5
    assert outcome.error == {"kind": "timeout", "message": "the run took longer than 0.1 s"}


@pytest.mark.parametrize("reason", [CANCELLED, INTERRUPTED])
async def test_cancellation_mid_dag_stops_every_running_step(reason: str) -> None:
    probe = Probe()
    s, eng = _probe_skill(
        """
        id: dag
        version: "1"
        steps:
          - {id: first, uses: probe, input: {ms: 1, tag: first}}
          - {id: a, uses: probe, needs: [first], input: {ms: 5000, tag: a}}
          - {id: b, uses: probe, needs: [first], input: {ms: 5000, tag: b}}
          - {id: c, uses: probe, needs: [first], input: {ms: 5000, tag: c}}
          - {id: after, uses: probe, needs: [a, b, c], input: {ms: 1, tag: after}}
        """,
        probe,
    )
    before = asyncio.all_tasks()
    task = asyncio.create_task(run(eng, s))
    await asyncio.sleep(0.1)
    assert probe.running == 3
    task.cancel(reason)
    outcome, rec, _ = await task
    assert outcome.status == reason
    assert sorted(probe.cancelled) == ["a", "b", "c"]
    assert probe.running == 0
    assert {e["step_id"]: e["data"]["error"]["kind"] for e in rec.of("step_failed")} == {"a": reason, "b": reason, "c": reason}
    assert rec.of("step_skipped", "after")
    assert asyncio.all_tasks() - {task} == before - {task}


async def test_on_error_fail_cancels_the_other_running_steps() -> None:
    probe = Probe()
    s, eng = _probe_skill(
        """
        id: failfast
        version: "1"
        steps:
          - {id: slow, uses: probe, needs: [], input: {ms: 5000, tag: slow}}
          - {id: bad, uses: probe, needs: [], input: {ms: 50, tag: bad, fail: true}}
          - {id: later, uses: util.echo, needs: [slow, bad]}
        """,
        probe,
    )
    t0 = time.perf_counter()
    outcome, rec, _ = await run(eng, s)
    assert time.perf_counter() - t0 < 0.5
    assert outcome.status == "failed"
    assert outcome.error == {"kind": "capability_error", "message": "bad failed on purpose"}
    assert probe.cancelled == ["slow"]
    slow = rec.of("step_failed", "slow")[0]["data"]["error"]
    assert slow == {"kind": "cancelled", "message": "step 'bad' failed"}
    assert rec.of("step_skipped", "later")[0]["data"]["reason"] == "not run: step 'bad' failed"
    assert {x["id"]: x["status"] for x in outcome.steps} == {"slow": "failed", "bad": "failed", "later": "skipped"}


async def test_skipped_and_continued_steps_do_not_stop_dependants() -> None:
    s = skill(
        """
        id: absent
        version: "1"
        steps:
          - {id: maybe, uses: util.echo, when: "false", input: {v: 1}}
          - {id: broken, uses: util.fail, needs: [], on_error: continue}
          - id: after
            uses: util.echo
            needs: [maybe, broken]
            input:
              saw_maybe: ${has(steps.maybe)}
              saw_broken: ${has(steps.broken)}
        """
    )
    outcome, rec, _ = await run(engine_for(s), s)
    assert outcome.status == "completed"
    assert rec.of("step_failed", "broken")[0]["data"]["on_error"] == "continue"
    assert rec.of("step_completed", "after")[0]["data"]["produced_output"] == {"saw_maybe": False, "saw_broken": False}


async def test_demo_ticker_emits_exactly_start_completed_per_step_in_order() -> None:
    from skillrun.capabilities import builtin_registry
    from skillrun.engine import load_skills
    from skillrun.settings import BUNDLED_SKILLS

    catalog, problems = load_skills([BUNDLED_SKILLS], builtin_registry())
    assert problems == []
    ticker = catalog.get("demo.ticker")
    assert ticker is not None
    eng = engine_for(*catalog.all())
    outcome, rec, events = await run(eng, ticker, {"steps": 5, "delay_ms": 20})
    assert [e["type"] for e in events] == ["skill_start", *["step_start", "step_completed"] * 5, "skill_completed", "done"]
    assert [e["data"]["index"] for e in events[1:-2]] == [i for i in range(5) for _ in (0, 1)]
    assert outcome.outputs == {"ticks": 5}
    t0 = time.perf_counter()
    outcome, rec, events = await run(eng, ticker, {"steps": 10000})
    elapsed = time.perf_counter() - t0
    assert len(events) == 2 * 10000 + 3 and outcome.outputs == {"ticks": 10000}
    assert elapsed < 3.0, elapsed  # ~0.3 s on an idle 2-core machine, checks included


async def test_a_step_that_waited_gives_no_extra_turn_and_quick_steps_still_take_turns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The engine gives the loop a turn after ``SLICE_S`` of steps that never waited. A step
    whose call itself waited longer than that (here 30 ms) already gave the loop its turns:
    its run goes on without one more (each of 1,000 streams' ticks paid a loop iteration for
    it). Steps that never wait still take their turns."""
    from skillrun.engine import runner

    monkeypatch.setattr(runner, "SLICE_S", 0.01)
    s = skill(
        """
        id: waits
        version: "1"
        steps:
          - {id: tick, uses: util.sleep, foreach: "range(5)", input: {ms: 30}}
        """
    )
    eng = engine_for(s)
    turns = 0
    real = eng.yield_if_due

    async def counted() -> None:
        nonlocal turns
        turns += 1
        await real()

    monkeypatch.setattr(eng, "yield_if_due", counted)
    outcome, _, _ = await run(eng, s)
    assert outcome.status == "completed" and turns == 0
    monkeypatch.setattr(runner, "SLICE_S", 0.001)
    quick = skill(  # ~5 us a step: a turn every ~200 steps
        """
        id: quick
        version: "1"
        steps:
          - {id: tick, uses: util.echo, foreach: "range(3000)", input: {i: "${index}"}}
        """
    )
    eng = engine_for(quick)
    real = eng.yield_if_due
    monkeypatch.setattr(eng, "yield_if_due", counted)
    outcome, _, _ = await run(eng, quick)
    assert outcome.status == "completed" and turns >= 3
