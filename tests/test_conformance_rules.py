"""The stream rules of ``skillrun.conformance.sse``: each broken body names its rule id."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from conftest import ROOT
from skillrun.conformance import RULES, RuleViolation
from skillrun.conformance.schemas import event_validator
from skillrun.conformance.sse import check_stream

TRACE = "t-1"


def frame(n: int, kind: str, event: str | None = None, **fields: Any) -> str:
    data = {"type": kind, "message": kind, "timestamp": "2026-01-01T00:00:00.000Z", "step_id": None,
            "trace_id": TRACE, "run_id": "run_1", "data": {}, **fields}
    if kind == "done":
        data = {"type": "done", "message": "done", "status": "completed", "skill_id": "s", "trace_id": TRACE,
                "run_id": "run_1", "outputs": {}, "steps": {}, "duration_ms": 1, **fields}
    return f"id: {n}\nevent: {event or kind}\ndata: {json.dumps(data)}\n\n"


def good() -> list[str]:
    return [frame(1, "skill_start"), frame(2, "step_start", step_id="a"), frame(3, "step_completed", step_id="a"),
            frame(4, "skill_completed"), frame(5, "done")]


def broken_rule(frames: list[str], **kwargs: Any) -> str:
    with pytest.raises(RuleViolation) as caught:
        check_stream("".join(frames), header_trace=TRACE, **kwargs)
    assert caught.value.rule in RULES
    return caught.value.rule


def test_a_good_stream_holds_every_rule() -> None:
    assert [e["type"] for e in check_stream("".join(good()), header_trace=TRACE, sent_trace=TRACE)][-1] == "done"


@pytest.mark.parametrize(("name", "frames", "rule"), [
    ("first event not skill_start", good()[1:], "sse.first-skill-start"),
    ("no done", good()[:-1], "sse.done-last"),
    ("two done", [*good(), frame(6, "done")], "sse.done-last"),
    ("ids out of order", [good()[0], good()[2], good()[1], *good()[3:]], "sse.ids-increasing"),
    ("a repeated id", [*good()[:2], good()[1], *good()[2:]], "sse.ids-increasing"),
    ("event: differs from type", [good()[0], frame(2, "step_start", event="step_begin", step_id="a"), *good()[2:]],
     "sse.event-is-type"),
    ("terminal event without start", [good()[0], good()[2], *good()[3:]], "sse.step-lifecycle"),
    ("a heartbeat that is a field", [good()[0], "ping: 1\n\n", *good()[1:]], "sse.heartbeat-comment"),
    ("another trace inside", [*good()[:2], frame(3, "step_completed", step_id="a", trace_id="other"), *good()[3:]],
     "sse.trace-echoed"),
])
def test_each_broken_stream_names_its_rule(name: str, frames: list[str], rule: str) -> None:
    assert broken_rule(frames) == rule, name


def test_a_comment_heartbeat_is_fine() -> None:
    check_stream("".join([good()[0], ": ping\n\n", *good()[1:]]), header_trace=TRACE)


def test_the_sent_trace_must_be_echoed() -> None:
    assert broken_rule(good(), sent_trace="mine") == "sse.trace-echoed"


@pytest.mark.anyio
async def test_an_event_that_breaks_its_schema_names_sse_event_schema(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/skills/demo.ticker/execute/stream", json={"inputs": {"steps": 1}},
                          headers={"x-trace-id": TRACE})
    validate = event_validator((await client.get("/openapi.json")).json())
    check_stream(r.text, header_trace=TRACE, sent_trace=TRACE, validate=validate)  # the real one holds
    broken = r.text.replace('"step_id":"tick"', '"step_id":7', 1)
    assert broken != r.text
    assert broken_rule([broken], validate=validate) == "sse.event-schema"


def test_every_rule_id_is_documented() -> None:
    """docs/CONFORMANCE.md lists each rule id the command can report (CI dashboards name them)."""
    docs = (ROOT / "docs" / "CONFORMANCE.md").read_text()
    assert [rule for rule in RULES if f"`{rule}`" not in docs] == []
