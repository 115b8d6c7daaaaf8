"""Prometheus metrics: one registry per app, fed by the run log, the streams, the store and the edge.

Run and step metrics are read off the events a run's writer appends (``runevents``),
so the engine stays unaware of them: every fact they count is already an event
(``skill_start`` names the channel, terminal step events carry ``duration_ms``,
``step_retrying`` each retry, ``step_degraded``/``gate_warning`` the findings,
``done`` the status and the run's duration).

Labels are bounded: skill ids and capability names come from the loaded catalog,
statuses and policies from the spec's enums, ``route`` from the spec's path
templates (unknown paths share ``UNMATCHED``). Never a run id, trace id or key.

``--workers N``: prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``,
which must be set before ``prometheus_client`` is imported: ``skillrun serve``
sets it before it starts the workers). Each worker writes its values to files in
that directory and ``/metrics`` in any worker (or ``--metrics-port``) sums them, so
counters are the server's, not one worker's, and a scrape may land on any worker.
One registry per worker with a ``worker`` label would instead show only the
worker the scrape reached.
"""

from __future__ import annotations

import bisect
import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "unmatched"
UNKNOWN = "unknown"

# Seconds: steps and store commits are short, runs and streams can be long.
_STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_STORE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)


_monotonic = time.monotonic  # ``StepDurations.observe``: every step's end


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class StepDurations:
    """Step durations for one histogram child, bucketed here and added in batches.

    ``Histogram.observe`` takes a lock per bucket and sum update (~0.5 µs, a twentieth
    of a step's whole cost in a fast stream); counting into a local list costs a bisect.
    The batch goes in at ``FLUSH_N`` durations, once ``FLUSH_S`` has passed since the
    last (scrapes are seconds apart: a second's delay is invisible), and when the run
    ends. Shared by every run of the event loop's thread (one app serves from one loop;
    a scrape from another thread only reads). The child's bucket and sum values are prometheus-client's own; if a release
    renames them, each duration is observed as it comes.
    """

    FLUSH_N = 256
    FLUSH_S = 1.0
    __slots__ = ("child", "bounds", "counts", "total", "pending", "since")

    def __init__(self, child: Any) -> None:
        self.child = child
        bounds: Any = getattr(child, "_upper_bounds", None)
        direct = bounds is not None and hasattr(child, "_buckets") and hasattr(child, "_sum")
        self.bounds: list[float] | None = [float(b) for b in bounds] if direct else None
        self.counts = [0] * len(self.bounds) if self.bounds is not None else []
        self.total = 0.0
        self.pending = 0
        self.since = time.monotonic()

    def observe(self, seconds: float) -> None:
        if self.bounds is None:
            self.child.observe(seconds)
            return
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1  # the first bucket with le >= seconds
        self.total += seconds
        self.pending += 1
        if self.pending >= self.FLUSH_N or _monotonic() - self.since >= self.FLUSH_S:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        buckets = self.child._buckets
        for i, n in enumerate(self.counts):
            if n:
                buckets[i].inc(n)
                self.counts[i] = 0
        self.child._sum.inc(self.total)
        self.total, self.pending, self.since = 0.0, 0, time.monotonic()


