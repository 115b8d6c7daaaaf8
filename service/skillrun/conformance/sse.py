"""A small, independent SSE parser (WHATWG HTML 9.2) and the stream's rules, each with a stable id.

The suite's tests and ``skillrun conformance`` share these: a rule broken in a test
and in a user's CI is named the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable


@dataclass
class Frame:
    event: str
    data: str
    id: str | None

    @property
    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class Parsed:
    """Everything in an SSE body: frames, comments and lines that are neither."""

    frames: list[Frame] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


#: Fields the SSE standard defines; any other name is ignored by browsers, but no
#: Skillrun stream sends one, so it is reported (a heartbeat must be a comment).
KNOWN_FIELDS = frozenset({"event", "data", "id", "retry"})


def parse(text: str) -> Parsed:
    """The frames, comments and unknown lines of a complete SSE body."""
    out = Parsed()
    event, last_id = "", None
    data: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line == "":
            if data:
                out.frames.append(Frame(event or "message", "\n".join(data), last_id))
            event, data = "", []
            continue
        if line.startswith(":"):
            out.comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            last_id = value
        elif name not in KNOWN_FIELDS:
            out.unknown.append(line)
    return out


def parse_sse(text: str) -> tuple[list[Frame], list[str]]:
    """Frames and comments of a complete SSE body."""
    parsed = parse(text)
    return parsed.frames, parsed.comments


class RuleViolation(AssertionError):
    """A broken rule of the contract, named by its stable id (see ``RULES``)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"[{rule}] {message}")
        self.rule = rule
        self.message = message


#: Every rule's id and what it says. Ids are stable: CI dashboards and docs name them.
RULES: dict[str, str] = {
    "http.spec": "the served spec is at URL/openapi.json and has every skill asked for",
    "sse.event-schema": "every event validates against its schema in the served spec",
    "sse.first-skill-start": "the first event is skill_start",
    "sse.step-lifecycle": "per step and foreach item: exactly one fate, step_skipped (one may stand for "
    "items index..last_index) or step_start then one terminal event; after skill_resumed the instances "
    "running at that seam start over; retries, fallbacks, gate warnings, waits and deltas (step_delta) only "
    "inside a step's life, between its step_start and its terminal event",
    "sse.delta-sequence": "per step instance and attempt, step_delta's sequence runs 1, 2, 3, ... without gaps "
    "or repeats",
    "sse.delta-attempt": "within a step instance, step_delta's attempt never goes down",
    "sse.delta-shape": "a step_delta's delta has text (a string) and/or progress (a number from 0 to 1)",
    "sse.done-last": "exactly one done, last, right after the one skill_completed",
    "sse.ids-increasing": "every frame has an integer id:, strictly increasing",
    "sse.event-is-type": "each frame's event: is its data's type",
    "sse.trace-echoed": "one run and one trace id per stream; x-trace-id is echoed in the header and every event",
    "sse.heartbeat-comment": "heartbeats are comments; no line is an unknown field",
    "sse.closes-after-done": "the server ends the response after done",
    "http.problem-json": "an error known before the first byte is an HTTP status with application/problem+json",
    "resume.every-cut": "resuming with Last-Event-ID at every cut point loses and repeats nothing",
    "resume.deltas": "a stream cut in the middle of a run's step_delta events and resumed with Last-Event-ID "
    "replays the deltas exactly: none lost, none repeated",
    "stream.incremental": "events arrive as they happen, not buffered until the end",
    "runs.second-viewer": "a second viewer of a running run sees the same events",
    "runs.cancel": "a cancelled run ends with done and status cancelled",
    "runs.owner-isolation": "another key cannot see, follow or cancel a run (404)",
    "ratelimit.headers": "rate-limited answers carry RateLimit-Limit, -Remaining and -Reset",
}

#: Events that come only between a step's ``step_start`` and its terminal event.
IN_STEP_EVENTS = frozenset({"step_retrying", "step_fallback", "gate_warning", "step_waiting", "step_delta"})
TERMINAL_STEP_EVENTS = frozenset({"step_completed", "step_degraded", "step_failed"})


def item_keys(event: dict[str, Any]) -> list[tuple[Any, Any]]:
    """The (step id, index) each event stands for: ``index`` .. ``last_index`` for a
    ``step_skipped`` of a run of items that never started, else its own."""
    data = event.get("data") or {}
    first, last = data.get("index"), data.get("last_index")
    if not isinstance(first, int) or not isinstance(last, int):
        return [(event.get("step_id"), first)]
    return [(event.get("step_id"), i) for i in range(first, last + 1)]


def skipped_indices(events: Iterable[dict[str, Any]]) -> list[int]:
    """The item indices ``step_skipped`` events stand for, in order."""
    return [k[1] for e in events for k in item_keys(e)]


