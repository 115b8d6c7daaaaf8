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
    "running at that seam start over; retries, fallbacks and gate warnings only inside a step's life",
    "sse.done-last": "exactly one done, last, right after the one skill_completed",
    "sse.ids-increasing": "every frame has an integer id:, strictly increasing",
    "sse.event-is-type": "each frame's event: is its data's type",
    "sse.trace-echoed": "one run and one trace id per stream; x-trace-id is echoed in the header and every event",
    "sse.heartbeat-comment": "heartbeats are comments; no line is an unknown field",
    "sse.closes-after-done": "the server ends the response after done",
    "http.problem-json": "an error known before the first byte is an HTTP status with application/problem+json",
    "resume.every-cut": "resuming with Last-Event-ID at every cut point loses and repeats nothing",
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
