"""A small, independent SSE parser for tests (WHATWG HTML 9.2), and the order rules."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable


@dataclass
class Frame:
    event: str
    data: str
    id: str | None

    @property
    def json(self) -> Any:
        return json.loads(self.data)


def parse_sse(text: str) -> tuple[list[Frame], list[str]]:
    """Frames and comments of a complete SSE body."""
    frames: list[Frame] = []
    comments: list[str] = []
    event, data, last_id = "", [], None
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line == "":
            if data:
                frames.append(Frame(event or "message", "\n".join(data), last_id))
            event, data = "", []
            continue
        if line.startswith(":"):
            comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            last_id = value
    return frames, comments


#: Events that come only between a step's ``step_start`` and its terminal event.
IN_STEP_EVENTS = frozenset({"step_retrying", "step_fallback", "gate_warning"})


def item_keys(event: dict[str, Any]) -> list[tuple[str, Any]]:
    """The (step id, index) each event stands for: ``index`` .. ``last_index`` for a
    ``step_skipped`` of a run of items, else its own."""
    data = event.get("data") or {}
    first, last = data.get("index"), data.get("last_index")
    if first is None or last is None:
        return [(event.get("step_id"), first)]
    return [(event.get("step_id"), i) for i in range(first, last + 1)]


def skipped_indices(events: Iterable[dict[str, Any]]) -> list[int]:
    """The item indices ``step_skipped`` events stand for, in order."""
    return [k[1] for e in events for k in item_keys(e)]


def check_order(events: Iterable[dict[str, Any]]) -> None:
    """Assert the stream's order rules (see the spec's execute_stream description)."""
    evs = list(events)
    assert evs, "no events"
    assert evs[0]["type"] == "skill_start", evs[0]["type"]
    assert evs[-1]["type"] == "done", evs[-1]["type"]
    assert [e["type"] for e in evs].count("done") == 1
    assert evs[-2]["type"] == "skill_completed"
    assert [e["type"] for e in evs].count("skill_completed") == 1
    open_steps: dict[tuple[str, Any], str] = {}
    fated: set[tuple[str, Any]] = set()
    for e in evs[1:-2]:
        t = e["type"]
        key = (e.get("step_id"), (e.get("data") or {}).get("index"))
        if t == "step_start":
            assert key not in open_steps and key not in fated, f"{key} started twice"
            open_steps[key] = t
        elif t in ("step_completed", "step_degraded", "step_failed"):
            assert key in open_steps, f"{t} for {key} without step_start"
            del open_steps[key]
            fated.add(key)
        elif t == "step_skipped":
            for k in item_keys(e):  # one event may stand for a run of items (last_index)
                assert k not in open_steps and k not in fated, f"{k} skipped after it had its fate"
                fated.add(k)
        elif t in IN_STEP_EVENTS:
            assert key in open_steps, f"{t} for {key} outside its step's life"
        else:
            raise AssertionError(f"unexpected {t} inside the run")
    assert not open_steps, f"steps never ended: {open_steps}"
