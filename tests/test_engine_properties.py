"""Property tests over random DAGs: every step one fate, dependency order, one ``done``.

Each generated skill has steps that need random earlier steps (or nothing, or the
step before by default), and each step randomly succeeds, fails (``fail`` or
``continue``), is skipped by its condition, sleeps a little, retries, or runs once
per item of a list (one or two at a time). A ``foreach`` step's items each get one
fate too, told apart by ``data.index``, also those that never started.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_util import Recorder, engine_for, skill
from sse_util import item_keys
from skillrun.engine.runner import CANCELLED

TERMINAL = {"step_completed", "step_degraded", "step_failed"}


@st.composite
def dags(draw: st.DrawFn) -> tuple[str, dict[str, list[str] | None], dict[str, str], dict[str, int]]:
    n = draw(st.integers(1, 8))
    ids = [f"s{i}" for i in range(n)]
    needs: dict[str, list[str] | None] = {}
    kinds: dict[str, str] = {}
    items: dict[str, int] = {}  # foreach steps: how many items
    lines = ["id: prop", 'version: "1"', f"max_parallel: {draw(st.integers(1, 4))}", "steps:"]
    for i, sid in enumerate(ids):
        need = draw(st.one_of(st.none(), st.lists(st.sampled_from(ids[:i]), unique=True) if i else st.just([])))
        needs[sid] = need
        kind = draw(st.sampled_from(["ok", "ok", "sleep", "fail", "continue", "skip", "flaky", "foreach"]))
        kinds[sid] = kind
        step = {"id": sid}
        if need is not None:
            step["needs"] = need
        if kind == "ok":
            step |= {"uses": "util.echo", "input": {"v": i}}
        elif kind == "sleep":
            step |= {"uses": "util.sleep", "input": {"ms": draw(st.integers(0, 3))}}
        elif kind in ("fail", "continue"):
            step |= {"uses": "util.fail", "on_error": kind}
        elif kind == "skip":
            step |= {"uses": "util.echo", "when": "false"}
        elif kind == "flaky":
            step |= {
                "uses": "util.flaky",
                "input": {"key": f"prop-{draw(st.uuids())}", "fail_times": draw(st.integers(0, 2))},
                "retry": {"max_attempts": draw(st.integers(1, 3)), "backoff": {"initial_ms": 0}},
            }
        else:
            items[sid] = draw(st.integers(0, 6))
            step |= {
                "uses": "util.sleep",
                "foreach": f"range({items[sid]})",
                "max_parallel": draw(st.integers(1, 2)),
                "input": {"ms": draw(st.integers(0, 1))},
            }
        lines.append(f"  - {_flow(step)}")
    return "\n".join(lines), needs, kinds, items


def _flow(value: Any) -> str:
    import json

    return json.dumps(value)


def _check(needs: dict[str, list[str] | None], items: dict[str, int], events: list[dict[str, Any]]) -> None:
    ids = list(needs)
    assert [e["type"] for e in events].count("done") == 1 and events[-1]["type"] == "done"
    # Every step, and every item of a foreach step: exactly one fate
    # (step_skipped, or step_start then one terminal event).
    for sid in ids:
        mine = [e for e in events if e.get("step_id") == sid]
        assert mine, f"{sid} has no fate"
        by_index: dict[Any, list[str]] = {}
        for e in mine:
            for _, index in item_keys(e):
                by_index.setdefault(index, []).append(e["type"])
        for index, types in by_index.items():
            fate = [t for t in types if t in TERMINAL | {"step_skipped", "step_start"}]
            assert fate == ["step_skipped"] or (len(fate) == 2 and fate[0] == "step_start" and fate[1] in TERMINAL), (
                sid, index, types,
            )
        if sid in items and None not in by_index:  # the step ran: every item has its fate
            assert sorted(by_index) == list(range(items[sid])), (sid, sorted(by_index))
    # Dependency order: a step starts only after every step it needs has its fate.
    pos = {}
    for n, e in enumerate(events):
        if e.get("step_id") is not None and e["type"] in TERMINAL | {"step_skipped"}:
            pos[e["step_id"]] = n  # the last fate event (foreach: the last item)
    for n, sid in enumerate(ids):
        deps = needs[sid] if needs[sid] is not None else ids[n - 1 : n]
        first = next((k for k, e in enumerate(events) if e.get("step_id") == sid and e["type"] == "step_start"), None)
        if first is not None:
            for d in deps:
                assert pos[d] < first, f"{sid} started before {d} ended"


def _run(text: str, cancel_after: float | None) -> tuple[list[dict[str, Any]], Any]:
    async def go() -> tuple[list[dict[str, Any]], Any]:
        s = skill(text)
        eng = engine_for(s)
        rec = Recorder()
        task = asyncio.create_task(eng.run(s, {}, rec, channel="http"))
        if cancel_after is not None:
            await asyncio.sleep(cancel_after)
            task.cancel(CANCELLED)
        outcome = await task
        events = rec.finish(s.id, outcome)  # check_order and the contract, too
        await asyncio.sleep(0)
        assert asyncio.all_tasks() == {asyncio.current_task()}, "a task outlived its run"
        return events, outcome

    return asyncio.run(go())


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_random_dags_give_every_step_one_fate_in_dependency_order(dag: Any) -> None:
    text, needs, kinds, items = dag
    events, outcome = _run(text, None)
    _check(needs, items, events)
    failed_hard = any(s["status"] == "failed" and kinds[s["id"]] in ("fail", "flaky") for s in outcome.steps)
    assert outcome.status == ("failed" if failed_hard else "completed")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags(), st.sampled_from([0.0, 0.001, 0.002, 0.004]))
def test_random_dags_cancelled_at_any_moment_still_end_cleanly(dag: Any, when: float) -> None:
    text, needs, _, items = dag
    events, outcome = _run(text, when)
    _check(needs, items, events)
    assert outcome.status in ("completed", "failed", "cancelled")
