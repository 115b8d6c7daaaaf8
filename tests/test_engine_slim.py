"""The slim path for the instances of a plain step (``step.plain``, ``StepLife.plain``): a
``foreach``'s items and a step run once. It gives exactly the events and outcome of the
general path (``StepLife.live``), for runs that complete, fail, continue past a failure,
stop mid-step, stream deltas, skip on a condition or wait for input."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from skillrun.engine import Capability, Engine, RunOutcome, Skill
from skillrun.engine.capability import _STEP, emit_delta
from skillrun.engine.runner import CANCELLED, INTERRUPTED
from skillrun.engine.step import StepLife, plain

from engine_util import engine_for, registry_with, run, skill

pytestmark = pytest.mark.anyio

# Times differ from one run to the next; everything else must not.
_TIMES = {"timestamp", "duration_ms", "waited_ms", "expires_at"}
# A wait's expiry, also quoted in its timeout's message.
_AN_INSTANT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def _timeless(value: Any) -> Any:
    if isinstance(value, str):
        return _AN_INSTANT.sub("<instant>", value)
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k not in _TIMES}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


async def _stop_at(args: dict[str, Any]) -> dict[str, Any]:
    """Stops the run's task (with ``args["reason"]``) at item ``args["at"]``, from inside it."""
    if args.get("item") == args["at"]:
        task = asyncio.current_task()
        assert task is not None
        task.cancel(args["reason"])
        await asyncio.sleep(0)
    return {"item": args.get("item")}


_SINKS: list[Any] = []


async def _chatty(args: dict[str, Any]) -> dict[str, Any]:
    """Reports two deltas, and calls the delta sink of the item before it (ended: dropped)."""
    if _SINKS:
        _SINKS[-1]("late", 0.5)
    emit_delta(text=f"a{args.get('item')}")
    await asyncio.sleep(0.03)  # past the coalescing window: the second is its own event
    emit_delta(text="b", progress=1.0)
    _SINKS.append(_STEP.get())
    return {"item": args.get("item")}


REGISTRY = registry_with(Capability("test.stop_at", _stop_at), Capability("test.chatty", _chatty))


_SLIM_CALLS = [0]  # instances run by ``StepLife.plain`` so far (the spy below counts them)


@pytest.fixture(autouse=True)
def _count_slim_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    slim = StepLife.plain

    def counted(self: StepLife) -> Any:
        _SLIM_CALLS[0] += 1
        return slim(self)

    monkeypatch.setattr(StepLife, "plain", counted)


async def _both(s: Skill, inputs: dict[str, Any] | None = None, *, nested: tuple[Skill, ...] = (),
                **kwargs: Any) -> tuple[list[dict[str, Any]], RunOutcome]:
    """The run's events and outcome on the slim path, checked equal to the general path's."""
    results = []
    for slim in (True, False):
        engine = engine_for(s, *nested, registry=REGISTRY, **kwargs)
        engine.slim = slim
        slim_calls = _SLIM_CALLS[0]
        outcome, _rec, events = await run(engine, s, inputs)
        assert slim or _SLIM_CALLS[0] == slim_calls  # the general path never takes the slim one
        results.append((_timeless(events), outcome))
    (slim_events, slim_outcome), (general_events, general_outcome) = results
    assert slim_events == general_events
    assert slim_outcome.status == general_outcome.status
    assert slim_outcome.outputs == general_outcome.outputs
    assert slim_outcome.error == general_outcome.error
    assert _timeless(slim_outcome.steps) == _timeless(general_outcome.steps)
    return slim_events, slim_outcome


def _items(events: list[dict[str, Any]], type: str) -> list[int]:
    return [e["data"]["index"] for e in events if e["type"] == type and "index" in (e["data"] or {})]


async def test_the_ticker_takes_the_slim_path_and_gives_the_general_paths_events() -> None:
    ticker = skill(
        """
        id: ticker
        version: "1"
        inputs: {type: object, properties: {steps: {type: integer}, progress: {type: boolean}}}
        outputs:
          ticks: {value: "${size(steps.tick)}"}
        steps:
          - id: tick
            uses: util.sleep
            foreach: range(inputs.steps)
            input:
              ms: 0
              progress: "${inputs.progress ? double(index + 1) / double(inputs.steps) : null}"
        """
    )
    assert plain(ticker.steps[0])
    events, outcome = await _both(ticker, {"steps": 50, "progress": False})
    assert outcome.outputs == {"ticks": 50}
    assert [e["type"] for e in events] == ["skill_start", *["step_start", "step_completed"] * 50,
                                           "skill_completed", "done"]
    assert all(e["data"]["items"] == 50 for e in events if e["type"] == "step_start")
    # With progress, each item's delta comes between its step_start and its terminal event.
    events, _ = await _both(ticker, {"steps": 20, "progress": True})
    assert _items(events, "step_delta") == list(range(20))


