"""Retry, on_error fallback, bounded foreach, nested skills and gates: their events and results."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest

from engine_util import Probe, engine_for, registry_with, run, skill
from sse_util import skipped_indices
from skillrun.engine import Capability, CapabilityError, GateResult
from skillrun.engine.runner import CANCELLED

pytestmark = pytest.mark.anyio


# ------------------------------------------------------------------ retry


async def test_retry_emits_step_retrying_per_failed_attempt_with_backoff_delays() -> None:
    s = skill(
        """
        id: retry
        version: "1"
        steps:
          - id: flaky
            uses: util.flaky
            retry: {max_attempts: 4, backoff: {initial_ms: 20, max_ms: 30, multiplier: 2}}
            input: {key: retry-test-1, fail_times: 3, value: ok}
        """
    )
    t0 = time.perf_counter()
    outcome, rec, _ = await run(engine_for(s), s)
    assert time.perf_counter() - t0 >= (20 + 30 + 30) / 1000
    assert outcome.status == "completed"
    assert rec.types("flaky") == ["step_start", "step_retrying", "step_retrying", "step_retrying", "step_completed"]
    retrying = [e["data"] for e in rec.of("step_retrying")]
    assert [r["attempt"] for r in retrying] == [1, 2, 3]
    assert [r["delay_ms"] for r in retrying] == [20, 30, 30]  # capped at max_ms
    assert retrying[0]["error"] == {"kind": "capability_error", "message": "flaky failure 1 for 'retry-test-1'"}
    assert rec.of("step_completed")[0]["data"]["produced_output"] == {"attempts": 4, "value": "ok"}


async def test_retry_gives_up_after_max_attempts_with_one_step_failed() -> None:
    s = skill(
        """
        id: retry2
        version: "1"
        steps:
          - id: flaky
            uses: util.flaky
            retry: {max_attempts: 2, backoff: {initial_ms: 1}}
            input: {key: retry-test-2, fail_times: 5}
        """
    )
    outcome, rec, _ = await run(engine_for(s), s)
    assert outcome.status == "failed"
    assert rec.types("flaky") == ["step_start", "step_retrying", "step_failed"]
    assert outcome.error == {"kind": "capability_error", "message": "flaky failure 2 for 'retry-test-2' (after 2 attempts)"}


async def test_retry_only_on_the_listed_error_kinds() -> None:
    s = skill(
        """
        id: retry3
        version: "1"
        steps:
          - id: flaky
            uses: util.flaky
            retry: {max_attempts: 5, backoff: {initial_ms: 1}, on: [timeout]}
            input: {key: retry-test-3, fail_times: 1, kind: capability_error}
        """
    )
    _, rec, _ = await run(engine_for(s), s)
    assert rec.types("flaky") == ["step_start", "step_failed"]


async def test_retry_jitter_shortens_delays_within_the_fraction() -> None:
    s = skill(
        """
        id: retry4
        version: "1"
        steps:
          - id: flaky
            uses: util.flaky
            retry: {max_attempts: 6, backoff: {initial_ms: 10, multiplier: 1}, jitter: 0.5}
            input: {key: retry-test-4, fail_times: 5}
        """
    )
    _, rec, _ = await run(engine_for(s, rng=random.Random(7)), s)
    delays = [e["data"]["delay_ms"] for e in rec.of("step_retrying")]
    assert len(delays) == 5 and all(5 <= d <= 10 for d in delays) and len(set(delays)) > 1


async def test_flaky_counts_are_per_run_so_concurrent_runs_with_one_key_each_retry() -> None:
    s = skill(
        """
        id: retry6
        version: "1"
        steps:
          - id: flaky
            uses: util.flaky
            retry: {max_attempts: 3, backoff: {initial_ms: 30}}
            input: {key: shared, fail_times: 1, value: ok}
        """
    )
    eng = engine_for(s)
    results = await asyncio.gather(*(run(eng, s) for _ in range(3)))
    for outcome, rec, _ in results:
        assert outcome.status == "completed"
        assert rec.types("flaky") == ["step_start", "step_retrying", "step_completed"]
        assert rec.of("step_completed")[0]["data"]["produced_output"] == {"attempts": 2, "value": "ok"}
    # and a later run starts from zero again
    _, rec, _ = await run(eng, s)
    assert rec.types("flaky") == ["step_start", "step_retrying", "step_completed"]


async def test_timeouts_are_retried_per_attempt() -> None:
    probe = Probe()
    reg = registry_with(probe.capability())
    s = skill(
        """
        id: retry5
        version: "1"
        steps:
          - id: slow
            uses: probe
            timeout: 50ms
            retry: {max_attempts: 3, backoff: {initial_ms: 1}, on: [timeout]}
            input: {ms: 1000, tag: slow}
        """,
        reg,
    )
    t0 = time.perf_counter()
    outcome, rec, _ = await run(engine_for(s, registry=reg), s)
    assert 0.15 <= time.perf_counter() - t0 < 0.6
    assert probe.cancelled == ["slow", "slow", "slow"]
    assert [e["data"]["error"]["kind"] for e in rec.of("step_retrying")] == ["timeout", "timeout"]
    assert outcome.error is not None and outcome.error["kind"] == "timeout"


# ------------------------------------------------------------------ on_error fallback


async def test_fallback_runs_the_alternative_and_its_output_is_the_steps() -> None:
    s = skill(
        """
        id: fb
        version: "1"
        steps:
          - id: primary
            uses: util.fail
            input: {message: primary down, kind: upstream}
            on_error:
              fallback:
                uses: util.echo
                input: {used: fallback, why: "${error.kind}: ${error.message}"}
          - {id: after, uses: util.echo, input: {got: "${steps.primary.used}"}}
        """
    )
    outcome, rec, _ = await run(engine_for(s), s)
    assert outcome.status == "completed"
    assert rec.types("primary") == ["step_start", "step_fallback", "step_completed"]
    assert rec.of("step_fallback")[0]["data"] == {"error": {"kind": "upstream", "message": "primary down"}, "uses": "util.echo"}
    done = rec.of("step_completed", "primary")[0]["data"]
    assert done["fallback"] == "util.echo"
    assert done["produced_output"] == {"used": "fallback", "why": "upstream: primary down"}
    assert rec.of("step_completed", "after")[0]["data"]["produced_output"] == {"got": "fallback"}


async def test_a_failing_fallback_fails_the_step_and_the_run() -> None:
    s = skill(
        """
        id: fb2
        version: "1"
        steps:
          - id: primary
            uses: util.fail
            on_error: {fallback: {uses: util.fail, input: {message: also down}}}
        """
    )
    outcome, rec, _ = await run(engine_for(s), s)
    assert outcome.status == "failed"
    assert rec.types("primary") == ["step_start", "step_fallback", "step_failed"]
    assert outcome.error == {"kind": "capability_error", "message": "fallback util.fail failed too: also down"}


# ------------------------------------------------------------------ foreach


async def test_foreach_runs_items_with_bounded_concurrency_and_keeps_their_order() -> None:
    probe = Probe()
    reg = registry_with(probe.capability())
    s = skill(
        """
        id: fe
        version: "1"
        steps:
          - id: each
            uses: probe
            foreach: "[50, 150, 100, 50, 100, 50]"
            max_parallel: 3
            input: {ms: "${item}", tag: "${string(index)}"}
        outputs:
          tags: {value: "${steps.each.map(r, r.tag)}"}
        """,
        reg,
    )
    t0 = time.perf_counter()
    outcome, rec, _ = await run(engine_for(s, registry=reg), s)
    elapsed = time.perf_counter() - t0
    assert probe.peak == 3
    assert elapsed < 0.45, elapsed  # 500 ms in a row; about 200 ms three at a time
    assert outcome.outputs == {"tags": ["0", "1", "2", "3", "4", "5"]}
    assert sorted(e["data"]["index"] for e in rec.of("step_completed")) == list(range(6))


async def test_foreach_item_failure_cancels_the_other_items() -> None:
    probe = Probe()
    reg = registry_with(probe.capability())
    s = skill(
        """
        id: fe2
        version: "1"
        steps:
          - id: each
            uses: probe
            foreach: "[0, 1, 2]"
            max_parallel: 3
            input: {ms: "${item == 1 ? 30 : 5000}", tag: "${string(item)}", fail: "${item == 1}"}
        """,
        reg,
    )
    t0 = time.perf_counter()
    outcome, rec, _ = await run(engine_for(s, registry=reg), s)
    assert time.perf_counter() - t0 < 0.5
    assert outcome.status == "failed"
    assert sorted(probe.cancelled) == ["0", "2"]
    kinds = {e["data"]["index"]: e["data"]["error"]["kind"] for e in rec.of("step_failed")}
    assert kinds == {0: "cancelled", 1: "capability_error", 2: "cancelled"}


@pytest.mark.parametrize("max_parallel", [1, 2])
async def test_foreach_items_that_never_start_after_a_failure_are_skipped(max_parallel: int) -> None:
    probe = Probe()
    reg = registry_with(probe.capability())
    s = skill(
        f"""
        id: fe5
        version: "1"
        steps:
          - id: each
            uses: probe
            foreach: "range(6)"
            max_parallel: {max_parallel}
            input: {{ms: "${{item == 1 ? 20 : {5 if max_parallel == 1 else 5000}}}", tag: "${{string(item)}}", fail: "${{item == 1}}"}}
        """,
        reg,
    )
    outcome, rec, _ = await run(engine_for(s, registry=reg), s)
    assert outcome.status == "failed"
    assert sorted(probe.started) == ["0", "1"]
    skipped = rec.of("step_skipped", "each")
    assert skipped_indices(skipped) == [2, 3, 4, 5]
    # One event for the run of items that never started (issue 17: 9,998 events for a cancel).
    assert [(e["data"]["index"], e["data"].get("last_index"), e["data"]["items"]) for e in skipped] == [(2, 5, 6)]
    assert skipped[0]["message"] == "Step 'each' items 2-5 skipped: not run: another item of step 'each' failed."
    assert {e["data"]["reason"] for e in skipped} == {"not run: another item of step 'each' failed"}


@pytest.mark.parametrize("max_parallel", [1, 2])
async def test_cancelling_a_foreach_gives_every_item_a_fate(max_parallel: int) -> None:
    probe = Probe()
    reg = registry_with(probe.capability())
    s = skill(
        f"""
        id: fe6
        version: "1"
        steps:
          - {{id: each, uses: probe, foreach: "range(5)", max_parallel: {max_parallel}, input: {{ms: 5000, tag: "${{string(item)}}"}}}}
        """,
        reg,
    )
    task = asyncio.create_task(run(engine_for(s, registry=reg), s))
    await asyncio.sleep(0.05)
    task.cancel(CANCELLED)
    outcome, rec, _ = await task  # run() checks the order rules: every item one fate
    assert outcome.status == "cancelled"
    assert len(probe.cancelled) == max_parallel
    failed = [e["data"]["index"] for e in rec.of("step_failed", "each")]
    skipped = skipped_indices(rec.of("step_skipped", "each"))
    assert sorted(failed) == list(range(max_parallel)) and skipped == list(range(max_parallel, 5))
    assert len(rec.of("step_skipped", "each")) == 1
    # The step stopped by the cancel shares the run's status in the result.
    assert outcome.steps == [{"id": "each", "status": "cancelled", "duration_ms": outcome.steps[0]["duration_ms"],
                              "error": {"kind": "cancelled", "message": "the run was cancelled"}}]
    assert {e["data"]["reason"] for e in rec.of("step_skipped")} == {"not run: the run was cancelled"}


async def test_foreach_with_continue_keeps_the_other_items() -> None:
    s = skill(
        """
        id: fe3
        version: "1"
        steps:
          - id: each
            uses: util.fail
            foreach: "[1, 2]"
            on_error: continue
          - {id: after, uses: util.echo, input: {n: "${size(steps.each)}"}}
        """
    )
    outcome, rec, _ = await run(engine_for(s), s)
    assert outcome.status == "completed"
    assert rec.of("step_completed", "after")[0]["data"]["produced_output"] == {"n": 2}
    assert outcome.steps[0]["status"] == "failed"


async def test_foreach_over_no_items_is_skipped_with_an_empty_list() -> None:
    s = skill(
        """
        id: fe4
        version: "1"
        steps:
          - {id: each, uses: util.echo, foreach: "[]"}
          - {id: after, uses: util.echo, input: {n: "${size(steps.each)}"}}
        """
    )
    _, rec, _ = await run(engine_for(s), s)
    assert rec.of("step_skipped", "each")[0]["data"]["reason"] == "foreach gave no items"
    assert rec.of("step_completed", "after")[0]["data"]["produced_output"] == {"n": 0}


# ------------------------------------------------------------------ nested skills

_CHILD = """
id: child
version: "1"
inputs: {type: object, required: [word], properties: {word: {type: string}}}
outputs:
  shout: {value: "${steps.up.text}"}
