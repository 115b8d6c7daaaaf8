"""Continuing a run from its log: what the engine needs to know of the steps that
already have a fate (see ``SkillResumedEvent`` in the contract).

The run store reads the log (``runs.recovery``) and hands the engine a ``Resume``:
the fate of every step instance that ended before the seam, by its full step id
(``a``, ``a[2]/b`` for a nested skill's step) and ``foreach`` index. The runner
gives those instances their recorded fate and output without running them or
emitting anything; every other instance runs (again).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import events as ev
from ..events import Emitter
from .stopping import StepFailure

Key = tuple[str, int | None]  # (full step id, foreach index)
# The events that number a step's attempts.
_NUMBERED = frozenset({ev.STEP_DELTA, ev.STEP_RETRYING})


@dataclass(frozen=True, slots=True)
class Fate:
    """One step instance's fate as its log recorded it."""

    status: str  # completed | degraded | skipped | failed
    output: Any = None  # completed, degraded (None: a post-gate dropped it)
    error: dict[str, str] | None = None  # failed
    goes_on: bool = False  # failed with ``on_error: continue``
    empty_foreach: bool = False  # skipped because ``foreach`` gave no items (its output is ``[]``)
    duration_ms: float = 0.0

    def outcome(self, step_id: str) -> tuple[Any, str, dict[str, str] | None]:
        """(output, status, error) as the step's life returned it then; raises the
        ``StepFailure`` of a failure that was ending the run (``on_error: fail``)."""
        if self.status != "failed":
            return self.output, self.status, None
        error = self.error or {"kind": "internal", "message": "failed"}
        if not self.goes_on:
            failure = StepFailure(error["kind"], error["message"])
            failure.step_id = step_id
            raise failure
        return None, "failed", error


@dataclass(slots=True)
class Resume:
    """What a resumed run keeps; ``restored``/``rerun`` are counts for ``skill_resumed``."""

    fates: dict[Key, Fate] = field(default_factory=dict)
    resumes: int = 1  # this resume included
    rerun: int = 0
    elapsed_s: float = 0.0  # wall time since the run started: its deadline counts it
    last_seq: int = 0  # the log's last event before the seam
    # Instances the log knows of that have no fate: running at the seam, or items of a
    # foreach that never started. Each gets one before the run ends (``OneFate``).
    pending: set[Key] = field(default_factory=set)
    items: dict[str, int] = field(default_factory=dict)  # foreach step id -> its item count
    places: dict[str, dict[str, Any]] = field(default_factory=dict)  # nested step id -> parent_step_id, path
    # Instances that waited for input before the seam: when their wait expires (it keeps its deadline).
    expires: dict[Key, str] = field(default_factory=dict)
    # Instances that run again: the last attempt the log gave them. Their attempts go on
    # from there (``step_delta``, ``step_retrying``), so a client tells the deltas of the
    # attempt cut by the seam from the new ones, as it does after a retry.
    attempts: dict[Key, int] = field(default_factory=dict)

    @property
    def restored(self) -> int:
        return len(self.fates)


class OneFate:
    """The resumed run's emitter: every instance gets exactly one fate across the seam.

    A fate event for an instance that already has one (restored, or given since) is
    dropped: e.g. the ``step_skipped`` a stopping scheduler gives a step it never
    started in this process, which had ended before the seam. ``close`` gives the
    instances the log knew of and nothing has ended since their ``step_skipped``.
    """

    def __init__(self, emitter: Emitter, resume: Resume) -> None:
        self.emitter = emitter
        self.fated: set[Key] = set(resume.fates)
        self.pending = set(resume.pending)
        self.items = resume.items
        self.places = resume.places
        self.attempts = resume.attempts

    def emit(
        self, type: str, message: str, step_id: str | None = None, data: dict[str, Any] | None = None
    ) -> None:
        if step_id is None or type not in ev.STEP_TERMINAL:
            if type in _NUMBERED and data is not None and self.attempts:
                data = self._renumbered(step_id, data)
            self.emitter.emit(type, message, step_id, data)
            return
        index = (data or {}).get("index")
        last = (data or {}).get("last_index")
        if type != ev.STEP_SKIPPED or last is None or index is None:
            if (step_id, index) in self.fated and type == ev.STEP_SKIPPED:
                return
            self.fated.add((step_id, index))
            self.emitter.emit(type, message, step_id, data)
            return
        assert data is not None  # a range comes with its data
        fresh = [i for i in range(index, last + 1) if (step_id, i) not in self.fated]
        self.fated.update((step_id, i) for i in fresh)
        for first, end in ev.index_ranges(fresh):
            more = {k: v for k, v in data.items() if k not in ("index", "last_index", "reason", "items")}
            self.emitter.emit(*ev.step_skipped(step_id, data["reason"], first, items=data.get("items"),
                                               last_index=end, **more))

    def _renumbered(self, step_id: str | None, data: dict[str, Any]) -> dict[str, Any]:
        """An attempt of this life, numbered after the ones the log already has."""
        before = self.attempts.get((step_id or "", data.get("index")))
        if not before or not isinstance(data.get("attempt"), int):
            return data
        return {**data, "attempt": data["attempt"] + before}

    def close(self, reason: str) -> None:
        """``step_skipped`` for every pending instance still without a fate, inner ones first."""
        left = sorted(self.pending - self.fated, key=lambda k: (-k[0].count("/"), k[0], k[1] if k[1] is not None else -1))
        by_step: dict[str, list[int]] = {}
        for step_id, index in left:
            if index is None:
                self.emit(*ev.step_skipped(step_id, reason, **self.places.get(step_id, {})))
            else:
                by_step.setdefault(step_id, []).append(index)
        for step_id, indices in by_step.items():
            for first, end in ev.index_ranges(indices):
                self.emit(*ev.step_skipped(step_id, reason, first, items=self.items.get(step_id), last_index=end,
                                           **self.places.get(step_id, {})))