async def test_deltas_and_a_late_sink_give_the_same_events() -> None:
    """A plain item makes its deltas' state at its first delta; a sink called after its
    item ended writes nothing, on either path."""
    s = skill(
        """
        id: chatty
        version: "1"
        steps:
          - {id: each, uses: test.chatty, foreach: range(3), input: {item: "${item}"}}
        """,
        REGISTRY,
    )
    _SINKS.clear()
    events, _ = await _both(s)
    deltas = [(e["data"]["index"], e["data"]["sequence"], e["data"]["delta"]) for e in events
              if e["type"] == "step_delta"]
    assert deltas == [(i, n, d) for i in range(3)
                      for n, d in ((1, {"text": f"a{i}"}), (2, {"text": "b", "progress": 1.0}))]


@pytest.mark.parametrize("on_error", ["fail", "continue"])
async def test_a_failing_item_gives_the_same_events(on_error: str) -> None:
    s = skill(
        f"""
        id: failing
        version: "1"
        steps:
          - id: each
            uses: util.flaky
            on_error: {on_error}
            foreach: range(8)
            input: {{key: "${{string(item)}}", fail_times: "${{item == 3 ? 1 : 0}}", value: "${{item}}"}}
          - {{id: after, uses: util.echo, input: {{n: 1}}}}
        """,
        REGISTRY,
    )
    assert plain(s.steps[0])
    events, outcome = await _both(s)
    assert _items(events, "step_failed") == [3]
    if on_error == "fail":
        assert outcome.status == "failed"
        skipped = [e for e in events if e["type"] == "step_skipped"]
        assert [(e["step_id"], e["data"].get("index"), e["data"].get("last_index")) for e in skipped] == [
            ("each", 4, 7), ("after", None, None)]
    else:
        assert outcome.status == "completed"
        assert _items(events, "step_completed") == [0, 1, 2, 4, 5, 6, 7]


async def test_an_item_whose_input_breaks_its_capabilitys_schema_or_its_expression() -> None:
    s = skill(
        """
        id: bad
        version: "1"
        steps:
          - id: each
            uses: util.sleep
            on_error: continue
            foreach: "[1, -1, 'x', 2]"
            input: {ms: "${item}"}
          - id: paths
            uses: util.echo
            on_error: continue
            foreach: "[{'x': 1}, 2]"
            input: {v: "${item.x}"}
        """,
        REGISTRY,
    )
    events, outcome = await _both(s)
    kinds = [(e["step_id"], e["data"]["index"], e["data"]["error"]["kind"]) for e in events if e["type"] == "step_failed"]
    assert kinds == [("each", 1, "input_invalid"), ("each", 2, "input_invalid"), ("paths", 1, "expression_error")]
    assert outcome.status == "completed"


@pytest.mark.parametrize("reason", [CANCELLED, INTERRUPTED])
async def test_a_run_stopped_mid_foreach_gives_the_same_events(reason: str) -> None:
    s = skill(
        f"""
        id: stopped
        version: "1"
        steps:
          - id: each
            uses: test.stop_at
            foreach: range(10)
            input: {{item: "${{item}}", at: 4, reason: {reason}}}
          - {{id: after, uses: util.echo, input: {{n: 1}}}}
        """,
        REGISTRY,
    )
    events, outcome = await _both(s)
    assert outcome.status == reason
    assert _items(events, "step_completed") == [0, 1, 2, 3]
    failed = [e for e in events if e["type"] == "step_failed"]
    assert [(e["data"]["index"], e["data"]["error"]["kind"]) for e in failed] == [(4, reason)]
    skipped = [(e["step_id"], e["data"].get("index"), e["data"].get("last_index"))
               for e in events if e["type"] == "step_skipped"]
    assert skipped == [("each", 5, 9), ("after", None, None)]


