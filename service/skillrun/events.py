"""The one place an event is constructed, in the contract's vocabulary.

Every event of a run's log is built here: the engine's events (as ``Event``
tuples it hands to its ``Emitter``; ``runs.writer`` wraps each in its envelope),
the final ``done`` event, and the projection of the log onto the run record
(which event makes a run ``running``, which makes it terminal, with what).
The names and fields are those of ``components/schemas`` in
``openapi/skillrun.yaml``; change them there first.

This module imports nothing of the project: the engine (which must not know
about runs or HTTP) and the run stores both build on it.
"""

from __future__ import annotations

import json
from itertools import compress, repeat
from typing import Any, Iterable, NamedTuple, Protocol, Sequence

import orjson

# The event types (``type``, and the SSE ``event:`` name).
SKILL_START = "skill_start"
STEP_START = "step_start"
STEP_COMPLETED = "step_completed"
STEP_DEGRADED = "step_degraded"
STEP_FAILED = "step_failed"
STEP_SKIPPED = "step_skipped"
STEP_RETRYING = "step_retrying"
STEP_FALLBACK = "step_fallback"
GATE_WARNING = "gate_warning"
SKILL_COMPLETED = "skill_completed"
SKILL_RESUMED = "skill_resumed"
STEP_WAITING = "step_waiting"
STEP_DELTA = "step_delta"
DONE = "done"

# The terminal events of one step instance (each instance gets exactly one).
STEP_TERMINAL = frozenset({STEP_COMPLETED, STEP_DEGRADED, STEP_FAILED, STEP_SKIPPED})

# The events that may end a step instance's wait for input (they carry ``waited_ms``).
ENDS_WAIT = STEP_TERMINAL | {STEP_RETRYING, STEP_FALLBACK}

# The channels a ``skill_start`` may name.
CHANNELS = ("http", "http-stream", "http-async")


class Event(NamedTuple):
    """An event before its envelope: ``emitter.emit(*event)``."""

    type: str
    message: str
    step_id: str | None
    data: dict[str, Any] | None


class Emitter(Protocol):
    """Where the engine puts a run's events (``emitter.emit(*event)``)."""

    def emit(
        self, type: str, message: str, step_id: str | None = None, data: dict[str, Any] | None = None
    ) -> None: ...


def _with_index(data: dict[str, Any], index: int | None) -> dict[str, Any]:
    if index is not None:
        data["index"] = index
    return data


# ---------------------------------------------------------------- the run


def skill_start(
    skill_id: str,
    version: str,
    channel: str,
    steps: list[str],
    *,
    digest: str | None = None,
    timeout_ms: float | None = None,
) -> Event:
    data: dict[str, Any] = {"skill_id": skill_id, "version": version, "execution_channel": channel, "steps": steps}
    if digest:
        data["digest"] = digest
    if timeout_ms is not None:
        data["timeout_ms"] = timeout_ms
    return Event(SKILL_START, f"Starting skill '{skill_id}'.", None, data)


def skill_resumed(skill_id: str, restored: int, rerun: int, resumes: int) -> Event:
    """The seam of a run continued from its log (see ``SkillResumedEvent``)."""
    return Event(
        SKILL_RESUMED,
        f"Resuming skill '{skill_id}': {restored} step(s) kept, {rerun} start over.",
        None,
        {"restored": restored, "rerun": rerun, "resumes": resumes},
    )


def skill_completed(skill_id: str, status: str, duration_ms: float) -> Event:
    return Event(SKILL_COMPLETED, f"Skill '{skill_id}' {status}.", None, {"status": status, "duration_ms": duration_ms})


# ---------------------------------------------------------------- one step (instance)


# ``Event(...)`` without its ``__new__`` (a Python function wrapping this), for the two
# events every step instance has (a foreach of 10,000 items makes 20,000).
_event = tuple.__new__


def step_start(step_id: str, uses: str, index: int | None = None, *, items: int | None = None) -> Event:
    """``items``: a foreach item's first event carries its step's item count (recovery reads it)."""
    data: dict[str, Any] = {"uses": uses} if index is None else {"uses": uses, "index": index}
    if items is not None:
        data["items"] = items
    return _event(Event, (STEP_START, f"Starting step '{step_id}'.", step_id, data))


def step_completed(
    step_id: str, output: Any, duration_ms: float, index: int | None = None, fallback: str | None = None
) -> Event:
    data: dict[str, Any] = {"produced_output": output, "duration_ms": duration_ms}
    if fallback:
        data["fallback"] = fallback
    if index is not None:
        data["index"] = index
    return _event(Event, (STEP_COMPLETED, f"Step '{step_id}' completed.", step_id, data))


