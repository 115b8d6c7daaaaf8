"""The conformance rules for ``step_delta`` (issue 18): each is shown to hold on a good
log and to fail, under its own id, on a hand-made log that breaks it; then the live
behaviour (demo.ticker with ``progress``, cut and resumed in the middle) against a real
``skillrun serve``, and against that server behind a proxy that repeats on resume."""

from __future__ import annotations

import json
from typing import Any, Callable

import httpx
import pytest

from conftest import API_KEY, Server
from skillrun.conformance import Options, Result, run
from skillrun.conformance import behaviours as b
from skillrun.conformance.run import DELTA_CUT_AFTER, TICKER_DELTA_INPUTS
from skillrun.conformance.schemas import event_validator
from skillrun.conformance.sse import Frame, RuleViolation, check_delta_resume, check_order
from test_conformance import fake  # noqa: F401 - the fixture: our server behind a fault proxy


def _e(type_: str, step_id: str | None = None, **data: Any) -> dict[str, Any]:
    return {"type": type_, "step_id": step_id, "data": data}


def _delta(step_id: str = "a", sequence: int = 1, attempt: int = 1, index: int | None = None,
           **delta: Any) -> dict[str, Any]:
    place = {} if index is None else {"index": index}
    return _e("step_delta", step_id, **place, attempt=attempt, sequence=sequence, delta=delta or {"text": "x"})


def _run(*inside: dict[str, Any]) -> list[dict[str, Any]]:
    return [_e("skill_start", steps=["a"]), *inside, _e("skill_completed", status="completed"),
            {"type": "done", "status": "completed"}]


def _broken(events: list[dict[str, Any]]) -> str:
    with pytest.raises(RuleViolation) as caught:
        check_order(events)
    return caught.value.rule


START, END = _e("step_start", "a"), _e("step_completed", "a")


def test_deltas_inside_their_step_with_retries_and_items_hold_every_rule() -> None:
    """Text and progress deltas, numbered 1, 2, 3 per attempt, a retry starting attempt 2
    at sequence 1, two foreach items numbered on their own: a good log."""
    check_order(_run(
        START, _delta(sequence=1, text="Hel"), _delta(sequence=2, text="lo", progress=0.5),
        _e("step_retrying", "a", attempt=1),
        _delta(sequence=1, attempt=2, progress=0), _delta(sequence=2, attempt=2, progress=1), END,
        _e("step_start", "t", index=0), _e("step_start", "t", index=1),
        _delta("t", index=1, progress=0.5), _delta("t", index=0, progress=1.0), _delta("t", index=1, sequence=2, progress=1),
        _e("step_completed", "t", index=0), _e("step_completed", "t", index=1),
    ))


def test_a_resumed_run_numbers_a_restarted_instance_from_the_start() -> None:
    """After skill_resumed, the instance running at the seam starts over (a new step_start):
    its deltas are numbered from attempt 1, sequence 1 again."""
    check_order(_run(START, _delta(sequence=1), _e("step_retrying", "a"), _delta(sequence=1, attempt=2),
                     _e("skill_resumed"), START, _delta(sequence=1), END))


@pytest.mark.parametrize(("events", "rule"), [
    ([_delta(), START, END], "sse.step-lifecycle"),
    ([START, END, _delta()], "sse.step-lifecycle"),
    ([START, _delta("other"), END], "sse.step-lifecycle"),
], ids=["before its step_start", "after its terminal event", "of another step"])
def test_a_delta_outside_its_step_instance_breaks_sse_step_lifecycle(events: list[dict[str, Any]], rule: str) -> None:
    """step_delta before step_start, after step_completed, or for a step that is not running."""
    assert _broken(_run(*events)) == rule


@pytest.mark.parametrize("sequences", [[1, 3], [1, 1], [2], [0]], ids=["gap 1,3", "repeat 1,1", "starts at 2", "zero"])
def test_a_delta_sequence_with_a_gap_or_repeat_breaks_sse_delta_sequence(sequences: list[int]) -> None:
    """Within one attempt the sequence must run 1, 2, 3: 1,3 / 1,1 / 2 / 0 each break it."""
    assert _broken(_run(START, *[_delta(sequence=n) for n in sequences], END)) == "sse.delta-sequence"


def test_a_new_attempt_that_does_not_start_at_sequence_1_breaks_sse_delta_sequence() -> None:
    """Attempt 1 sequence 1, then attempt 2 sequence 2: the new attempt's numbering did not start over."""
    events = _run(START, _delta(sequence=1), _e("step_retrying", "a"), _delta(sequence=2, attempt=2), END)
    assert _broken(events) == "sse.delta-sequence"


def test_sequences_are_per_item_so_one_items_gap_is_found() -> None:
    """Items 0 and 1 each 1, 2 holds; item 1 going 1, 3 (while item 0 has a 2) breaks it."""
    items = [_e("step_start", "t", index=0), _e("step_start", "t", index=1)]
    ends = [_e("step_completed", "t", index=0), _e("step_completed", "t", index=1)]
    bad = [_delta("t", 1, index=0), _delta("t", 1, index=1), _delta("t", 2, index=0), _delta("t", 3, index=1)]
    assert _broken(_run(*items, *bad, *ends)) == "sse.delta-sequence"


