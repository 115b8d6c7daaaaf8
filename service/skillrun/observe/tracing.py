"""OpenTelemetry traces (the optional extra ``skillrun[otel]``), and W3C trace context.

Spans (names and attributes after the GenAI semantic conventions where they fit):
``{method} {route}`` for each HTTP request (a child of an incoming ``traceparent``),
``invoke_workflow {skill_id}`` for each run, a child ``execute_tool {capability}``
per capability call of a step attempt (with step id, index, attempt, outcome and
error type; a fallback's call is marked ``skillrun.step.fallback`` instead of
counting as an attempt), a nested skill's steps under their parent step's span; retries,
fallbacks and gate findings are span events. A stream's server span carries its
time to first event (an event and an attribute) apart from its lifetime (the span).

Configured by the standard ``OTEL_*`` variables: tracing is on when an OTLP
endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``..._TRACES_ENDPOINT``) or
``OTEL_TRACES_EXPORTER`` (other than ``none``) is set and ``OTEL_SDK_DISABLED``
is not; the SDK itself reads the sampler, service name, headers and the rest.
Off (not installed or not configured), nothing here imports ``opentelemetry``.

Whether on or off, an incoming ``traceparent`` names the run's trace (it wins over
``x-trace-id``), and ``http.request`` sends a ``traceparent`` in that trace.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from typing import TYPE_CHECKING, Any, AsyncContextManager, AsyncIterator, Iterator, Mapping

from .. import events as ev
from ..engine.hooks import NOTHING
from .context import RUN, STEP

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

# W3C Trace Context, section 3.2: version-traceid-parentid-flags, lowercase hex.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_HEX32 = re.compile(r"[0-9a-f]{32}")


def parse_traceparent(value: str | None) -> str | None:
    """The trace id of a valid ``traceparent`` header, else None (then it is ignored, as the spec says)."""
    if not value:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, parent_id, _flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return trace_id


def otel_enabled(env: Mapping[str, str] = os.environ) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(exporter or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


class Tracing:
    """The app's tracer: its own ``TracerProvider`` (never the process-global one)."""

    def __init__(self, provider: "TracerProvider") -> None:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        from .. import __version__

        self.provider = provider
        self.tracer = provider.get_tracer("skillrun", __version__)
        self._trace = trace
        self.propagator = TraceContextTextMapPropagator()

    @classmethod
    def from_env(cls) -> "Tracing | None":
        """Tracing as the ``OTEL_*`` variables configure it; None when off or not installed."""
        if not otel_enabled():
            return None
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            import logging

            logging.getLogger(__name__).warning(
                "OTEL_* variables are set but the otel extra is not installed (pip install 'skillrun[otel]')"
            )
            return None
        resource = Resource.create({} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "skillrun"})
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider)

    def shutdown(self) -> None:
        self.provider.shutdown()  # flushes what the batch processor still holds

    # ---------------------------------------------------------------- ids

    def current_ids(self) -> tuple[str, str] | None:
        """(trace id, span id) of the current span, if there is one."""
        ctx = self._trace.get_current_span().get_span_context()
        if not ctx.is_valid:
            return None
        return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")

    def inject(self, headers: dict[str, str]) -> None:
        self.propagator.inject(headers)

    # ---------------------------------------------------------------- HTTP server spans

    @contextlib.contextmanager
    def server_span(self, method: str, headers: Mapping[str, str], path: str) -> Iterator[Any]:
        from opentelemetry.trace import SpanKind

        parent = self.propagator.extract(headers)
        with self.tracer.start_as_current_span(
            method, context=parent, kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
        ) as span:
            yield span

    def finish_server_span(self, span: Any, method: str, route: str, status: int) -> None:
        from opentelemetry.trace import StatusCode

        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(StatusCode.ERROR)

    def current_span(self) -> Any:
        return self._trace.get_current_span()

    # ---------------------------------------------------------------- the engine's hook

    def engine_tracer(self) -> "EngineTracer":
        return EngineTracer(self)

    def span_events(self, type: str, step_id: str | None, data: Any) -> None:
        """A run writer's observer: retries, fallbacks and gate outcomes as events of the
        current span (the run's, or a nested skill's parent step's)."""
        if type not in _SPAN_EVENTS:
            return
        data = data or {}
        if type == ev.STEP_SKIPPED and "gate" not in data:
            return  # only a gate's skip is a gate outcome
        attributes: dict[str, Any] = {"skillrun.step.id": step_id or ""}
        if data.get("index") is not None:
            attributes["skillrun.step.index"] = data["index"]
        if "attempt" in data:
            attributes["skillrun.step.attempt"] = data["attempt"]
        error = data.get("error")
        if isinstance(error, dict):
            attributes["error.type"] = str(error.get("kind"))
        if isinstance(data.get("findings"), list):
            attributes["skillrun.gate.findings"] = len(data["findings"])
        for key in ("gate", "policy", "uses", "stage"):
            if isinstance(data.get(key), str):
                attributes[f"skillrun.{key}"] = data[key]
        self._trace.get_current_span().add_event(type, attributes)


