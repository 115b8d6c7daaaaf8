"""Runs continued from their logs (issue 15): a random skill is cut at a random event,
as a crash would leave its log, and resumed from that log; the outputs equal an
uninterrupted run's, every step and item has exactly one fate, the order rules hold
(``skill_resumed`` voids the instances that were running), and no instance that ended
before the seam runs again."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine_util import Recorder, engine_for, skill
from skillrun.engine import Skill
from skillrun.runs import EventRecord
from skillrun.runs.recovery import LogFates
from sse_util import item_keys
from test_engine_properties import dags

CHILD = """
id: child
version: "1"
inputs: {type: object, properties: {n: {type: integer}}}
steps:
  - {id: each, uses: util.sleep, foreach: "range(inputs.n)", max_parallel: 2, input: {ms: 1}}
  - {id: tail, uses: util.echo, input: {count: "${size(steps.each)}"}}
outputs:
  count: {value: "${steps.tail.count}"}
"""


def _with_nested(text: str, nested: list[int]) -> str:
    """The generated skill, with some of its "ok" steps turned into nested skills."""
    lines = text.split("\n")
    for n in nested:
        for i, line in enumerate(lines):
            if line.startswith("  - ") and f'"id": "s{n}"' in line and '"uses": "util.echo"' in line and "when" not in line:
                step = json.loads(line[4:])
                step |= {"uses": "skill:child", "input": {"n": n % 3 + 1}}
                lines[i] = "  - " + json.dumps(step)
    return "\n".join(lines)


def _records(events: list[dict[str, Any]]) -> list[EventRecord]:
    return [EventRecord(n, e["type"], json.dumps(e)) for n, e in enumerate(events, 1)]


async def _run(s: Skill, child: Skill, rec: Recorder, resume: Any = None) -> Any:
    return await engine_for(s, child).run(s, {}, rec, channel="http", resume=resume)


def _fates(events: list[dict[str, Any]]) -> dict[tuple[str, Any], list[str]]:
    """Each instance's events that decide its fate, with the starts voided at a seam removed."""
    out: dict[tuple[str, Any], list[str]] = {}
    open_now: set[tuple[str, Any]] = set()
    for e in events:
        if e["type"] == "skill_resumed":
            for key in open_now:
                out[key].remove("step_start")  # void: it starts over
            open_now.clear()
            continue
        if e["type"] not in ("step_start", "step_completed", "step_degraded", "step_failed", "step_skipped"):
            continue
        for key in item_keys(e):
            out.setdefault(key, []).append(e["type"])
            if e["type"] == "step_start":
                open_now.add(key)
            else:
                open_now.discard(key)
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags(), st.lists(st.integers(0, 7), max_size=3), st.floats(0, 1))
def test_a_run_cut_at_any_event_and_resumed_ends_as_if_never_cut(dag: Any, nested: list[int], where: float) -> None:
    text, _, kinds, _ = dag
    assume("flaky" not in kinds.values())  # its counts live in the process: a resume starts them over
    text = _with_nested(text, nested)

    async def go() -> None:
        s, child = skill(text), skill(CHILD)
        whole = Recorder()
        expected = await _run(s, child, whole)
        log = whole.events[:-1]  # skill_completed is written after every step has its fate
        cut = 1 + int(where * (len(log) - 1))  # a crash after any event from skill_start on
        fates = LogFates()
        fates.feed(_records(log[:cut]))
        state = fates.resume(0.0)
        rec = Recorder()
        rec.events = list(log[:cut])
        outcome = await _run(s, child, rec, state)
        events = rec.finish(s.id, outcome)  # the order rules and the contract, over the whole log
        assert outcome.status == expected.status
        if expected.status == "completed":  # (a failing run's other steps race the failure: either fate is right)
            assert outcome.outputs == expected.outputs
            assert [(x["id"], x["status"]) for x in outcome.steps] == [(x["id"], x["status"]) for x in expected.steps]
        after = events[cut:]
        assert after[0]["type"] == "skill_resumed"
        assert after[0]["data"] == {"restored": len(state.fates), "rerun": state.rerun, "resumes": 1}
        # Nothing that ended before the seam starts again.
        for e in after:
            if e["type"] == "step_start":
                assert all(k not in state.fates for k in item_keys(e)), e
        # Every instance: one fate.
        for key, types in _fates(events).items():
            assert types == ["step_skipped"] or (
                len(types) == 2 and types[0] == "step_start" and types[1] != "step_skipped"
            ), (key, types)

    asyncio.run(go())


TICKS = """
id: ticks
version: "1"
steps:
  - {id: tick, uses: util.sleep, foreach: "range(2)", input: {ms: 1, progress: 0.5}}
outputs:
  n: {value: "${size(steps.tick)}"}
"""


def test_a_step_run_again_after_a_resume_numbers_its_attempts_after_the_logs() -> None:
    """Issue 15 with issue 18: a step cut by the seam after its first attempt's deltas
    runs again; its new deltas carry attempt 2 (3 after a second seam), so a client
    drops the cut attempt's deltas as it does after a retry. Items that ended keep theirs."""

    def delta_attempts(events: list[dict[str, Any]]) -> list[tuple[Any, int]]:
        return [(e["data"].get("index"), e["data"]["attempt"]) for e in events if e["type"] == "step_delta"]

    async def go() -> None:
        s = skill(TICKS)
        whole = Recorder()
        expected = await _run(s, s, whole)
        assert delta_attempts(whole.events) == [(0, 1), (1, 1)]
        # Cut after item 0's delta, before its step_completed: a crash inside the step.
        log = whole.events[: next(i for i, e in enumerate(whole.events) if e["type"] == "step_delta") + 1]
        for life in (2, 3):
            fates = LogFates()
            fates.feed(_records(log))
            rec = Recorder()
            rec.events = list(log)
            outcome = await _run(s, s, rec, fates.resume(0.0))
            events = rec.finish(s.id, outcome)
            assert outcome.outputs == expected.outputs
            after = delta_attempts(events[len(log):])
            assert [a for i, a in after if i == 0] == [life], after
            assert all(a == 1 for i, a in after if i == 1), after  # never cut: its first attempt
            # The next crash: after this life's delta of item 0.
            seam = len(log) + next(i for i, e in enumerate(events[len(log):]) if e["type"] == "step_delta"
                                   and e["data"].get("index") == 0)
            log = events[: seam + 1]

    asyncio.run(go())
