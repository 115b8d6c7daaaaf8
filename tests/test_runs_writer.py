"""``RunWriter``: ``emit`` is ``append`` of the event's envelope, and ``append`` writes
its record out by hand (orjson, or the stdlib for a lone surrogate; the record without
``EventRecord.__new__``): both append the same records, tell the observer the same, and
stop at the same cap."""

from __future__ import annotations

import json
from typing import Any

from skillrun import events as ev
from skillrun.runs.store import EventRecord
from skillrun.runs.writer import RunWriter

EVENTS = [
    ev.skill_start("s", "1", "http", ["a"], digest="d", timeout_ms=None),
    ev.step_start("a", "util.echo", 0, items=2),
    ev.step_completed("a", {"text": "caf\u00e9 \n line"}, 1.5, 0),
    ev.step_start("a", "util.echo", 1, items=2),
    # A lone surrogate: orjson refuses it, the stdlib encoder writes it.
    ev.step_completed("a", {"text": "half \ud800 a pair"}, 2.0, 1),
    ev.skill_completed("s", "completed", 3.0),
]


def _envelope(event: ev.Event, trace_id: str, run_id: str, timestamp: str) -> dict[str, Any]:
    """The ``EventEnvelope`` of ``event``, field by field as the contract lists them."""
    return {"type": event.type, "message": event.message, "timestamp": timestamp, "step_id": event.step_id,
            "trace_id": trace_id, "run_id": run_id, "data": event.data}


class _Store:
    def __init__(self) -> None:
        self.records: list[tuple[str, EventRecord]] = []

    def append(self, run_id: str, record: EventRecord) -> None:
        self.records.append((run_id, record))


def _write(how: str, *, max_events: int | None = None, park_after: int | None = None
           ) -> tuple[list[tuple[str, Any]], list[tuple[str, dict[str, Any]]], int]:
    store, seen, full = _Store(), [], []
    writer = RunWriter(store, "run_1", "trace_1", last_seq=4, max_events=max_events,  # type: ignore[arg-type]
                       on_full=lambda: full.append(1), observer=lambda t, p: seen.append((t, p)))
    for n, event in enumerate(EVENTS):
        if park_after is not None and n == park_after:
            writer.parked = True
        if how == "emit":
            writer.emit(*event)
        else:
            writer.append(event.type, _envelope(event, "trace_1", "run_1", "T"))
    # The timestamp is the only field that may differ (the clock moved).
    records = [(run_id, (r.seq, r.type, {**json.loads(r.data), "timestamp": "T"}), type(r) is EventRecord)
               for run_id, r in store.records]
    observed = [(t, {**p, "timestamp": "T"}) for t, p in seen]
    return records, observed, len(full)


def test_emit_appends_what_append_of_the_envelope_appends() -> None:
    emitted, appended = _write("emit"), _write("append")
    assert emitted == appended
    records, observed, full = emitted
    assert [seq for _, (seq, _, _), _ in records] == [5, 6, 7, 8, 9, 10]
    assert all(is_record for *_, is_record in records)
    assert records[4][1][2]["data"]["produced_output"]["text"] == "half \ud800 a pair"
    assert len(observed) == 6 and full == 0


def test_emit_stops_at_the_cap_and_writes_nothing_once_parked_as_append_does() -> None:
    assert _write("emit", max_events=7) == _write("append", max_events=7)
    assert _write("emit", max_events=7)[2] == 1
    assert _write("emit", max_events=10)[2] == 0  # skill_completed at the cap: nothing to stop
    assert _write("emit", park_after=3) == _write("append", park_after=3)
    assert len(_write("emit", park_after=3)[0]) == 3