_SPAN_EVENTS = frozenset({ev.STEP_RETRYING, ev.STEP_FALLBACK, ev.GATE_WARNING, ev.STEP_DEGRADED, ev.STEP_SKIPPED})


def _error_type(exc: BaseException) -> str:
    kind = getattr(exc, "kind", None)
    return kind if isinstance(kind, str) else type(exc).__name__


class EngineTracer:
    """``engine.hooks.Tracer`` with OpenTelemetry spans."""

    def __init__(self, tracing: Tracing) -> None:
        self._tracing = tracing
        self._tracer = tracing.tracer
        self._trace = tracing._trace

    def _run_parent(self) -> tuple[Any, list[Any]]:
        """The run's span's parent context and links.

        The parent is the current context (the request's span, which started the run's
        task), unless the run's trace id (an ``x-trace-id`` of W3C shape) differs from
        it: then a remote parent in that trace, so the run's spans carry the trace id its
        events do, and a link back to the request's span, so neither trace loses the
        other. Any other run trace id (a caller's own correlation id such as
        ``order-1234``) cannot be an OpenTelemetry trace id: the run stays in the
        request's trace and carries it as ``skillrun.trace_id`` (see ``run``)."""
        from opentelemetry import trace

        run = RUN.get()
        current = trace.get_current_span().get_span_context()
        if run is None or not _HEX32.fullmatch(run.trace_id) or run.trace_id == _ZERO_TRACE:
            return None, []
        if current.is_valid and format(current.trace_id, "032x") == run.trace_id:
            return None, []
        remote = trace.SpanContext(
            int(run.trace_id, 16), int(secrets.token_hex(8), 16), is_remote=True,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
        )
        links = [trace.Link(current, {"skillrun.link": "request"})] if current.is_valid else []
        return trace.set_span_in_context(trace.NonRecordingSpan(remote)), links

    @contextlib.asynccontextmanager
    async def run(self, skill_id: str, channel: str) -> AsyncIterator[None]:
        from opentelemetry.trace import StatusCode

        run = RUN.get()
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_workflow",
            "gen_ai.workflow.name": skill_id,
            "skillrun.channel": channel,
        }
        if run is not None:
            attributes["skillrun.run.id"] = run.run_id
            # The run's trace id as its events carry it: a caller's own id can be found.
            attributes["skillrun.trace_id"] = run.trace_id
        parent, links = self._run_parent()
        with self._tracer.start_as_current_span(
            f"invoke_workflow {skill_id}", context=parent, links=links, attributes=attributes,
            record_exception=False, set_status_on_exception=False,
        ) as span:
            try:
                yield
            except BaseException as exc:
                span.set_attribute("error.type", _error_type(exc))
                span.set_status(StatusCode.ERROR, str(exc)[:200] or None)
                raise

    # Both hand out ``_call_span`` itself: a wrapping context manager would cost a few
    # microseconds more per capability call (bench/observe.py).
    def attempt(self, step_id: str, uses: str) -> AsyncContextManager[None]:
        if self._unsampled():
            return _NOTHING
        return self._call_span(step_id, uses, fallback=False)

    def fallback(self, step_id: str, uses: str) -> AsyncContextManager[None]:
        if self._unsampled():
            return _NOTHING
        return self._call_span(step_id, uses, fallback=True)

    def _unsampled(self) -> bool:
        """Inside a run whose trace is not sampled: a child span would be dropped too
        (parent-based sampling), yet cost about as much to make as a recorded one
        (bench/observe.py: a 10,000-step stream at 1% sampling cost twice the CPU).
        Outgoing calls then carry the run span's unsampled ``traceparent``."""
        span = self._trace.get_current_span()
        return not span.is_recording() and span.get_span_context().is_valid

    @contextlib.asynccontextmanager
    async def _call_span(self, step_id: str, uses: str, *, fallback: bool) -> AsyncIterator[None]:
        """``execute_tool {uses}``: an attempt counts up ``skillrun.step.attempt``; a
        fallback's call is marked ``skillrun.step.fallback`` and counts no attempt (so a
        step that failed twice and fell back shows attempts 1, 2 and one fallback)."""
        from opentelemetry.trace import StatusCode

        instance = STEP.get()
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": uses,
            "skillrun.step.id": instance.step_id if instance is not None else step_id,
        }
        if fallback:
            attributes["skillrun.step.fallback"] = True
        token = None
        if instance is not None:
            if not fallback:
                instance.attempts += 1
                attributes["skillrun.step.attempt"] = instance.attempts
            if instance.index is not None:
                attributes["skillrun.step.index"] = instance.index
            # A nested skill's steps mark their own instances; the parent's is back after.
            token = STEP.set(instance)
        try:
            with self._tracer.start_as_current_span(
                f"execute_tool {uses}", attributes=attributes, record_exception=False, set_status_on_exception=False
            ) as span:
                try:
                    yield
                except BaseException as exc:
                    span.set_attribute("skillrun.step.outcome", "cancelled" if _cancelled(exc) else "failed")
                    span.set_attribute("error.type", _error_type(exc))
                    span.set_status(StatusCode.ERROR, str(exc)[:200] or None)
                    raise
                span.set_attribute("skillrun.step.outcome", "completed")
        finally:
            if token is not None:
                STEP.reset(token)