def step_degraded(
    step_id: str,
    output: Any,
    findings: list[dict[str, Any]],
    duration_ms: float,
    info: dict[str, Any],
    index: int | None = None,
) -> Event:
    """Gates found something: the output was redacted, or dropped (``policy: skip``)."""
    kinds = ", ".join(dict.fromkeys(f["kind"] for f in findings))
    dropped = info.get("policy") == "skip"
    return Event(
        STEP_DEGRADED,
        f"Step '{step_id}' degraded: {kinds} {'found, output dropped' if dropped else 'redacted'}.",
        step_id,
        _with_index(
            {"produced_output": {} if dropped else output, "findings": findings, "duration_ms": duration_ms, **info},
            index,
        ),
    )


def step_failed(
    step_id: str, error: dict[str, str], duration_ms: float, index: int | None = None, on_error: str | None = None
) -> Event:
    data: dict[str, Any] = {"error": error, "duration_ms": duration_ms}
    if on_error is not None:
        data["on_error"] = on_error
    return Event(STEP_FAILED, f"Step '{step_id}' failed: {error['message']}", step_id, _with_index(data, index))


def step_skipped(
    step_id: str,
    reason: str,
    index: int | None = None,
    *,
    why: str | None = None,
    item: bool = True,
    items: int | None = None,
    last_index: int | None = None,
    **more: Any,
) -> Event:
    """Skipped for ``reason`` (the message says ``why``, when worded differently);
    ``items`` as for ``step_start``; ``last_index``: this one event stands for the
    items ``index`` .. ``last_index`` (none of which started); ``more`` are the
    type's optional fields (condition, gate, findings, a nested step's place)."""
    what = f"Step '{step_id}' item {index}" if index is not None and item else f"Step '{step_id}'"
    if last_index is not None and last_index != index:
        what = f"Step '{step_id}' items {index}-{last_index}"
    data = _with_index({"reason": reason, **more}, index)
    if items is not None:
        data["items"] = items
    if last_index is not None and last_index != index:
        data["last_index"] = last_index
    return Event(STEP_SKIPPED, f"{what} skipped: {why or reason}.", step_id, data)


def step_retrying(step_id: str, attempt: int, error: dict[str, str], delay_ms: float, index: int | None = None) -> Event:
    return Event(
        STEP_RETRYING,
        f"Step '{step_id}' attempt {attempt} failed ({error['kind']}); retrying in {delay_ms:g} ms.",
        step_id,
        _with_index({"attempt": attempt, "error": error, "delay_ms": delay_ms}, index),
    )


def step_fallback(step_id: str, error: dict[str, str], uses: str, index: int | None = None) -> Event:
    return Event(
        STEP_FALLBACK,
        f"Step '{step_id}' failed ({error['kind']}); running fallback {uses}.",
        step_id,
        _with_index({"error": error, "uses": uses}, index),
    )


def step_waiting(
    step_id: str, prompt: str, schema: dict[str, Any], answer_url: str, expires_at: str | None,
    index: int | None = None,
) -> Event:
    """The step waits for an answer (``human.input``); the run is ``waiting`` until it comes."""
    data: dict[str, Any] = {"prompt": prompt, "schema": schema, "answer_url": answer_url}
    if expires_at is not None:
        data["expires_at"] = expires_at
    return Event(STEP_WAITING, f"Step '{step_id}' waits for input: {prompt}", step_id, _with_index(data, index))


def step_delta(
    step_id: str, attempt: int, sequence: int, text: str | None, progress: float | None, index: int | None = None
) -> Event:
    """Partial output of a running step (``engine.deltas`` numbers and coalesces it)."""
    delta: dict[str, Any] = {}
    if text:
        delta["text"] = text
    if progress is not None:
        delta["progress"] = progress
    return Event(
        STEP_DELTA,
        f"Step '{step_id}' made output.",
        step_id,
        _with_index({"attempt": attempt, "sequence": sequence, "delta": delta}, index),
    )


def gate_warning(step_id: str, gate: str, stage: str, findings: list[dict[str, Any]], index: int | None = None) -> Event:
    kinds = ", ".join(f["kind"] for f in findings)
    return Event(
        GATE_WARNING,
        f"Step '{step_id}': gate {gate} found {kinds}.",
        step_id,
        _with_index({"gate": gate, "stage": stage, "findings": findings}, index),
    )


