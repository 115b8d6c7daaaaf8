"""One run's events, as its writer appends them: metrics, log lines, the current step.

Every fact the run metrics count is already an event: ``skill_start`` names the
channel, terminal step events carry ``duration_ms``, ``step_retrying`` is a retry, ``step_fallback`` a fallback (no retry),
``step_degraded``/``gate_warning``/a gate's ``step_skipped`` carry findings, ``done``
the status and the run's duration. So the engine knows nothing of metrics, and
they count exactly what the streams show.

This runs once per event on the engine's path (a 10,000-step stream appends
20,003 events): the two commonest types (``step_start``, ``step_completed``) are
handled inline, the rest through a table, and every update is counted into its
metric's batch, added to the metric in batches (``metrics.Batch``).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from .. import events as ev
from .context import STEP, step_started
from .metrics import UNKNOWN, Batch, Metrics

Observer = Callable[[str, "str | None", Any], None]
run_log = logging.getLogger("skillrun.runs")

_STEP_START = ev.STEP_START
_STEP_COMPLETED = ev.STEP_COMPLETED


def _count(findings: Any) -> int:
    return len(findings) if isinstance(findings, list) else 1


class RunObserver:
    """``metrics``: None when off. ``mark_steps``: note the current step for log lines and
    spans (the writer appends ``step_start`` in the step's own context). ``then``: one
    more observer of every event (the tracer's span events)."""

    __slots__ = ("m", "mark_steps", "then", "skill", "started", "uses", "_durations")

    def __init__(self, metrics: Metrics | None, *, mark_steps: bool = False, then: Observer | None = None) -> None:
        self.m = metrics
        self.mark_steps = mark_steps
        self.then = then
        self.skill = UNKNOWN
        self.started = False
        # step id -> capability, from step_start, for the step's later events (a foreach's
        # items share their step's id and capability; a nested step's id is its path).
        self.uses: dict[str | None, str] = {}
        # Each batch of step durations this run counted into, by (capability, status),
        # and by capability alone for ``completed``: every other event is one, looked up
        # with no key tuple made and hashed.
        self._durations: dict[tuple[str, str] | str, Batch] = {}

    def __call__(self, type: str, step_id: str | None, data: Any) -> None:
        """An appended event: its type, step id and ``data`` (``done``: its payload, no step)."""
        if type == _STEP_START:
            if self.mark_steps and step_id is not None:  # (a step event always names its step)
                step_started(step_id, data.get("index"))
            if self.m is not None:
                self.uses[step_id] = data["uses"]
        elif type == _STEP_COMPLETED:
            if self.m is not None:  # ``_step_ended("completed", ...)``, inline
                capability = self.uses.get(step_id, UNKNOWN)
                batch = self._durations.get(capability)
                if batch is None:
                    batch = self._durations[capability] = self.m.child(
                        self.m.step_duration, self.skill, capability, "completed")
                batch.observe(data["duration_ms"] / 1000)
        else:
            handler = _HANDLERS.get(type)
            if handler is not None:
                handler(self, step_id, data)
        if self.then is not None:
            self.then(type, step_id, data)

    def _step_ended(self, status: str, step_id: str | None, data: dict[str, Any]) -> None:
        capability = self.uses.get(step_id, UNKNOWN)
        key = capability if status == "completed" else (capability, status)  # see ``_durations``
        batch = self._durations.get(key)
        if batch is None:
            assert self.m is not None
            batch = self._durations[key] = self.m.child(self.m.step_duration, self.skill, capability, status)
        batch.observe(data["duration_ms"] / 1000)

    def _skill_start(self, step_id: str | None, data: dict[str, Any]) -> None:
        m = self.m
        if m is None:
            return
        self.skill = data["skill_id"]
        self.started = True
        m.child(m.runs_started, self.skill, data["execution_channel"]).inc()
        m.child(m.runs_in_progress, self.skill).inc()

    def _degraded(self, step_id: str | None, data: dict[str, Any]) -> None:
        if self.m is not None:
            self._findings(data.get("policy") or "degrade", data.get("findings"))
            self._step_ended("degraded", step_id, data)

    def _failed(self, step_id: str | None, data: dict[str, Any]) -> None:
        error = data.get("error") or {}
        # The kind only: a message may quote a URL with credentials in its query.
        if run_log.isEnabledFor(logging.INFO):
            run_log.info("step %s failed (%s)", step_id, error.get("kind"))
        if self.m is not None:
            if error.get("kind") == "gate_failed":
                self._findings("fail", None)
            self._step_ended("failed", step_id, data)

    def _skipped(self, step_id: str | None, data: dict[str, Any]) -> None:
        if self.m is not None and "gate" in data:
            self._findings("skip", data.get("findings"))

    def _retrying(self, step_id: str | None, data: dict[str, Any]) -> None:
        if self.m is not None:
            capability = self.uses.get(step_id, UNKNOWN)
            self.m.child(self.m.step_retries, self.skill, capability).inc()

    def _fallback(self, step_id: str | None, data: dict[str, Any]) -> None:
        if self.m is not None:
            capability = self.uses.get(step_id, UNKNOWN)
            self.m.child(self.m.step_fallbacks, self.skill, capability).inc()

    def _warning(self, step_id: str | None, data: dict[str, Any]) -> None:
        if self.m is not None:
            self._findings("warn", data.get("findings"))

    def _findings(self, policy: str, findings: Any) -> None:
        assert self.m is not None
        self.m.child(self.m.gate_findings, self.skill, policy).inc(_count(findings))

    def _skill_completed(self, step_id: str | None, data: dict[str, Any]) -> None:
        if self.mark_steps:
            STEP.set(None)  # a step run inline marked the run's task; the run's end is no step's

    def _done(self, step_id: str | None, payload: dict[str, Any]) -> None:
        # ``done`` names its skill: a log closed by recovery may have no skill_start here.
        skill, status = payload.get("skill_id") or self.skill, payload.get("status") or UNKNOWN
        if run_log.isEnabledFor(logging.INFO):
            run_log.info("run %s of %s %s in %.1f ms", payload.get("run_id"), skill, status,
                         float(payload.get("duration_ms") or 0))
        m = self.m
        if m is None:
            return
        m.child(m.runs_finished, skill, status).inc()
        m.child(m.run_duration, skill, status).observe(float(payload.get("duration_ms") or 0) / 1000)
        if self.started:
            m.child(m.runs_in_progress, skill).dec()
            self.started = False


_HANDLERS: dict[str, Callable[[RunObserver, str | None, dict[str, Any]], None]] = {
    ev.SKILL_START: RunObserver._skill_start,
    ev.STEP_DEGRADED: RunObserver._degraded,
    ev.STEP_FAILED: RunObserver._failed,
    ev.STEP_SKIPPED: RunObserver._skipped,
    ev.STEP_RETRYING: RunObserver._retrying,
    ev.STEP_FALLBACK: RunObserver._fallback,
    ev.GATE_WARNING: RunObserver._warning,
    ev.SKILL_COMPLETED: RunObserver._skill_completed,
    ev.DONE: RunObserver._done,
}