def test_an_attempt_going_down_breaks_sse_delta_attempt() -> None:
    """Attempt 2 sequence 1, then attempt 1 sequence 1 within one instance."""
    events = _run(START, _delta(attempt=2), _delta(attempt=1), END)
    assert _broken(events) == "sse.delta-attempt"


@pytest.mark.parametrize("delta", [{"other": 1}, {"progress": 1.5}, {"progress": -0.1}, {"progress": "0.5"},
                                   {"progress": True}, {"text": 7}, {"text": None, "progress": None}],
                         ids=["neither", "progress 1.5", "progress -0.1", "progress a string", "progress true",
                              "text a number", "both null"])
def test_a_delta_without_text_or_progress_in_range_breaks_sse_delta_shape(delta: dict[str, Any]) -> None:
    """delta {} (nothing in it), progress outside [0, 1] or not a number, text not a string."""
    assert _broken(_run(START, _delta(**delta), END)) == "sse.delta-shape"


def _frames(*kinds: str) -> list[Frame]:
    return [Frame(kind, json.dumps({"type": kind, "n": n}), str(n)) for n, kind in enumerate(kinds, 1)]


LOG = _frames("skill_start", "step_start", "step_delta", "step_delta", "step_delta", "step_completed",
              "skill_completed", "done")


def test_a_resume_after_a_delta_that_gives_the_rest_holds_resume_deltas() -> None:
    check_delta_resume(LOG, LOG[:3], LOG[3:])


@pytest.mark.parametrize(("before", "after"), [(LOG[:3], LOG[4:]), (LOG[:3], LOG[2:]), (LOG[:4], LOG[3:] + LOG[3:4]),
                                               (LOG[:3], [Frame("step_delta", '{"changed": 1}', "4"), *LOG[4:]])],
                         ids=["a delta lost", "the delta at the cut repeated", "a delta repeated later",
                              "a delta changed"])
def test_a_resume_that_loses_or_repeats_a_delta_breaks_resume_deltas(before: list[Frame], after: list[Frame]) -> None:
    """Cut right after a step_delta, resumed with Last-Event-ID: the next delta missing, the one
    at the cut sent again, one sent twice, or one whose data differs from the log's."""
    with pytest.raises(RuleViolation) as caught:
        check_delta_resume(LOG, before, after)
    assert caught.value.rule == "resume.deltas"


def _delta_results(url: str) -> list[Result]:
    return [r for r in run(Options(url, API_KEY, fuzz=False, close_timeout_s=1.5)) if r.rule.startswith(
        ("resume.deltas", "sse.delta", "sse.step-lifecycle"))]


def test_the_delta_behaviour_passes_against_a_real_server(server: Server) -> None:
    """demo.ticker with progress: true, cut after its third step_delta and resumed: every rule holds."""
    results = _delta_results(server.url)
    assert [(r.rule, r.outcome) for r in results] == [("resume.deltas", "passed")], results


def test_the_live_run_really_streams_deltas_and_cuts_in_the_middle(server: Server) -> None:
    """The behaviour's own inputs and cut (demo.ticker, 8 items of 150 ms with progress, cut after
    the third delta) judge a run with deltas on both sides of the cut, not a run that ended first."""
    with httpx.Client(timeout=30) as client:
        validate = event_validator(client.get(server.url + "/openapi.json", headers={"x-api-key": API_KEY}).json())
        target = b.Target(server.url, API_KEY, "demo.ticker", dict(TICKER_DELTA_INPUTS), validate)
        r = client.post(f"{server.url}/v1/skills/demo.ticker/execute/async", headers=target.headers(),
                        json={"inputs": target.inputs})
        before = b._frames_until_delta(client, target, r.json()["run_id"], DELTA_CUT_AFTER)
        status = client.get(f"{server.url}/v1/runs/{r.json()['run_id']}", headers=target.headers()).json()["status"]
        b.check_deltas_live(client, target, DELTA_CUT_AFTER)
    assert [f.event for f in before].count("step_delta") == DELTA_CUT_AFTER and before[-1].event == "step_delta"
    assert status == "running"  # the cut was in the middle of the run


def test_a_server_that_repeats_on_resume_breaks_resume_deltas(fake: Callable[[str], str]) -> None:
    """A proxy that resumes one event early: the delta at Last-Event-ID comes twice."""
    results = _delta_results(fake("resume-repeats"))
    assert [(r.rule, r.outcome) for r in results] == [("resume.deltas", "failed")], results
    assert "repeated" in results[0].detail


def test_without_demo_ticker_the_delta_behaviour_says_it_was_skipped(app_factory: Callable[..., Any],
                                                                      tmp_path: Any) -> None:
    """A user's own server without demo.ticker: skipped with the reason, nothing failed."""
    from test_conformance import USER_SKILL, Background

    (tmp_path / "user.echo.yaml").write_text(USER_SKILL)
    app = app_factory(include_bundled_skills=False, skill_dirs=[tmp_path], db=":memory:")
    with Background(app) as bare:
        results = [r for r in run(Options(bare.url, API_KEY, skills=["user.echo"], fuzz=False))
                   if r.rule == "resume.deltas"]
    assert [(r.outcome, r.detail) for r in results] == [("skipped", "demo.ticker is not loaded")]
