"""x-trace-id that is no W3C trace id, and hostile trace context headers, with tracing on (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conftest import asgi_client
from sse_util import parse_sse
from skillrun.observe.tracing import parse_traceparent
from test_observe_traces import exporter, one, recorder, traced_app  # noqa: F401 (fixtures)

SKILLS = Path(__file__).parent / "observe_skills"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TEXT = {"text": "One thing. Another thing."}


def events_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(f.data) for f in parse_sse(text)[0]]


@pytest.mark.anyio
async def test_a_custom_x_trace_id_is_the_runs_trace_id_and_a_span_attribute(
    exporter: InMemorySpanExporter, recorder: Any
) -> None:
    """x-trace-id: order-1234 (no W3C trace id) on /execute/stream of a skill that calls
    http.request, tracing on: the run's trace_id is order-1234 in every event and the
    x-trace-id answer; the run span is the request span's child (same OpenTelemetry trace)
    and carries skillrun.trace_id=order-1234; the outgoing request's traceparent is in that
    OpenTelemetry trace."""
    app = traced_app(exporter, skill_dirs=[SKILLS], http_allow=["127.0.0.1"])
    url = f"http://127.0.0.1:{recorder.server_address[1]}/hook"
    async with asgi_client(app) as client:
        r = await client.post("/v1/skills/obs.call/execute/stream", json={"inputs": {"url": url}},
                              headers={"x-trace-id": "order-1234"})
    assert r.status_code == 200 and r.headers["x-trace-id"] == "order-1234"
    events = events_of(r.text)
    assert events[-1]["type"] == "done" and events[-1]["status"] == "completed", events[-1]
    assert {e["trace_id"] for e in events} == {"order-1234"}

    spans = list(exporter.get_finished_spans())
    server = one(spans, "POST /v1/skills/obs.call/execute/stream")
    run = one(spans, "invoke_workflow obs.call")
    assert run.parent is not None and run.parent.span_id == server.context.span_id
    assert run.context.trace_id == server.context.trace_id
    assert run.attributes["skillrun.trace_id"] == "order-1234"
    [(_path, headers, _body)] = recorder.seen
    sent = {k.lower(): v for k, v in headers.items()}["traceparent"]
    assert parse_traceparent(sent) == format(run.context.trace_id, "032x")


@pytest.mark.anyio
async def test_a_w3c_shaped_x_trace_id_names_the_runs_trace_linked_to_the_request(
    exporter: InMemorySpanExporter,
) -> None:
    """x-trace-id: 4bf92f3577b34da6a3ce929d0e0e4736 and no traceparent, tracing on: the run's
    spans are in that trace; the request span (a trace of its own) is linked from the run span,
    so the two traces find each other."""
    async with asgi_client(traced_app(exporter)) as client:
        r = await client.post("/v1/skills/text.summarize/execute", json={"inputs": TEXT},
                              headers={"x-trace-id": TRACE_ID})
    assert r.status_code == 200 and r.json()["trace_id"] == TRACE_ID
    spans = list(exporter.get_finished_spans())
    server = one(spans, "POST /v1/skills/text.summarize/execute")
    run = one(spans, "invoke_workflow text.summarize")
    assert format(run.context.trace_id, "032x") == TRACE_ID
    assert run.context.trace_id != server.context.trace_id
    assert [(link.context.trace_id, link.context.span_id) for link in run.links] == [
        (server.context.trace_id, server.context.span_id)
    ]


@pytest.mark.anyio
@pytest.mark.parametrize("trace_id", ["has space", "x" * 129, "semi;colon", "ümlaut"])
async def test_a_malformed_x_trace_id_is_a_400_naming_it(exporter: InMemorySpanExporter, trace_id: str) -> None:
    """x-trace-id 'has space', 129 characters, 'semi;colon' or 'ümlaut' (Latin-1 bytes), tracing
    on: a 400 problem naming x-trace-id (the spec's pattern), never a 5xx; no run starts."""
    async with asgi_client(traced_app(exporter)) as client:
        r = await client.post("/v1/skills/text.summarize/execute", json={"inputs": TEXT},
                              headers=[("x-trace-id", trace_id.encode("latin-1"))])
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "x-trace-id" in r.json()["detail"]
    assert not [s for s in exporter.get_finished_spans() if s.name.startswith("invoke_workflow")]


HOSTILE_TRACEPARENTS = [
    "garbage", "", "00-" + "0" * 32 + "-00f067aa0ba902b7-01", f"ff-{TRACE_ID}-00f067aa0ba902b7-01",
    f"00-{TRACE_ID.upper()}-00f067aa0ba902b7-01", f"00-{TRACE_ID}-00f067aa0ba902b7-01-extra",
    "00-" + "z" * 32 + "-" + "z" * 16 + "-zz", "-" * 300, f"00-{TRACE_ID}-00f067aa0ba902b7-01" * 40,
]


@pytest.mark.anyio
@pytest.mark.parametrize("traced", [False, True], ids=["otel-off", "otel-on"])
async def test_hostile_traceparent_and_tracestate_are_ignored(traced: bool, exporter: InMemorySpanExporter,
                                                              app_factory: Any) -> None:
    """traceparent 'garbage', empty, all-zero trace id, version ff, upper case, extra fields on
    version 00, non-hex, 300 dashes, 40 traceparents in a row, each with tracestate '=,=,,;;;'
    and x-trace-id 'mine': a 200 whose run keeps x-trace-id 'mine' (the invalid traceparent is
    ignored, as W3C Trace Context says), never a 4xx or 5xx."""
    app = traced_app(exporter) if traced else app_factory()
    async with asgi_client(app) as client:
        for value in HOSTILE_TRACEPARENTS:
            r = await client.post(
                "/v1/skills/text.summarize/execute", json={"inputs": TEXT},
                headers={"traceparent": value, "tracestate": "=,=,,;;;", "x-trace-id": "mine"},
            )
            assert r.status_code == 200, (value, r.text)
            assert r.json()["trace_id"] == "mine", value
