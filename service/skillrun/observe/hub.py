"""The app's observability: which of metrics and tracing are on, and the hooks the layers call."""

from __future__ import annotations

import time
from collections import Counter
from operator import itemgetter
from typing import Any

from ..runs.store import EventRecord
from .context import bind_run
from .metrics import Metrics
from .runevents import RunObserver
from .tracing import Propagation, Tracing


_TYPE = itemgetter(1)  # ``EventRecord.type``


class StreamWatch:
    """One event stream: open streams, events sent by type, time to its first event."""

    __slots__ = ("obs", "started", "first")

    def __init__(self, obs: "Observability", resumed: bool) -> None:
        self.obs = obs
        self.started = time.perf_counter()
        self.first = False
        m = obs.metrics
        if m is not None:
            m.child(m.sse_streams_open).inc()
            if resumed:
                m.child(m.sse_resumes).inc()

    def sent(self, batch: list[EventRecord]) -> None:
        m = self.obs.metrics
        if not self.first:
            self.first = True
            seconds = time.perf_counter() - self.started
            if m is not None:
                m.child(m.sse_time_to_first_event).observe(seconds)
            if self.obs.tracing is not None:
                span = self.obs.tracing.current_span()
                span.set_attribute("skillrun.sse.time_to_first_event_ms", round(seconds * 1000, 3))
                span.add_event("first_event")
        if m is not None:
            if len(batch) <= 2:  # a tick's events, most batches of a slow run: no Counter to make
                for record in batch:
                    m.child(m.sse_events_sent, record[1]).inc()
                return
            # Counted per batch (one inc per type, not per event: a batch holds hundreds),
            # with no Python step per event.
            for type, n in Counter(map(_TYPE, batch)).items():
                m.child(m.sse_events_sent, type).inc(n)

    def closed(self) -> None:
        m = self.obs.metrics
        if m is not None:
            m.child(m.sse_streams_open).dec()


class Observability:
    """``metrics`` (None: ``SKILLRUN_METRICS=0``) and ``tracing`` (None: OTel off)."""

    def __init__(self, metrics: Metrics | None, tracing: Tracing | None, *, step_context: bool = False) -> None:
        self.metrics = metrics
        self.tracing = tracing
        # Mark the current step for log lines and spans (JSON logs, tracing).
        self.step_context = step_context or tracing is not None
        self.propagation = Propagation(tracing)

    def bind_run(self, run_id: str, trace_id: str, skill_id: str, owner: str) -> None:
        """In the run's own task: its log lines, spans and outgoing requests carry its ids
        (the run manager calls this; it knows nothing else of observability)."""
        bind_run(run_id, trace_id, skill_id, owner, self.propagation.headers)

    def run_observer(self) -> RunObserver:
        """A new run writer's observer (per run: it keeps the run's step -> capability map)."""
        return RunObserver(
            self.metrics, mark_steps=self.step_context,
            then=self.tracing.span_events if self.tracing is not None else None,
        )

    def engine_tracer(self) -> Any:
        return self.tracing.engine_tracer() if self.tracing is not None else None

    def llm_usage(self, model: str, input_tokens: int, output_tokens: int) -> None:
        """An ``llm.chat`` call's tokens: on the step's attempt span (the current one in
        the capability's task) and into ``skillrun_llm_tokens``."""
        if self.metrics is not None:
            self.metrics.llm_tokens.labels("input").inc(input_tokens)
            self.metrics.llm_tokens.labels("output").inc(output_tokens)
        if self.tracing is not None:
            span = self.tracing.current_span()
            span.set_attribute("gen_ai.response.model", model)
            span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", output_tokens)

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