_NOTHING: AsyncContextManager[None] = NOTHING  # the engine enters no context for it


def _cancelled(exc: BaseException) -> bool:
    import asyncio

    return isinstance(exc, asyncio.CancelledError)


def incoming_trace_id(headers: Mapping[str, str], tracing: Tracing | None) -> str | None:
    """The run's trace id from a request: ``traceparent``'s, else ``x-trace-id``, else the
    request span's (tracing on), else None (the run manager makes one)."""
    trace_id = parse_traceparent(headers.get("traceparent"))
    if trace_id is not None:
        return trace_id
    given = headers.get("x-trace-id")
    if given:
        return given
    if tracing is not None:
        ids = tracing.current_ids()
        if ids is not None:
            return ids[0]
    return None


class Propagation:
    """``traceparent`` for a capability's outgoing request: the current span's (tracing
    on), else one in the run's trace with a fresh parent id (when the run's trace id has
    the W3C shape), so a called service joins the run's trace either way."""

    def __init__(self, tracing: Tracing | None) -> None:
        self.tracing = tracing

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.tracing is not None:
            self.tracing.inject(out)
            if out:
                return out
        run = RUN.get()
        if run is not None and _HEX32.fullmatch(run.trace_id) and run.trace_id != _ZERO_TRACE:
            out["traceparent"] = f"00-{run.trace_id}-{secrets.token_hex(8)}-01"
        return out
