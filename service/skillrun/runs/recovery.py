"""Closing a log no engine will finish: a process killed mid-run (found at the next
start), or a run cancelled where no engine runs it.

The closing events give every step and every ``foreach`` item exactly one fate,
as the engine does when it stops a run itself:

- each step instance that started and has no outcome gets ``step_failed`` (kind
  = the run's status, ``interrupted`` or ``cancelled``);
- each ``foreach`` item that never started gets ``step_skipped`` (``not run: …``; one
  event per run of consecutive items, ``index`` .. ``last_index``, as the engine says it):
  the item count comes from ``data.items``, which every item's first event
  carries (logs written before it existed only get their open items failed);
- each step of ``skill_start``'s ``steps`` without any event gets ``step_skipped``;
- a nested skill (``uses: skill:<id>``) whose step was in flight: its open steps
  are failed like any other, and its steps that never started are skipped, per
  the nested skill as loaded now (the log does not list a nested skill's steps;
  if it is no longer loaded, its parent step's ``step_failed`` stands for them);
- then ``skill_completed`` and ``done``.

Inner steps are closed before the steps that contain them (a nested skill's before
its parent step), as the engine orders them.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Protocol

from .. import events as ev
from ..engine import Skill
from ..engine.resume import Fate, Resume
from ..events import Event
from .store import EventRecord, RunRecord

# An engine event for ``RunWriter.emit``, or (last) the ``done`` payload for ``append``.
Closing = Event | dict[str, Any]
Key = tuple[str, int | None]  # (step_id, foreach index)

_PLACE = ("parent_step_id", "parent_index", "path")  # where a nested step belongs (StepPlace)


class SkillLookup(Protocol):
    def get(self, skill_id: str) -> Skill | None: ...


def ms_since_iso(iso: str | None) -> float:
    if not iso:
        return 0.0
    try:
        then = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(0.0, round((datetime.now(timezone.utc) - then).total_seconds() * 1000, 3))


class LogFates:
    """What a log says about its steps: which instances started, which ended, how
    many items each ``foreach`` step had, and where nested steps belong."""

    def __init__(self) -> None:
        self.started = False  # any event read
        self.steps: list[str] = []  # skill_start's step ids, in order
        self.seen: set[str] = set()  # step ids with any event
        self.open: dict[Key, str] = {}  # started, no outcome yet -> its ``uses`` (in start order)
        self.outcomes: dict[Key, dict[str, Any]] = {}  # ended -> {"status", "error"?}
        self.items: dict[str, int] = {}  # foreach step id -> item count
        self.places: dict[str, dict[str, Any]] = {}  # nested step id -> parent_step_id, parent_index, path
        self._instances: dict[str, list[Key]] = {}  # step id -> its instances, in start order
        self.fates: dict[Key, Fate] = {}  # ended -> its fate and output (what a resume keeps)
        self.voided: set[Key] = set()  # open at a ``skill_resumed`` seam: they start over
        self.resumes = 0  # ``skill_resumed`` events so far
        self.digest: str | None = None  # the definition the run started with (``skill_start``)
        self.timeout_ms: float | None = None  # the run's time limit (``skill_start``)
        self.expires: dict[Key, str] = {}  # a waiting instance's first ``expires_at``
        self.attempts: dict[Key, int] = {}  # the last attempt each instance started

    def feed(self, events: list[EventRecord]) -> None:
        """Read the next events of the log (a page at a time: a log can be long)."""
        for record in events:
            self.started = True
            self._read(record)

    def _read(self, record: EventRecord) -> None:
        if record.type == ev.SKILL_START:
            start = json.loads(record.data).get("data") or {}
            self.steps = list(start.get("steps") or [])
            self.digest, self.timeout_ms = start.get("digest"), start.get("timeout_ms")
            return
        if record.type == ev.SKILL_RESUMED:
            self.resumes += 1
            self.voided.update(self.open)
            self.open.clear()
            return
        if record.type == ev.STEP_WAITING:
            self._waiting(record)
            return
        if record.type in (ev.STEP_DELTA, ev.STEP_RETRYING):
            self._attempt(record)
            return
        if record.type != ev.STEP_START and record.type not in ev.STEP_TERMINAL:
            return
        payload = json.loads(record.data)
        step_id, data = payload.get("step_id"), payload.get("data") or {}
        if not isinstance(step_id, str):
            return
        key = (step_id, data.get("index"))
        if key not in self.open and key not in self.outcomes:
            self._instances.setdefault(step_id, []).append(key)
        self.seen.add(step_id)
        if "items" in data:
            self.items[step_id] = data["items"]
        if step_id not in self.places and "path" in data:
            self.places[step_id] = {k: data[k] for k in _PLACE if k in data}
        if record.type == ev.STEP_START:
            self.open[key] = str(data.get("uses", ""))
            self.voided.discard(key)
            self.attempts[key] = max(self.attempts.get(key, 0), 1)
            return
        self.open.pop(key, None)
        outcome = {"status": record.type.removeprefix("step_")}
        if record.type == ev.STEP_FAILED and "error" in data:
            outcome["error"] = data["error"]
        self.outcomes[key] = outcome
        self.voided.discard(key)
        fate = _fate(record.type, data)
        self.fates[key] = fate
        last = data.get("last_index")
        if isinstance(last, int) and isinstance(key[1], int):  # one event for a run of unstarted items
            for index in range(key[1] + 1, last + 1):
                self.outcomes[(step_id, index)] = outcome
                self.fates[(step_id, index)] = fate
                self._instances[step_id].append((step_id, index))

    def _attempt(self, record: EventRecord) -> None:
        """A delta's attempt, or the one a retry starts next."""
        payload = json.loads(record.data)
        step_id, data = payload.get("step_id"), payload.get("data") or {}
        attempt = data.get("attempt")
        if isinstance(step_id, str) and isinstance(attempt, int):
            key = (step_id, data.get("index"))
            started = attempt + 1 if record.type == ev.STEP_RETRYING else attempt
            self.attempts[key] = max(self.attempts.get(key, 0), started)

    def _waiting(self, record: EventRecord) -> None:
        """A wait's deadline holds across restarts: the step waits again until then."""
        payload = json.loads(record.data)
        step_id, data = payload.get("step_id"), payload.get("data") or {}
        if isinstance(step_id, str) and isinstance(data.get("expires_at"), str):
            self.expires.setdefault((step_id, data.get("index")), data["expires_at"])

    def resume(self, elapsed_s: float) -> Resume:
        """What the engine keeps when it continues this log (see ``engine.resume``)."""
        pending: set[Key] = set(self.open) | (self.voided - self.outcomes.keys())
        for step_id, count in self.items.items():
            pending.update((step_id, i) for i in range(count) if (step_id, i) not in self.outcomes)
        return Resume(dict(self.fates), self.resumes + 1, len(self.open) + len(self.voided), elapsed_s,
                      pending=pending, items=dict(self.items), places=dict(self.places),
                      expires={k: v for k, v in self.expires.items() if k not in self.fates},
                      attempts={k: v for k, v in self.attempts.items() if k not in self.fates})

    # ------------------------------------------------------------- the missing fates

    def missing(self, status: str, skills: SkillLookup | None) -> list[Event]:
        """An event for every instance without a fate, inner steps first."""
        error = {"kind": status, "message": f"the run was {status}"}
        reason = f"not run: the run was {status}"
        out: list[tuple[int, Event]] = []  # (depth, event)
        for (step_id, index) in sorted(self.voided - self.outcomes.keys(), key=str):
            # Started before a resume, not started again since: never ran after the seam.
            out.append((step_id.count("/"), ev.step_skipped(step_id, reason, index, **self.places.get(step_id, {}))))
        for (step_id, index) in reversed(self.open):
            failed = ev.step_failed(step_id, error, 0, index)
            out.append((step_id.count("/"), failed._replace(data={**self.places.get(step_id, {}), **(failed.data or {})})))
        for step_id, count in self.items.items():
            unstarted = (i for i in range(count) if (step_id, i) not in self.outcomes and (step_id, i) not in self.open)
            for first, last in ev.index_ranges(unstarted):
                skipped = ev.step_skipped(step_id, reason, first, items=count, last_index=last, **self.places.get(step_id, {}))
                out.append((step_id.count("/"), skipped))
        for step_id, data in self._unstarted_nested(skills):
            out.append((step_id.count("/"), ev.step_skipped(step_id, reason, **data)))
        for step_id in self.steps:
            if step_id not in self.seen:
                out.append((0, ev.step_skipped(step_id, reason)))
        out.sort(key=lambda t: -t[0])  # stable: within a depth, failures, then items, then steps
        return [event for _, event in out]

    def _unstarted_nested(self, skills: SkillLookup | None) -> list[tuple[str, dict[str, Any]]]:
        """The steps of nested skills in flight that have no event at all."""
        found: list[tuple[str, dict[str, Any]]] = []
        if skills is None:
            return found
        for (step_id, index), uses in self.open.items():
            child = skills.get(uses.removeprefix("skill:")) if uses.startswith("skill:") else None
            if child is None:
                continue
            prefix = step_id if index is None else f"{step_id}[{index}]"
            path = list(self.places.get(step_id, {}).get("path") or [step_id])
            for step in child.steps:
                nested_id = f"{prefix}/{step.id}"
                if nested_id in self.seen:
                    continue
                data: dict[str, Any] = {"parent_step_id": step_id}
                if index is not None:
                    data["parent_index"] = index
                data["path"] = [*path, step.id]
                found.append((nested_id, data))
        return found

    def summaries(self, status: str) -> list[dict[str, Any]]:
        """The result's ``steps``: each top-level step's fate once the log is closed."""
        error = {"kind": status, "message": f"the run was {status}"}
        out: list[dict[str, Any]] = []
        for step_id in self.steps:
            if step_id not in self.seen:
                out.append({"id": step_id, "status": "skipped"})
                continue
            instances = self._instances.get(step_id, [])
            unfinished = any(k in self.open or k in self.voided for k in instances) or any(
                (step_id, i) not in self.outcomes for i in range(self.items.get(step_id, 0))
            )
            if unfinished:  # stopped by the run's end: it shares the run's status
                out.append({"id": step_id, "status": status if status in ("cancelled", "interrupted") else "failed",
                            "error": error})
                continue
            out.append({"id": step_id, **self._summed([self.outcomes[k] for k in instances], step_id in self.items)})
        return out

    @staticmethod
    def _summed(ended: list[dict[str, Any]], foreach: bool) -> dict[str, Any]:
        """One step's ended instances as one status, as the engine sums a foreach's items."""
        failed = next((o for o in ended if o["status"] == "failed"), None)
        if failed is not None:
            return failed
        if foreach:
            return {"status": "degraded" if any(o["status"] == "degraded" for o in ended) else "completed"}
        return ended[0] if ended else {"status": "skipped"}


