"""The app's observability: which of metrics and tracing are on, and the hooks the layers call."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from .. import events as ev
from ..runs.store import EventRecord
from .context import STEP, step_started
from .metrics import Metrics
from .tracing import Propagation, Tracing

Observer = Callable[[str, dict[str, Any]], None]
run_log = logging.getLogger("skillrun.runs")


def _mark_step(type: str, payload: dict[str, Any]) -> None:
    """The writer appends ``step_start`` in the step's own context: mark it current there
    (a step run inline marks the run's task: its end is no step's business any more)."""
    if type == ev.STEP_START:
        step_started(payload["step_id"], (payload.get("data") or {}).get("index"))
    elif type == ev.SKILL_COMPLETED:
        STEP.set(None)


def _log_outcomes(type: str, payload: dict[str, Any]) -> None:
    """A line per failed step and per ended run (in their contexts, so JSON lines carry
    the run's and step's ids). The error's kind only: a message may quote a URL with
    credentials in its query (the event stream is the place for the details)."""
    if type == ev.STEP_FAILED:
        if run_log.isEnabledFor(logging.INFO):
            error = (payload.get("data") or {}).get("error") or {}
            run_log.info("step %s failed (%s)", payload.get("step_id"), error.get("kind"))
    elif type == ev.DONE and run_log.isEnabledFor(logging.INFO):
        run_log.info(
            "run %s of %s %s in %.1f ms", payload.get("run_id"), payload.get("skill_id"), payload.get("status"),
            float(payload.get("duration_ms") or 0),
        )


class _Chain:
    __slots__ = ("parts",)

    def __init__(self, parts: list[Observer]) -> None:
        self.parts = parts

    def __call__(self, type: str, payload: dict[str, Any]) -> None:
        for part in self.parts:
            part(type, payload)


class StreamWatch:
    """One event stream: open streams, events sent by type, time to its first event."""

    __slots__ = ("obs", "started", "first")

    def __init__(self, obs: "Observability", resumed: bool) -> None:
        self.obs = obs
        self.started = time.perf_counter()
        self.first = False
        m = obs.metrics
        if m is not None:
            m.sse_streams_open.inc()
            if resumed:
                m.sse_resumes.inc()

    def sent(self, batch: list[EventRecord]) -> None:
        m = self.obs.metrics
        if not self.first:
            self.first = True
            seconds = time.perf_counter() - self.started
            if m is not None:
                m.sse_time_to_first_event.observe(seconds)
            if self.obs.tracing is not None:
                span = self.obs.tracing.current_span()
                span.set_attribute("skillrun.sse.time_to_first_event_ms", round(seconds * 1000, 3))
                span.add_event("first_event")
        if m is not None:
            for record in batch:
                m.child(m.sse_events_sent, record.type).inc()

    def closed(self) -> None:
        if self.obs.metrics is not None:
            self.obs.metrics.sse_streams_open.dec()


class Observability:
    """``metrics`` (None: ``SKILLRUN_METRICS=0``) and ``tracing`` (None: OTel off)."""

    def __init__(self, metrics: Metrics | None, tracing: Tracing | None, *, step_context: bool = False) -> None:
        self.metrics = metrics
        self.tracing = tracing
        # Mark the current step for log lines and spans (JSON logs, tracing).
        self.step_context = step_context or tracing is not None
        self.propagation = Propagation(tracing)

    def run_observer(self) -> Observer:
        """A new run writer's observer (per run: it keeps the run's step -> capability map)."""
        parts: list[Observer] = [_mark_step] if self.step_context else []
        parts.append(_log_outcomes)
        if self.metrics is not None:
            parts.append(self.metrics.run_events())
        if self.tracing is not None:
            parts.append(self.tracing.span_events)
        return parts[0] if len(parts) == 1 else _Chain(parts)

    def engine_tracer(self) -> Any:
        return self.tracing.engine_tracer() if self.tracing is not None else None

    def stream(self, resumed: bool) -> StreamWatch:
        return StreamWatch(self, resumed)

    def rate_limited(self) -> None:
        if self.metrics is not None:
            self.metrics.rate_limited.inc()

    def close(self) -> None:
        if self.tracing is not None:
            self.tracing.shutdown()
        if self.metrics is not None:
            self.metrics.process_ended()
