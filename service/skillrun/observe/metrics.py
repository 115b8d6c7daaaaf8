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

import asyncio
import bisect
import os
import threading
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


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class Batch:
    """One metric child's updates (a counter's or gauge's ``inc``/``dec``, a histogram's
    ``observe``), added up here and handed to the child in batches (``flush``).

    prometheus-client takes a lock for every value it changes, and a histogram's
    ``observe`` walks its buckets in Python: a stream start changed ~15 values
    (~10% of its instructions, bench/instructions.py --start). Here an update is an
    addition (a histogram's, a bisect). A batch goes in at ``FLUSH_N`` updates, at
    every scrape of ``/metrics``, at a scrape of the metrics port (its own thread: it
    has the loop flush first, ``port_registry``), and every ``FLUSH_S``
    (``Metrics.flush_forever``). With several workers (multiprocess mode), where
    another worker's scrape reads this one's values, each update goes in at once
    (``flush_n`` 1). Updates and flushes happen on the event loop's thread only (one
    app serves from one loop). A histogram's bucket and sum values are
    prometheus-client's own; if a release renames them, each value is observed as it comes.
    """

    FLUSH_N = 256
    FLUSH_S = 1.0
    __slots__ = ("child", "bounds", "counts", "total", "pending", "flush_n")

    def __init__(self, child: Any, flush_n: int = FLUSH_N) -> None:
        self.child = child
        self.flush_n = flush_n
        bounds: Any = getattr(child, "_upper_bounds", None)
        direct = bounds is not None and hasattr(child, "_buckets") and hasattr(child, "_sum")
        self.bounds: list[float] | None = [float(b) for b in bounds] if direct else None
        self.counts = [0] * len(self.bounds) if self.bounds is not None else []
        self.total: float = 0  # a counter's or gauge's change, or a histogram's sum
        self.pending = 0

    def inc(self, amount: float = 1) -> None:
        self.total += amount
        self.pending += 1
        if self.pending >= self.flush_n:
            self.flush()

    def dec(self, amount: float = 1) -> None:  # a gauge's
        self.inc(-amount)

    def observe(self, value: float) -> None:  # a histogram's
        if self.bounds is None:
            self.child.observe(value)
            return
        self.counts[bisect.bisect_left(self.bounds, value)] += 1  # the first bucket with le >= value
        self.total += value
        self.pending += 1
        if self.pending >= self.flush_n:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        if self.bounds is not None:
            buckets = self.child._buckets
            for i, n in enumerate(self.counts):
                if n:
                    buckets[i].inc(n)
                    self.counts[i] = 0
            self.child._sum.inc(self.total)
        elif self.total:
            self.child.inc(self.total)
        self.total, self.pending = 0, 0


class _FlushedFirst:
    """A collector: ``Metrics.scrape_registry``'s metrics, after the loop's flush."""

    def __init__(self, metrics: "Metrics") -> None:
        self.metrics = metrics

    def collect(self) -> Any:
        self.metrics.flush_from_thread()
        yield from self.metrics.scrape_registry().collect()


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
        # Each child's ``Batch`` by label values (``labels()`` takes a lock and builds a
        # tuple each time), for every update made on the serving path.
        self._children: dict[tuple[Any, ...], Batch] = {}
        self._flush_n = 1 if multiprocess() else Batch.FLUSH_N
        self._loop: asyncio.AbstractEventLoop | None = None  # the serving loop (``flush_forever``)
        self._merged: CollectorRegistry | None = None
        self._store_append = self.child(self.store_append)
        self._store_commit_batch = self.child(self.store_commit_batch)

    def child(self, metric: Any, *labels: str) -> Batch:
        """The batch of ``metric``'s child with these label values (the metric itself
        when it has no labels); on the event loop's thread only (see ``Batch``)."""
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = Batch(metric.labels(*labels) if labels else metric, self._flush_n)
        return found

    def flush(self) -> None:
        """Every batch's updates into the metrics (see ``Batch``)."""
        for batch in self._children.values():
            batch.flush()

    async def flush_forever(self) -> None:
        """``flush`` every ``Batch.FLUSH_S`` (the app's lifespan runs it): a scrape of the
        metrics port whose flush the loop did not answer in time reads values at most
        that old; and the last flush, as the server stops."""
        self._loop = asyncio.get_running_loop()
        try:
            while True:
                await asyncio.sleep(Batch.FLUSH_S)
                self.flush()
        finally:
            self.flush()

    def flush_from_thread(self, timeout_s: float = 1.0) -> None:
        """From another thread (the metrics port's): the serving loop flushes, and this
        waits for it up to ``timeout_s`` (a stalled loop delays a scrape by that much at most)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        done = threading.Event()

        def flush() -> None:
            try:
                self.flush()
            finally:
                done.set()

        try:
            loop.call_soon_threadsafe(flush)
        except RuntimeError:  # closed meanwhile
            return
        done.wait(timeout_s)

    def port_registry(self) -> CollectorRegistry:
        """What the metrics port's thread serves: ``scrape_registry``, read after the
        serving loop has flushed every batch (``flush_from_thread``)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_FlushedFirst(self))
        return registry

    def commit_observed(self, seconds: float, batch: int) -> None:
        """The run store's hook (``SqliteStore.on_commit``)."""
        self._store_append.observe(seconds)
        self._store_commit_batch.observe(batch)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The scrape answer for this ``Accept``: OpenMetrics when asked for, else the text
        format (on the event loop's thread: every batch flushed first)."""
        self.flush()
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

