"""OpenTelemetry spans and W3C trace context (issue 14): the span tree, the OTLP export, traceparent in and out."""

from __future__ import annotations

import http.server
import json
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
from conftest import API_KEY, asgi_client, make_settings, start_server
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from skillrun.http.app import create_app
from skillrun.observe.tracing import Tracing, parse_traceparent
from sse_util import parse_sse

SKILLS = Path(__file__).parent / "observe_skills"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
DOCUMENT = "# One\nMail alice@example.com about it.\n\n# Two\nThe second part is short.\n"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def traced_app(exporter: InMemorySpanExporter, **overrides: Any) -> Any:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return create_app(make_settings(**overrides), tracing=Tracing(provider))


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


@pytest.mark.anyio
async def test_span_tree_of_a_nested_retried_foreach_skill(exporter: InMemorySpanExporter) -> None:
    """doc.pipeline with traceparent in, a two-section document (foreach over the nested
    text.summarize, one section with an e-mail address) and flaky_failures=1: the server span is
    the traceparent's child, the run span its child, each capability call of each attempt a child
    of the run span (util.flaky twice: attempt 1 failed, attempt 2 completed), each foreach item's
    nested skill a child span with its own steps under it, the retry and the redaction span events."""
    async with asgi_client(traced_app(exporter)) as client:
        r = await client.post(
            "/v1/skills/doc.pipeline/execute",
            json={"inputs": {"document": DOCUMENT, "flaky_failures": 1}},
            headers={"traceparent": TRACEPARENT, "x-trace-id": "ignored-when-traceparent-comes"},
        )
    assert r.status_code == 200 and r.json()["status"] == "completed", r.text
    assert r.json()["trace_id"] == TRACE_ID
    spans = list(exporter.get_finished_spans())
    assert {format(s.context.trace_id, "032x") for s in spans} == {TRACE_ID}

    server = one(spans, "POST /v1/skills/doc.pipeline/execute")
    assert server.kind == SpanKind.SERVER
    assert server.parent is not None and format(server.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert server.attributes["http.route"] == "/v1/skills/doc.pipeline/execute"
    assert server.attributes["http.response.status_code"] == 200

    run = one(spans, "invoke_workflow doc.pipeline")
    assert run.parent is not None and run.parent.span_id == server.context.span_id
    assert run.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert run.attributes["gen_ai.workflow.name"] == "doc.pipeline"

    top = children(spans, run)
    flaky = sorted((s for s in top if s.name == "execute_tool util.flaky"), key=lambda s: s.attributes["skillrun.step.attempt"])
    assert [(s.attributes["skillrun.step.attempt"], s.attributes["skillrun.step.outcome"]) for s in flaky] == [
        (1, "failed"), (2, "completed")
    ]
    assert flaky[0].attributes["error.type"] == "capability_error"
    assert all(s.attributes["skillrun.step.id"] == "enrich" for s in flaky)
    assert flaky[1].attributes["gen_ai.operation.name"] == "execute_tool"
    assert flaky[1].attributes["gen_ai.tool.name"] == "util.flaky"

    nested = sorted((s for s in top if s.name == "execute_tool skill:text.summarize"),
                    key=lambda s: s.attributes["skillrun.step.index"])
    assert [s.attributes["skillrun.step.index"] for s in nested] == [0, 1]
    for item in nested:
        assert item.attributes["skillrun.step.id"] == "summaries"
        assert item.attributes["skillrun.step.attempt"] == 1
        inner = {s.name for s in children(spans, item)}
        assert {"execute_tool text.split_sentences", "execute_tool text.extractive_summary"} <= inner
        for s in children(spans, item):
            assert str(s.attributes["skillrun.step.id"]).startswith(f"summaries[{item.attributes['skillrun.step.index']}]/")

    retry_events = [e for e in run.events if e.name == "step_retrying"]
    assert len(retry_events) == 1
    assert retry_events[0].attributes["skillrun.step.id"] == "enrich"
    assert retry_events[0].attributes["error.type"] == "capability_error"


@pytest.mark.anyio
async def test_gate_outcomes_are_events_of_the_run_span(exporter: InMemorySpanExporter) -> None:
    """obs.degrade: a pii gate redacts one step's output and warns about another's: the run span
    has a step_degraded event (policy degrade, 1 finding) and a gate_warning event (1 finding)."""
    async with asgi_client(traced_app(exporter, skill_dirs=[SKILLS])) as client:
        r = await client.post("/v1/skills/obs.degrade/execute", json={"inputs": {}})
    assert r.status_code == 200
    run = one(list(exporter.get_finished_spans()), "invoke_workflow obs.degrade")
    events = {e.name: dict(e.attributes or {}) for e in run.events}
    assert events["step_degraded"]["skillrun.step.id"] == "redacted"
    assert events["step_degraded"]["skillrun.policy"] == "degrade"
    assert events["step_degraded"]["skillrun.gate.findings"] == 1
    assert events["gate_warning"]["skillrun.step.id"] == "warned"
    assert events["gate_warning"]["skillrun.gate.findings"] == 1


@pytest.mark.anyio
async def test_x_trace_id_names_the_trace_when_no_traceparent_comes(exporter: InMemorySpanExporter) -> None:
    """x-trace-id of W3C shape and no traceparent: the run keeps that id (as before) and its
    spans are in that trace."""
    tid = "0123456789abcdef0123456789abcdef"
    async with asgi_client(traced_app(exporter)) as client:
        r = await client.post(
            "/v1/skills/text.summarize/execute", json={"inputs": {"text": "A b. C d."}}, headers={"x-trace-id": tid}
        )
    assert r.json()["trace_id"] == tid
    run = one(list(exporter.get_finished_spans()), "invoke_workflow text.summarize")
    assert format(run.context.trace_id, "032x") == tid


def test_invalid_traceparents_are_ignored() -> None:
    """W3C Trace Context 3.2: all-zero ids, version ff, upper case, extra fields on version 00
    and short ids are invalid (the header is then ignored); a future version may add fields."""
    assert parse_traceparent(TRACEPARENT) == TRACE_ID
    for bad in ["00-" + "0" * 32 + "-00f067aa0ba902b7-01", f"00-{TRACE_ID}-0000000000000000-01",
                f"ff-{TRACE_ID}-00f067aa0ba902b7-01", TRACEPARENT.upper(), TRACEPARENT + "-extra",
                f"00-{TRACE_ID[:-1]}-00f067aa0ba902b7-01", "", "garbage"]:
        assert parse_traceparent(bad) is None, bad
    assert parse_traceparent(f"01-{TRACE_ID}-00f067aa0ba902b7-01-more") == TRACE_ID


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every request; keeps each request's path, headers and body on the server."""

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append((self.path, dict(self.headers), body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[Any]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.anyio
@pytest.mark.parametrize("traced", [False, True], ids=["otel-off", "otel-on"])
async def test_traceparent_in_gives_the_same_trace_id_in_every_event_and_in_http_request(
    traced: bool, recorder: Any, exporter: InMemorySpanExporter, app_factory: Callable[..., Any]
) -> None:
    """traceparent 00-4bf92f35...-00f067aa0ba902b7-01 with x-trace-id 'other' on /execute/stream of a
    skill whose step calls http.request: every event's trace_id, the x-trace-id response header and
    the outgoing request's traceparent all carry 4bf92f35... (with tracing off too)."""
    overrides: dict[str, Any] = {"skill_dirs": [SKILLS], "http_allow": ["127.0.0.1"]}
    app = traced_app(exporter, **overrides) if traced else app_factory(**overrides)
    url = f"http://127.0.0.1:{recorder.server_address[1]}/hook"
    async with asgi_client(app) as client:
        r = await client.post(
            "/v1/skills/obs.call/execute/stream", json={"inputs": {"url": url}},
            headers={"traceparent": TRACEPARENT, "x-trace-id": "other"},
        )
    assert r.status_code == 200
    assert r.headers["x-trace-id"] == TRACE_ID
    events = [json.loads(f.data) for f in parse_sse(r.text)[0]]
    assert events[-1]["type"] == "done" and events[-1]["status"] == "completed", events[-1]
    assert {e["trace_id"] for e in events} == {TRACE_ID}
    [(_path, headers, _body)] = recorder.seen
    sent = {k.lower(): v for k, v in headers.items()}["traceparent"]
    assert parse_traceparent(sent) == TRACE_ID
    if traced:  # the outgoing request's parent is the attempt's span
        spans = list(exporter.get_finished_spans())
        call = one(spans, "execute_tool http.request")
        assert sent.split("-")[2] == format(call.context.span_id, "016x")
        # The stream's span: its time to first event apart from its lifetime (the span itself).
        stream = one(spans, "POST /v1/skills/obs.call/execute/stream")
        first_ms = stream.attributes["skillrun.sse.time_to_first_event_ms"]
        assert [e.name for e in stream.events] == ["first_event"]
        assert stream.end_time is not None and stream.start_time is not None
        assert 0 < first_ms <= (stream.end_time - stream.start_time) / 1e6


class _OtlpReceiver(http.server.BaseHTTPRequestHandler):
    """A tiny OTLP/HTTP collector: decodes each /v1/traces body with opentelemetry-proto."""

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        body = self.rfile.read(int(self.headers["content-length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.received.append((self.path, self.headers.get("content-type"), request))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()
        self.wfile.write(b"")

    def log_message(self, *args: Any) -> None:
        pass


def test_the_otlp_exporter_really_sends_spans_when_otel_variables_are_set(tmp_path: Path) -> None:
    """A server started with OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_SERVICE_NAME sends its spans
    over OTLP/HTTP: a receiver of the test's own decodes a run's spans, in the traceparent's
    trace, with service.name from the variable."""
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtlpReceiver)
    receiver.received = []  # type: ignore[attr-defined]
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_address[1]}",
        "OTEL_SERVICE_NAME": "skillrun-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    server = start_server(tmp_path, env=env, args=["--db", ":memory:"])
    try:
        r = httpx.post(server.url + "/v1/skills/text.summarize/execute", json={"inputs": {"text": "A b. C d."}},
                       headers={"x-api-key": API_KEY, "traceparent": TRACEPARENT})
        assert r.status_code == 200
        names: set[str] = set()
        wanted = {"invoke_workflow text.summarize", "POST /v1/skills/text.summarize/execute",
                  "execute_tool text.split_sentences"}
        deadline = time.monotonic() + 20
        # Until every span wanted has come: the HTTP request's span ends after the run's,
        # and may come in a later batch (it did, in a CI run).
        while time.monotonic() < deadline and not wanted <= names:
            time.sleep(0.1)
            for path, content_type, request in list(receiver.received):
                assert path == "/v1/traces" and content_type == "application/x-protobuf"
                for rs in request.resource_spans:
                    service = {a.key: a.value.string_value for a in rs.resource.attributes}["service.name"]
                    assert service == "skillrun-under-test"
                    for ss in rs.scope_spans:
                        for span in ss.spans:  # (the health checks that waited for the server have their own)
                            if span.trace_id.hex() == TRACE_ID:
                                names.add(span.name)
        assert wanted <= names, names
    finally:
        server.stop()
        receiver.shutdown()
        receiver.server_close()


@pytest.mark.anyio
async def test_cors_lets_a_page_send_traceparent_and_tracestate(app_factory: Callable[..., Any]) -> None:
    """A preflight from an allowed origin asking for traceparent, tracestate (and x-api-key) is
    allowed: a browser app can join its own trace."""
    page = "https://app.example"
    async with asgi_client(app_factory(cors_origins=[page])) as client:
        r = await client.options(
            "/v1/skills/text.summarize/execute/stream",
            headers={"origin": page, "access-control-request-method": "POST",
                     "access-control-request-headers": "traceparent, tracestate, x-api-key, content-type"},
        )
    assert r.status_code == 200, r.text
    allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert {"traceparent", "tracestate"} <= allowed