async def test_a_nested_skills_foreach_gives_the_same_events() -> None:
    child = skill(
        """
        id: child
        version: "1"
        inputs: {type: object, properties: {n: {type: integer}}}
        outputs:
          count: {value: "${size(steps.each)}"}
        steps:
          - {id: each, uses: util.echo, foreach: range(inputs.n), input: {v: "${item}"}}
        """
    )
    parent = skill(
        """
        id: parent
        version: "1"
        steps:
          - {id: outer, uses: "skill:child", foreach: range(2), input: {n: 3}}
        """
    )
    assert not plain(parent.steps[0]) and plain(child.steps[0])
    events, outcome = await _both(parent, nested=(child,))
    assert outcome.status == "completed"
    assert outcome.outputs == {} and len([e for e in events if e["type"] == "step_completed"]) == 2 + 2 * 3


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
def test_what_makes_a_step_plain(anyio_backend: str) -> None:
    base = """
        id: s
        version: "1"
        steps:
          - id: each
            uses: util.echo
            foreach: range(2)
            input: {v: 1}
    """.rstrip(" ")
    assert plain(skill(base).steps[0])
    for extra in ("retry: {max_attempts: 2}", "timeout: 1s", "gate: pii",
                  "on_error: {fallback: {uses: util.echo, input: {}}}"):
        assert not plain(skill(base + f"            {extra}\n").steps[0]), extra
    assert plain(skill(base + "            on_error: continue\n").steps[0])


# ---------------------------------------------------------------- single plain steps (no foreach)


async def _both_slim(s: Skill, inputs: dict[str, Any] | None = None, *, slim_instances: int,
                     **kwargs: Any) -> tuple[list[dict[str, Any]], RunOutcome]:
    """``_both``, and the slim run took the slim path for ``slim_instances`` instances."""
    before = _SLIM_CALLS[0]
    result = await _both(s, inputs, **kwargs)
    assert _SLIM_CALLS[0] - before == slim_instances
    return result


async def test_single_plain_steps_take_the_slim_path_and_give_the_same_events() -> None:
    """text.summarize's shape: a chain of single plain steps, outputs read from them."""
    s = skill(
        """
        id: chain
        version: "1"
        inputs: {type: object, properties: {text: {type: string}}}
        outputs:
          summary: {value: "${steps.summarize.summary}"}
          keywords: {value: "${steps.keywords.keywords}"}
        steps:
          - {id: split, uses: text.split_sentences, input: {text: "${inputs.text}"}}
          - id: summarize
            uses: text.extractive_summary
            input: {sentences: "${steps.split.sentences}", max_sentences: 1}
          - {id: keywords, uses: text.keywords, input: {text: "${inputs.text}", limit: 3}}
        """
    )
    assert all(plain(step) and step.foreach is None for step in s.steps)
    events, outcome = await _both_slim(s, {"text": "Skillrun runs skills. Each step is an event."},
                                       slim_instances=3)
    assert outcome.status == "completed" and outcome.outputs["summary"] and outcome.outputs["keywords"]
    assert [e["type"] for e in events] == ["skill_start", *["step_start", "step_completed"] * 3,
                                           "skill_completed", "done"]
    assert all("index" not in e["data"] and "items" not in e["data"] for e in events if e["type"] == "step_start")


@pytest.mark.parametrize("on_error", ["fail", "continue"])
async def test_a_failing_single_step_gives_the_same_events(on_error: str) -> None:
    s = skill(
        f"""
        id: failing
        version: "1"
        steps:
          - {{id: first, uses: util.echo, input: {{n: 1}}}}
          - {{id: flaky, uses: util.flaky, on_error: {on_error}, input: {{key: k, fail_times: 1}}}}
          - {{id: after, uses: util.echo, input: {{n: 2}}}}
        """,
        REGISTRY,
    )
    assert plain(s.steps[1])
    events, outcome = await _both_slim(s, slim_instances=2 if on_error == "fail" else 3)
    failed = [e for e in events if e["type"] == "step_failed"]
    assert [(e["step_id"], e["data"]["error"]["kind"]) for e in failed] == [("flaky", "capability_error")]
    if on_error == "fail":
        assert outcome.status == "failed" and outcome.error is not None
        assert [e["step_id"] for e in events if e["type"] == "step_skipped"] == ["after"]
    else:
        assert outcome.status == "completed"
        assert [e["step_id"] for e in events if e["type"] == "step_completed"] == ["first", "after"]