steps:
  - {id: up, uses: util.echo, input: {text: "${inputs.word + '!'}"}}
  - {id: also, uses: util.echo, needs: [], input: {x: 1}}
"""


async def test_nested_skill_events_are_forwarded_with_parent_and_path() -> None:
    child = skill(_CHILD, path="child.yaml")
    parent = skill(
        """
        id: parent
        version: "1"
        steps:
          - {id: call, uses: "skill:child", input: {word: hi}}
          - {id: each, uses: "skill:child", foreach: "['a', 'b']", input: {word: "${item}"}}
        outputs:
          one: {value: "${steps.call.shout}"}
          many: {value: "${steps.each.map(r, r.shout)}"}
        """
    )
    outcome, rec, events = await run(engine_for(child, parent), parent)
    assert outcome.outputs == {"one": "hi!", "many": ["a!", "b!"]}
    assert [e["step_id"] for e in events if e["type"] == "step_start"] == [
        "call", "call/up", "call/also", "each", "each[0]/up", "each[0]/also", "each", "each[1]/up", "each[1]/also",
    ]
    inner = rec.of("step_completed", "call/up")[0]["data"]
    assert inner["parent_step_id"] == "call" and inner["path"] == ["call", "up"] and "parent_index" not in inner
    item = rec.of("step_completed", "each[1]/up")[0]["data"]
    assert item["parent_step_id"] == "each" and item["parent_index"] == 1 and item["path"] == ["each", "up"]
    # The nested runs' own skill_start / skill_completed are not in the stream.
    assert [e["type"] for e in events].count("skill_start") == 1


async def test_grandchild_events_carry_the_full_path() -> None:
    child = skill(_CHILD, path="child.yaml")
    middle = skill(
        """
        id: middle
        version: "1"
        steps:
          - {id: inner, uses: "skill:child", input: {word: deep}}
        """
    )
    top = skill(
        """
        id: top
        version: "1"
        steps:
          - {id: outer, uses: "skill:middle", foreach: "[0]"}
        """
    )
    _, rec, _ = await run(engine_for(child, middle, top), top)
    data = rec.of("step_completed", "outer[0]/inner/up")[0]["data"]
    assert data["parent_step_id"] == "outer[0]/inner"
    assert data["path"] == ["outer", "inner", "up"]


async def test_nested_failure_fails_the_parent_step_and_bad_inputs_are_caught() -> None:
    child = skill(_CHILD, path="child.yaml")
    parent = skill(
        """
        id: parent2
        version: "1"
        steps:
          - {id: call, uses: "skill:child", input: {word: "${1 + 2}"}}
        """
    )
    outcome, rec, _ = await run(engine_for(child, parent), parent)
    assert outcome.status == "failed"
    assert outcome.error == {"kind": "input_invalid", "message": "skill 'child' inputs: word: 3 is not of type 'string'"}
    assert rec.types("call") == ["step_start", "step_failed"]


async def test_nested_depth_is_bounded_at_run_time() -> None:
    child = skill(_CHILD, path="child.yaml")
    parent = skill(
        """
        id: parent3
        version: "1"
        steps:
          - {id: call, uses: "skill:child", input: {word: x}}
        """
    )
    outcome, _, _ = await run(engine_for(child, parent, max_depth=0), parent)
    assert outcome.error == {"kind": "internal", "message": "nested skills go deeper than 0"}


async def test_cancelling_a_run_cancels_the_nested_skills_steps() -> None:
    probe = Probe()
    reg = registry_with(probe.capability())
    child = skill(
        """
        id: slowchild
        version: "1"
        steps:
          - {id: wait, uses: probe, input: {ms: 5000, tag: inner}}
        """,
        reg,
    )
    parent = skill(
        """
        id: slowparent
        version: "1"
        steps:
          - {id: call, uses: "skill:slowchild", timeout: 100ms}
        """,
        reg,
    )
    outcome, rec, _ = await run(engine_for(child, parent, registry=reg), parent)
    assert probe.cancelled == ["inner"]
    assert rec.of("step_failed", "call/wait")[0]["data"]["error"]["kind"] == "timeout"
    assert outcome.error is not None and outcome.error["kind"] == "timeout"


# ------------------------------------------------------------------ gates


def _flag_gate() -> Capability:
    """A gate finding ``secret`` anywhere in a value; redacts it."""

    async def gate(value: dict[str, Any]) -> GateResult:
        text = str(value)
        n = text.count("secret")
        redacted = {k: (v.replace("secret", "[X]") if isinstance(v, str) else v) for k, v in value.items()}
        return GateResult([{"kind": "secret", "count": n}] if n else [], redacted)

    return Capability("flag", gate, gate=True)


def _gated(policy: str, stage: str, text: str = "a secret") -> tuple[Any, Any]:
    reg = registry_with(_flag_gate())
    s = skill(
        f"""
        id: gated
        version: "1"
        steps:
          - {{id: s, uses: util.echo, gate: {{uses: flag, policy: {policy}, stage: {stage}}}, input: {{text: "{text}"}}}}
          - {{id: after, uses: util.echo, input: {{saw: "${{has(steps.s)}}"}}}}
        """,
        reg,
    )
    return s, engine_for(s, registry=reg)


async def test_post_gate_degrade_redacts_the_output() -> None:
    s, eng = _gated("degrade", "post")
    outcome, rec, _ = await run(eng, s)
    d = rec.of("step_degraded", "s")[0]["data"]
    assert d["produced_output"] == {"text": "a [X]"} and d["stage"] == "post" and d["findings"] == [{"kind": "secret", "count": 1}]
    assert outcome.steps[0]["status"] == "degraded"


async def test_pre_gate_degrade_runs_the_capability_on_the_redacted_input() -> None:
    s, eng = _gated("degrade", "pre")
    _, rec, _ = await run(eng, s)
    d = rec.of("step_degraded", "s")[0]["data"]
    assert d["produced_output"] == {"text": "a [X]"} and d["stage"] == "pre"


async def test_gate_fail_fails_the_step_with_kind_gate_failed() -> None:
    s, eng = _gated("fail", "post")
    outcome, rec, _ = await run(eng, s)
    assert outcome.error == {"kind": "gate_failed", "message": "gate flag found secret"}
    assert rec.types("s") == ["step_start", "step_failed"]


async def test_pre_gate_skip_skips_the_step_before_it_starts() -> None:
    s, eng = _gated("skip", "pre")
    outcome, rec, _ = await run(eng, s)
    assert rec.types("s") == ["step_skipped"]
    assert rec.of("step_skipped", "s")[0]["data"]["gate"] == "flag"
    assert rec.of("step_completed", "after")[0]["data"]["produced_output"] == {"saw": False}
    assert outcome.status == "completed"


async def test_post_gate_skip_drops_the_output() -> None:
    s, eng = _gated("skip", "post")
    _, rec, _ = await run(eng, s)
    d = rec.of("step_degraded", "s")[0]["data"]
    assert d["policy"] == "skip" and d["produced_output"] == {}
    assert rec.of("step_completed", "after")[0]["data"]["produced_output"] == {"saw": False}


@pytest.mark.parametrize("stage", ["pre", "post", "both"])
async def test_gate_warn_emits_gate_warning_and_keeps_the_value(stage: str) -> None:
    s, eng = _gated("warn", stage)
    _, rec, _ = await run(eng, s)
    assert rec.types("s") == ["step_start", *["gate_warning"] * (2 if stage == "both" else 1), "step_completed"]
    assert rec.of("step_completed", "s")[0]["data"]["produced_output"] == {"text": "a secret"}
    assert rec.of("step_completed", "after")[0]["data"]["produced_output"] == {"saw": True}


@pytest.mark.parametrize("stage", ["pre", "post"])
async def test_a_gate_that_breaks_fails_its_step_with_events_at_either_stage(stage: str) -> None:
    """Finding: pre- and post-gates were handled differently. A pre-gate whose capability
    raised ended the run with no ``step_start``/``step_failed`` for its step (the step had
    no fate in the stream); both stages now go through the same gate phase."""

    async def broken(value: dict[str, Any]) -> GateResult:
        raise CapabilityError("the scanner is down", "upstream")

    reg = registry_with(Capability("broken", broken, gate=True))
    s = skill(
        f"""
        id: brokengate
        version: "1"
        steps:
          - {{id: s, uses: util.echo, gate: {{uses: broken, policy: fail, stage: {stage}}}, input: {{text: x}}}}
        """,
        reg,
    )
    outcome, rec, _ = await run(engine_for(s, registry=reg), s)
    assert rec.types("s") == ["step_start", "step_failed"]
    error = {"kind": "upstream", "message": "gate broken: the scanner is down"}
    assert rec.of("step_failed", "s")[0]["data"]["error"] == error
    assert outcome.status == "failed" and outcome.error == error


async def test_clean_values_pass_every_gate_policy() -> None:
    for policy in ("degrade", "fail", "skip", "warn"):
        s, eng = _gated(policy, "both", text="nothing here")
        outcome, rec, _ = await run(eng, s)
        assert rec.types("s") == ["step_start", "step_completed"], policy
        assert outcome.status == "completed"


async def test_doc_pipeline_uses_every_feature_and_completes() -> None:
    from skillrun.capabilities import builtin_registry
    from skillrun.engine import load_skills
    from skillrun.settings import BUNDLED_SKILLS

    catalog, problems = load_skills([BUNDLED_SKILLS], builtin_registry())
    assert problems == []
    doc = catalog.get("doc.pipeline")
    assert doc is not None
    eng = engine_for(*catalog.all())
    text = "# One\nCall 555-123-4567 now. Call support now.\n\n# Two\nSteps run. Steps retry.\n\n# Three\nDone."
    outcome, rec, _ = await run(eng, doc, {"document": text, "flaky_failures": 1, "sentences_per_section": 1})
    assert outcome.status == "completed", outcome.error
    assert outcome.outputs["sections"] == 3 and outcome.outputs["delivered"] is False
    # The gate redacts the summaries (and so the digest); the raw input is the caller's own.
    assert "555-123-4567" not in str(rec.of("step_degraded", "summaries")) + outcome.outputs["digest"]
    assert "[REDACTED:phone]" in outcome.outputs["digest"]
    assert rec.of("step_retrying", "enrich") and rec.of("step_degraded", "summaries")
    assert [e["data"]["index"] for e in rec.of("step_start", "summaries")] == [0, 1, 2]
    assert rec.of("step_start", "summaries[0]/split")
    assert outcome.outputs["enrichment"].startswith("topics: ")