def _require(ok: bool, rule: str, message: str) -> None:
    if not ok:
        raise RuleViolation(rule, message)


def check_order(events: Iterable[dict[str, Any]]) -> None:
    """The stream's order rules (see the spec's execute_stream description)."""
    evs = list(events)
    types = [e.get("type") for e in evs]
    _require(bool(evs), "sse.done-last", "no events")
    _require(types[0] == "skill_start", "sse.first-skill-start", f"the first event is {types[0]}")
    _require(types[-1] == "done", "sse.done-last", f"the last event is {types[-1]}, not done")
    _require(types.count("done") == 1, "sse.done-last", f"{types.count('done')} done events")
    _require(len(evs) >= 2 and types[-2] == "skill_completed", "sse.done-last", "done does not follow skill_completed")
    _require(types.count("skill_completed") == 1, "sse.done-last", f"{types.count('skill_completed')} skill_completed")
    _check_steps(evs[1:-2])
    check_deltas(evs)


def _check_steps(events: list[dict[str, Any]]) -> None:
    open_steps: set[tuple[Any, Any]] = set()
    fated: set[tuple[Any, Any]] = set()  # every step instance ends exactly once
    rule = "sse.step-lifecycle"
    for e in events:
        kind = e.get("type")
        key = (e.get("step_id"), (e.get("data") or {}).get("index"))
        if kind == "step_start":
            _require(key not in open_steps and key not in fated, rule, f"{key} started twice")
            open_steps.add(key)
        elif kind in TERMINAL_STEP_EVENTS:
            _require(key in open_steps, rule, f"{kind} for {key} without step_start")
            open_steps.discard(key)
            fated.add(key)
        elif kind == "step_skipped":
            for k in item_keys(e):  # one event may stand for a run of items (last_index)
                _require(k not in open_steps and k not in fated, rule, f"step_skipped for {k}, which had started or ended")
                fated.add(k)
        elif kind == "skill_resumed":
            open_steps.clear()  # the seam: the instances running then start over (a new step_start)
        elif kind in IN_STEP_EVENTS:
            _require(key in open_steps, rule, f"{kind} for {key} outside its step's life")
        else:
            raise RuleViolation(rule, f"unexpected {kind} inside the run")
    _require(not open_steps, rule, f"steps never ended: {sorted(map(str, open_steps))}")


def check_frames(frames: list[Frame], first_id: int | None = None) -> list[dict[str, Any]]:
    """Ids strictly increasing (above ``first_id`` when resuming), ``event:`` == ``data.type``;
    returns the events."""
    ids = []
    for n, frame in enumerate(frames):
        ok = frame.id is not None and frame.id.isdigit()
        _require(ok, "sse.ids-increasing", f"frame #{n} has no integer id: ({frame.id!r})")
        ids.append(int(frame.id or 0))
    seq = ([first_id] if first_id is not None else []) + ids
    _require(all(a < b for a, b in zip(seq, seq[1:])), "sse.ids-increasing", f"ids are not strictly increasing: {seq[:50]}")
    events = []
    for n, frame in enumerate(frames):
        try:
            event = frame.json
        except ValueError:
            raise RuleViolation("sse.event-schema", f"frame #{n}: data is not JSON: {frame.data[:200]!r}") from None
        _require(isinstance(event, dict), "sse.event-schema", f"frame #{n}: data is not an object")
        _require(frame.event == event.get("type"), "sse.event-is-type",
                 f"frame #{n}: event: {frame.event} but its data has type: {event.get('type')}")
        events.append(event)
    return events


def check_stream(
    text: str,
    *,
    header_trace: str | None,
    sent_trace: str | None = None,
    validate: Callable[[Any], None] | None = None,
) -> list[dict[str, Any]]:
    """Every rule one complete ``/execute/stream`` body can show; returns its events."""
    parsed = parse(text)
    _require(not parsed.unknown, "sse.heartbeat-comment", f"lines that are neither a field nor a comment: {parsed.unknown[:3]}")
    _require(bool(parsed.frames), "sse.done-last", "an event stream without a single event")
    events = check_frames(parsed.frames)
    if validate is not None:
        for n, event in enumerate(events):
            try:
                validate(event)
            except AssertionError as exc:
                raise RuleViolation("sse.event-schema", f"event #{n} ({event.get('type')}): {exc}") from None
    check_order(events)
    traces = {e.get("trace_id") for e in events}
    runs = {e.get("run_id") for e in events}
    _require(len(traces) == 1 and len(runs) == 1, "sse.trace-echoed", f"one run, one trace: got {traces} and {runs}")
    _require(header_trace in traces, "sse.trace-echoed", f"x-trace-id: {header_trace} is not the events' trace id {traces}")
    if sent_trace is not None:
        _require(traces == {sent_trace}, "sse.trace-echoed", f"sent x-trace-id: {sent_trace}, the events carry {traces}")
    return events