def index_ranges(indices: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted indices as ``(first, last)`` runs of consecutive ones (for ``last_index``)."""
    out: list[tuple[int, int]] = []
    for i in sorted(indices):
        if out and out[-1][1] == i - 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


# ---------------------------------------------------------------- the log


def run_result(
    *,
    skill_id: str,
    status: str,
    outputs: dict[str, Any],
    trace_id: str,
    run_id: str,
    duration_ms: float,
    steps: list[dict[str, Any]],
    error: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The run's result: the ``/execute`` body, and what ``done`` carries."""
    result: dict[str, Any] = {
        "skill_id": skill_id,
        "status": status,
        "outputs": outputs,
        "trace_id": trace_id,
        "run_id": run_id,
        "duration_ms": duration_ms,
        "steps": steps,
    }
    if error is not None:
        result["error"] = error
    return result


def done(result: dict[str, Any]) -> dict[str, Any]:
    """The ``done`` event: the run's result plus ``type`` and a ``message`` like every
    other event's (so ``print(event.type, event.message)`` works for all of them)."""
    return {**result, "type": DONE, "message": f"Skill '{result['skill_id']}' {result['status']}."}


def result_of_done(data: str) -> dict[str, Any]:
    """The run's result (the ``/execute`` body) from a ``done`` event's JSON."""
    try:
        result: dict[str, Any] = orjson.loads(data)
    except orjson.JSONDecodeError:  # a lone surrogate, which only the stdlib reads
        result = json.loads(data)
    result.pop("type", None)
    result.pop("message", None)
    return result


# ---------------------------------------------------------------- log -> run record


class Projection(NamedTuple):
    """What one event changes in its run record (every store applies exactly this)."""

    starts: bool  # a queued run becomes ``running`` (its first event)
    result: dict[str, Any] | None  # the run becomes terminal with this result (``done``)
    # Open waits for input: +1 (``step_waiting``), -1 (the event that ends one, with
    # ``waited_ms``). A run with open waits is ``waiting``, else ``running``.
    waits: int = 0
    resumed: bool = False  # ``skill_resumed``: no wait is open any more (each starts over)

    @property
    def status(self) -> str:
        """The terminal status, when ``result`` is set."""
        return str((self.result or {}).get("status", "failed"))


_NOTHING = Projection(False, None)
NO_CHANGE = _NOTHING  # what most events change in their run record: nothing
_WAITS = Projection(False, None, 1)
_WAIT_ENDS = Projection(False, None, -1)
_RESUMED = Projection(False, None, 0, True)


def projection(seq: int, type: str, data: str) -> Projection:
    """The run record as a projection of its log: the first event marks a queued run
    ``running``; ``done`` makes it terminal, with ``done``'s status and result; a
    ``step_waiting`` makes it ``waiting`` until the event that ends that wait;
    ``step_delta`` (partial output) changes nothing."""
    if type == STEP_DELTA:  # the commonest event of a streaming step: decided first
        return _NOTHING
    if type in ENDS_WAIT:
        # Most step events never waited: a substring test on the tail spares parsing them.
        tail = data if len(data) <= _WAITED_TAIL else data[-_WAITED_TAIL:]
        return _WAIT_ENDS if _WAITED in tail and _ends_wait(data) else _NOTHING
    if type == STEP_WAITING:
        return _WAITS
    if type == SKILL_RESUMED:
        return _RESUMED
    if seq != 1 and type != DONE:
        return _NOTHING
    return Projection(seq == 1, result_of_done(data) if type == DONE else None)


# The types whose projection depends on neither seq nor data (``projection``).
_CHANGES = frozenset({DONE, STEP_WAITING, SKILL_RESUMED})
_WAITED = '"waited_ms"'


def projections(first: int, types: Sequence[str], datas: Sequence[str]) -> list[Projection]:
    """``projection`` of a run's consecutive events (seqs from ``first``), but only the
    changes, in order: ``[]`` when none changes its run record (most of a busy run's
    batches). That is found with no Python step per event (a store's commit takes
    hundreds at once; ``projection`` called for each cost ~0.2-0.4 µs an event): no
    first event, no type in ``_CHANGES``, and no event of a type in ``ENDS_WAIT`` whose
    text holds ``waited_ms`` anywhere (``projection`` looks in the tail only: this finds
    a superset, and any event found sends the batch through ``projection``)."""
    if (first != 1 and _CHANGES.isdisjoint(types)
            and not any(map(str.__contains__, compress(datas, map(ENDS_WAIT.__contains__, types)), repeat(_WAITED)))):
        return []
    found = map(projection, range(first, first + len(types)), types, datas)
    return [change for change in found if change is not _NOTHING]


# ``waited_ms`` is the last key the step writes into ``data``, which is the envelope's
# last field; only a nested step's place (``parent_step_id``, ``path``: 64-character ids,
# a few levels deep) comes after it. So it lies in the event's tail, whatever the size
# of the output before it.
_WAITED_TAIL = 16384


def _ends_wait(data: str) -> bool:
    body = json.loads(data).get("data")
    return isinstance(body, dict) and "waited_ms" in body


def project_waits(status: str, open_waits: int, change: Projection) -> tuple[str, int]:
    """A run's status and open waits after ``change`` (the stores' shared rule; a
    terminal run stays as it is)."""
    if change.resumed:
        open_waits = 0
    open_waits = max(0, open_waits + change.waits)
    if status == "running" and open_waits > 0:
        return "waiting", open_waits
    if status == "waiting" and open_waits == 0:
        return "running", open_waits
    return status, open_waits