async def test_a_single_steps_bad_input_or_expression_gives_the_same_events() -> None:
    """Its input breaks its capability's schema, its expression fails (on_error continue
    and fail), its ``when`` fails (the step fails before it runs, on both paths)."""
    s = skill(
        """
        id: bad
        version: "1"
        inputs: {type: object, properties: {n: {type: integer}}}
        steps:
          - {id: schema, uses: util.sleep, on_error: continue, input: {ms: "${-inputs.n}"}}
          - {id: expression, uses: util.echo, on_error: continue, input: {v: "${inputs.n.x}"}}
          - {id: condition, uses: util.echo, on_error: continue, when: "inputs.n.x > 1", input: {v: 1}}
          - {id: last, uses: util.echo, input: {v: "${inputs.n.x}"}}
        """,
        REGISTRY,
    )
    # The failed ``when`` is no instance of the slim path: it fails before the step runs.
    events, outcome = await _both_slim(s, {"n": 1}, slim_instances=3)
    kinds = [(e["step_id"], e["data"]["error"]["kind"]) for e in events if e["type"] == "step_failed"]
    assert kinds == [("schema", "input_invalid"), ("expression", "expression_error"),
                     ("condition", "expression_error"), ("last", "expression_error")]
    assert outcome.status == "failed" and outcome.error is not None
    assert outcome.error["kind"] == "expression_error"


async def test_a_single_steps_condition_gives_the_same_events() -> None:
    """``when`` is no gate: the scheduler decides it before the instance (either path) runs."""
    s = skill(
        """
        id: conditions
        version: "1"
        inputs: {type: object, properties: {go: {type: boolean}}}
        steps:
          - {id: yes, uses: util.echo, when: inputs.go, input: {v: 1}}
          - {id: no, uses: util.echo, when: "!inputs.go", input: {v: 2}}
          - {id: after, uses: util.echo, input: {v: "${has(steps.no) ? 1 : 0}"}}
        """,
        REGISTRY,
    )
    assert all(plain(step) for step in s.steps)
    events, outcome = await _both_slim(s, {"go": True}, slim_instances=2)
    assert [e["step_id"] for e in events if e["type"] == "step_skipped"] == ["no"]
    assert outcome.status == "completed"


@pytest.mark.parametrize("reason", [CANCELLED, INTERRUPTED])
async def test_a_run_stopped_during_a_single_step_gives_the_same_events(reason: str) -> None:
    s = skill(
        f"""
        id: stopped
        version: "1"
        steps:
          - {{id: first, uses: util.echo, input: {{n: 1}}}}
          - {{id: stop, uses: test.stop_at, input: {{at: null, reason: {reason}}}}}
          - {{id: after, uses: util.echo, input: {{n: 1}}}}
        """,
        REGISTRY,
    )
    events, outcome = await _both_slim(s, slim_instances=2)
    assert outcome.status == reason
    failed = [(e["step_id"], e["data"]["error"]["kind"]) for e in events if e["type"] == "step_failed"]
    assert failed == [("stop", reason)]
    assert [e["step_id"] for e in events if e["type"] == "step_skipped"] == ["after"]


async def test_a_single_steps_deltas_and_a_late_sink_give_the_same_events() -> None:
    """The second step calls the first's sink (its step ended: nothing written), then
    reports its own two deltas, between its step_start and its step_completed."""
    s = skill(
        """
        id: chatty
        version: "1"
        steps:
          - {id: one, uses: test.chatty, input: {item: 1}}
          - {id: two, uses: test.chatty, input: {item: 2}}
        """,
        REGISTRY,
    )
    _SINKS.clear()
    events, _ = await _both_slim(s, slim_instances=2)
    types = [(e["type"], e["step_id"]) for e in events if e.get("step_id") == "two"]
    assert types == [("step_start", "two"), ("step_delta", "two"), ("step_delta", "two"), ("step_completed", "two")]
    assert [e["data"]["delta"] for e in events if e["type"] == "step_delta"] == [
        {"text": "a1"}, {"text": "b", "progress": 1.0}, {"text": "a2"}, {"text": "b", "progress": 1.0}]


async def test_a_single_step_that_waits_for_input_gives_the_same_events() -> None:
    """``human.input`` past its timeout: step_waiting, then step_failed (with waited_ms)."""
    s = skill(
        """
        id: waits
        version: "1"
        steps:
          - id: ask
            uses: human.input
            on_error: continue
            input: {prompt: "Go?", schema: {type: object}, timeout: 0.05}
          - {id: after, uses: util.echo, input: {n: 1}}
        """,
        REGISTRY,
    )
    assert plain(s.steps[0])
    events, outcome = await _both_slim(s, slim_instances=2)
    assert [(e["type"], e["step_id"]) for e in events if e.get("step_id") == "ask"] == [
        ("step_start", "ask"), ("step_waiting", "ask"), ("step_failed", "ask")]
    assert outcome.status == "completed"