@dataclass
class _DeltaCursor:
    """Where one step instance's deltas are: the attempt and the last sequence seen."""

    attempt: int = 0
    sequence: int = 0


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _data(event: dict[str, Any]) -> dict[str, Any]:
    data = event.get("data")
    return data if isinstance(data, dict) else {}


def check_delta_shape(event: dict[str, Any]) -> None:
    """``delta`` has text and/or progress; progress is a number within [0, 1].

    The served schema says the same, but a deployment's own spec may be looser (or
    the check may run without a validator): the rule holds whatever the spec says."""
    data = _data(event)
    delta, where = data.get("delta"), f"step_delta of {event.get('step_id')} #{data.get('index')}"
    if not isinstance(delta, dict):
        raise RuleViolation("sse.delta-shape", f"{where}: delta is {delta!r}, not an object")
    text, progress = delta.get("text"), delta.get("progress")
    _require(text is not None or progress is not None, "sse.delta-shape", f"{where}: delta has neither text nor progress")
    _require(text is None or isinstance(text, str), "sse.delta-shape", f"{where}: delta.text is {text!r}, not a string")
    _require(progress is None or (_number(progress) and 0 <= progress <= 1), "sse.delta-shape",
             f"{where}: delta.progress is {progress!r}, not a number from 0 to 1")


def check_deltas(events: Iterable[dict[str, Any]]) -> None:
    """The numbering and shape of ``step_delta`` events (their place in a step's life is
    ``sse.step-lifecycle``'s): per instance, attempts never go down, and each attempt's
    sequence runs 1, 2, 3, ... A new ``step_start`` of an instance (after
    ``skill_resumed``) starts its numbering over."""
    cursors: dict[tuple[Any, Any], _DeltaCursor] = {}
    for e in events:
        kind, data = e.get("type"), _data(e)
        key = (e.get("step_id"), data.get("index"))
        if kind == "step_start":
            cursors[key] = _DeltaCursor()
        elif kind == "step_delta":
            check_delta_shape(e)
            _check_delta_number(key, cursors.setdefault(key, _DeltaCursor()), data)


def _check_delta_number(key: tuple[Any, Any], cursor: _DeltaCursor, data: dict[str, Any]) -> None:
    attempt, sequence = data.get("attempt"), data.get("sequence")
    if not isinstance(attempt, int) or isinstance(attempt, bool):
        raise RuleViolation("sse.delta-attempt", f"step_delta of {key}: attempt is {attempt!r}")
    if not isinstance(sequence, int) or isinstance(sequence, bool):
        raise RuleViolation("sse.delta-sequence", f"step_delta of {key}: sequence is {sequence!r}")
    _require(attempt >= cursor.attempt, "sse.delta-attempt",
             f"step_delta of {key}: attempt {attempt} after attempt {cursor.attempt}")
    expected = cursor.sequence + 1 if attempt == cursor.attempt else 1
    _require(sequence == expected, "sse.delta-sequence",
             f"step_delta of {key}, attempt {attempt}: sequence {sequence} where {expected} was due")
    cursor.attempt, cursor.sequence = attempt, sequence


def check_delta_resume(full: list[Frame], before_cut: list[Frame], after_cut: list[Frame]) -> None:
    """A stream read up to a cut (``before_cut``, ending in a step_delta's id) and the
    stream resumed with ``Last-Event-ID`` at it (``after_cut``) are, together, the whole
    log (``full``): every delta once, in its place."""
    _require(bool(before_cut) and before_cut[-1].event == "step_delta", "resume.deltas",
             "the cut is not right after a step_delta")
    joined = [(f.id, f.data) for f in before_cut + after_cut]
    whole = [(f.id, f.data) for f in full]
    deltas = {(f.id, f.data) for f in full if f.event == "step_delta"}
    lost = [i for i, d in whole if (i, d) in deltas and (i, d) not in joined]
    repeated = sorted({i for i, d in joined if (i, d) in deltas and joined.count((i, d)) > 1}, key=str)
    in_log = set(whole)
    changed = [i for i, d in joined if (i, d) not in in_log]
    _require(not lost and not repeated and not changed, "resume.deltas",
             f"after Last-Event-ID {before_cut[-1].id}: deltas lost {lost[:10]}, repeated {repeated[:10]}, "
             f"events not in the log {changed[:10]}")
    _require(joined == whole, "resume.deltas",
             f"after Last-Event-ID {before_cut[-1].id}: the resumed stream is not the rest of the log "
             f"({len(joined)} events joined, {len(whole)} in the log)")