def closing_events(
    run: RunRecord, fates: LogFates, status: str, skill: Skill | None, skills: SkillLookup | None = None
) -> list[Closing]:
    """The events that close a log no engine will finish, all with ``status``: the
    missing fates (see the module docstring), ``skill_completed`` and ``done``.

    ``fates`` has read the log; ``skill`` is the run's skill as loaded now (for a
    log without ``skill_start``); ``skills`` finds nested skills.
    """
    error = {"kind": status, "message": f"the run was {status}"}
    out: list[Closing] = []
    if not fates.started:
        # Never started: a start first keeps the stream's order rules for every reader.
        channel = run.channel if run.channel in ev.CHANNELS else "http"
        start = ev.skill_start(run.skill_id, skill.version if skill else "unknown", channel,
                               [s.id for s in skill.steps] if skill else [])
        out.append(start)
        fates.feed([EventRecord(1, ev.SKILL_START, json.dumps({"data": start.data}))])
    out.extend(fates.missing(status, skills))
    duration = ms_since_iso(run.started_at or run.created_at)
    out.append(ev.skill_completed(run.skill_id, status, duration))
    out.append(ev.done(ev.run_result(
        skill_id=run.skill_id, status=status, outputs={}, trace_id=run.trace_id, run_id=run.run_id,
        duration_ms=duration, steps=fates.summaries(status), error=error,
    )))
    return out


def _fate(type_: str, data: dict[str, Any]) -> Fate:
    """An outcome event as the fate a resumed run keeps."""
    status = type_.removeprefix("step_")
    duration = float(data.get("duration_ms") or 0.0)
    if type_ == ev.STEP_FAILED:
        return Fate(status, error=data.get("error"), goes_on=data.get("on_error") == "continue", duration_ms=duration)
    if type_ == ev.STEP_SKIPPED:
        return Fate(status, empty_foreach=data.get("reason") == "foreach gave no items")
    dropped = type_ == ev.STEP_DEGRADED and data.get("policy") == "skip"
    return Fate(status, output=None if dropped else data.get("produced_output"), duration_ms=duration)
