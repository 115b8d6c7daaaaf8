"""A step's on_error fallback is not one of its attempts (issue 14): spans and metrics tell them apart."""

from __future__ import annotations

import contextlib

import pytest
from conftest import asgi_client, make_settings
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from skillrun.http.app import create_app
from skillrun.observe.tracing import Tracing

DOCUMENT = "# One\nThe first part is short.\n"


def counter(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return 0.0


@pytest.mark.anyio
async def test_a_fallback_is_neither_an_attempt_nor_a_retry() -> None:
    """doc.pipeline with flaky_failures=5: its step ``enrich`` (util.flaky, max_attempts 3)
    fails all three attempts, then runs its fallback util.echo. The spans: util.flaky attempts
    1, 2, 3 (failed) and one util.echo span marked ``skillrun.step.fallback`` with no attempt
    number (before, the fallback's span was counted as attempt 4). The metrics: 2 retries and
    1 fallback for the step's capability, util.flaky."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(make_settings(), tracing=Tracing(provider))
    async with asgi_client(app) as client:
        r = await client.post("/v1/skills/doc.pipeline/execute",
                              json={"inputs": {"document": DOCUMENT, "flaky_failures": 5}})
        assert r.status_code == 200 and r.json()["status"] == "completed", r.text
        metrics = (await client.get("/metrics")).text

    calls = [s for s in exporter.get_finished_spans() if s.attributes.get("skillrun.step.id") == "enrich"
             and s.name.startswith("execute_tool ")]
    attempts = sorted((s for s in calls if s.name == "execute_tool util.flaky"),
                      key=lambda s: s.attributes["skillrun.step.attempt"])
    assert [(s.attributes["skillrun.step.attempt"], s.attributes["skillrun.step.outcome"]) for s in attempts] == [
        (1, "failed"), (2, "failed"), (3, "failed")
    ]
    assert all("skillrun.step.fallback" not in s.attributes for s in attempts)
    [fallback] = [s for s in calls if s.name == "execute_tool util.echo"]
    assert fallback.attributes["skillrun.step.fallback"] is True
    assert "skillrun.step.attempt" not in fallback.attributes
    assert fallback.attributes["skillrun.step.outcome"] == "completed"

    labels = {"skill": "doc.pipeline", "capability": "util.flaky"}
    assert counter(metrics, "skillrun_step_retries_total", **labels) == 2
    assert counter(metrics, "skillrun_step_fallbacks_total", **labels) == 1
    assert counter(metrics, "skillrun_step_fallbacks_total", skill="doc.pipeline", capability="util.echo") == 0


@pytest.mark.anyio
async def test_an_unsampled_run_makes_no_attempt_spans_and_still_completes() -> None:
    """Sampler ratio 0 (parent-based): doc.pipeline with flaky_failures=5 completes (retries and
    fallback included) and no span at all is exported: attempt and fallback spans of an unsampled
    run are not made (they would be dropped, at nearly the cost of a recorded one)."""
    from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBasedTraceIdRatio(0.0))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(make_settings(), tracing=Tracing(provider))
    async with asgi_client(app) as client:
        r = await client.post("/v1/skills/doc.pipeline/execute",
                              json={"inputs": {"document": DOCUMENT, "flaky_failures": 5}})
    assert r.status_code == 200 and r.json()["status"] == "completed", r.text
    assert list(exporter.get_finished_spans()) == []
    # Inside an unsampled span the hook hands out the empty context, not a span of its own.
    engine = Tracing(provider).engine_tracer()
    with provider.get_tracer("t").start_as_current_span("unsampled run") as run:
        assert not run.is_recording()
        assert isinstance(engine.attempt("s", "util.echo"), contextlib.nullcontext)
        assert isinstance(engine.fallback("s", "util.echo"), contextlib.nullcontext)
    sampled = TracerProvider()
    with sampled.get_tracer("t").start_as_current_span("sampled run"):
        assert not isinstance(Tracing(sampled).engine_tracer().attempt("s", "util.echo"), contextlib.nullcontext)