class Metrics:
    """Every metric the server exports, in this app's own registry (no module state)."""

    def __init__(self, version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.build_info = Gauge(
            "skillrun_build_info", "Always 1; the running version in its label.", ["version"],
            registry=r, multiprocess_mode="livemax",
        )
        self.build_info.labels(version).set(1)
        self.runs_started = Counter(
            "skillrun_runs_started", "Runs started, by skill and channel.", ["skill", "channel"], registry=r
        )
        self.runs_finished = Counter(
            "skillrun_runs_finished", "Runs ended, by skill and final status.", ["skill", "status"], registry=r
        )
        self.runs_in_progress = Gauge(
            "skillrun_runs_in_progress", "Runs started and not yet ended.", ["skill"],
            registry=r, multiprocess_mode="livesum",
        )
        self.run_duration = Histogram(
            "skillrun_run_duration_seconds", "Run duration, by skill and final status.", ["skill", "status"],
            buckets=_RUN_BUCKETS, registry=r,
        )
        self.step_duration = Histogram(
            "skillrun_step_duration_seconds", "Step (or foreach item) duration, by capability and outcome.",
            ["skill", "capability", "status"], buckets=_STEP_BUCKETS, registry=r,
        )
        self.step_retries = Counter(
            "skillrun_step_retries", "Step attempts that failed and were retried.", ["skill", "capability"], registry=r
        )
        # Apart from retries: a fallback is no attempt of the step's own capability.
        self.step_fallbacks = Counter(
            "skillrun_step_fallbacks", "Steps that failed and ran their on_error fallback.", ["skill", "capability"],
            registry=r,
        )
        # By type only (input, output): a model's name comes from a skill's input, so
        # a label of it would let a key holder grow the series without bound.
        self.llm_tokens = Counter(
            "skillrun_llm_tokens", "Tokens of llm.chat calls, by type (input, output).", ["type"], registry=r
        )
        self.gate_findings = Counter(
            "skillrun_gate_findings", "Gate findings, by the policy that handled them.", ["skill", "policy"], registry=r
        )
        self.sse_streams_open = Gauge(
            "skillrun_sse_streams_open", "Event streams being sent now.", registry=r, multiprocess_mode="livesum"
        )
        self.sse_events_sent = Counter(
            "skillrun_sse_events_sent", "Events sent on event streams, by type.", ["type"], registry=r
        )
        self.sse_resumes = Counter(
            "skillrun_sse_resumes", "Event streams resumed from a cursor (Last-Event-ID or ?after=).", registry=r
        )
        self.sse_time_to_first_event = Histogram(
            "skillrun_sse_time_to_first_event_seconds", "From the stream's start to its first event.",
            buckets=_HTTP_BUCKETS, registry=r,
        )
        self.store_append = Histogram(
            "skillrun_store_append_seconds", "Time of one group commit of the run store.",
            buckets=_STORE_BUCKETS, registry=r,
        )
        self.store_commit_batch = Histogram(
            "skillrun_store_commit_batch_size", "Operations (events, creates, purges) in one group commit.",
            buckets=_BATCH_BUCKETS, registry=r,
        )
        self.rate_limited = Counter("skillrun_rate_limited", "Requests refused with 429 by the rate limit.", registry=r)
        self.http_duration = Histogram(
            "http_server_request_duration_seconds", "HTTP request duration until the last byte of the answer.",
            ["method", "route", "status"], buckets=_HTTP_BUCKETS, registry=r,
        )
        # Children by label values: ``labels()`` takes a lock and builds a tuple each time.
        self._children: dict[tuple[Any, ...], Any] = {}
        self._merged: CollectorRegistry | None = None
        self._step_batches: dict[tuple[str, str, str], StepDurations] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def step_durations(self, skill: str, capability: str, status: str) -> StepDurations:
        """The batch of ``skillrun_step_duration_seconds{skill,capability,status}``."""
        key = (skill, capability, status)
        found = self._step_batches.get(key)
        if found is None:
            found = self._step_batches[key] = StepDurations(self.step_duration.labels(*key))
        return found

    def commit_observed(self, seconds: float, batch: int) -> None:
        """The run store's hook (``SqliteStore.on_commit``)."""
        self.store_append.observe(seconds)
        self.store_commit_batch.observe(batch)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The scrape answer for this ``Accept``: OpenMetrics when asked for, else the text format."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.scrape_registry()), content_type

    def scrape_registry(self) -> CollectorRegistry:
        """What a scrape reads: with several workers, the sum of all of theirs."""
        if not multiprocess():
            return self.registry
        if self._merged is None:  # the collector reads the files at each scrape
            self._merged = CollectorRegistry()
            MultiProcessCollector(self._merged)  # type: ignore[no-untyped-call]
        return self._merged

    def process_ended(self) -> None:
        """A worker that stops takes its live gauges (runs in progress, open streams) out of
        the sum; its counters stay (they count what it did). A worker killed outright
        cannot: its last gauge values stay until the directory is emptied."""
        if multiprocess():
            from prometheus_client import multiprocess as mp

            mp.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

