"""``RunWriter``: ``emit`` appends what ``append`` of the event's envelope appends, though
it writes the envelope's text from cached parts and the data alone (orjson, or the stdlib
for a lone surrogate; the record without ``EventRecord.__new__``): the same records, byte
for byte, and the same cap; the observer sees each event's type, step id and data."""

from __future__ import annotations

import json
from typing import Any

import orjson

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
    # Strings the parts must escape as orjson does: quotes, backslashes, line breaks, others.
    ev.Event("step_failed", 'Step "b\\c"\nfailed: \u2028 \x00 caf\u00e9', 'b"\\c', {"error": {"kind": "x"}}),
    ev.step_completed("\U0001f600/\u00e9", {"n": 1.5e300, "i": 2**63, "nan": float("nan")}, 0.5),
    # A message too long to keep its parts (``_PARTS_TEXT_MAX``): made for the event alone.
    ev.Event("step_failed", "e" * 300 + '"', "a", {"error": {"kind": "y"}}),
    ev.skill_completed("s", "completed", 3.0),
]
_SURROGATE = 4  # the event whose data only the stdlib encoder writes


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
           ) -> tuple[list[tuple[str, Any]], list[tuple[str, str | None, Any]], int]:
    store, seen, full = _Store(), [], []
    writer = RunWriter(store, "run_1", "trace_1", last_seq=4, max_events=max_events,  # type: ignore[arg-type]
                       on_full=lambda: full.append(1), observer=lambda t, s, d: seen.append((t, s, d)))
    for n, event in enumerate(EVENTS):
        if park_after is not None and n == park_after:
            writer.parked = True
        if how == "emit":
            writer.emit(*event)
        else:
            writer.append(event.type, _envelope(event, "trace_1", "run_1", "T"))
    # The timestamp is the only field that may differ (the clock moved): the text is
    # compared with the timestamp's value put back as "T", byte for byte.
    records = [(run_id, (r.seq, r.type, _untimed(r.data)), type(r) is EventRecord) for run_id, r in store.records]
    return records, seen, len(full)


def _untimed(text: str) -> str:
    stamp = json.loads(text)["timestamp"]
    assert text.count(f'"timestamp":"{stamp}"') == 1
    return text.replace(f'"timestamp":"{stamp}"', '"timestamp":"T"')


def test_emit_appends_what_append_of_the_envelope_appends() -> None:
    (emitted, seen, full), (appended, _, _) = _write("emit"), _write("append")
    assert emitted == appended
    # Byte for byte what orjson writes for the envelope (the stdlib, for the lone surrogate).
    for n, (event, (_, (_, _, text), _)) in enumerate(zip(EVENTS, emitted)):
        envelope = _envelope(event, "trace_1", "run_1", "T")
        expected = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")) if n == _SURROGATE \
            else orjson.dumps(envelope).decode()
        assert text == expected
    assert [seq for _, (seq, _, _), _ in emitted] == list(range(5, 5 + len(EVENTS)))
    assert all(is_record for *_, is_record in emitted)
    assert json.loads(emitted[_SURROGATE][1][2])["data"]["produced_output"]["text"] == "half \ud800 a pair"
    assert seen == [(e.type, e.step_id, e.data) for e in EVENTS] and full == 0


def test_done_is_appended_as_it_is_and_observed_as_data() -> None:
    store, seen = _Store(), []
    writer = RunWriter(store, "run_1", "trace_1", observer=lambda t, s, d: seen.append((t, s, d)))  # type: ignore[arg-type]
    done = ev.done({"skill_id": "s", "status": "completed", "outputs": {"x": 1}})
    writer.append(ev.DONE, done)
    assert store.records == [("run_1", (1, ev.DONE, orjson.dumps(done).decode()))]
    assert seen == [(ev.DONE, None, done)]


def test_emit_stops_at_the_cap_and_writes_nothing_once_parked_as_append_does() -> None:
    last = 4 + len(EVENTS)  # skill_completed's seq
    assert _write("emit", max_events=7)[::2] == _write("append", max_events=7)[::2]
    assert _write("emit", max_events=7)[2] == 1
    assert _write("emit", max_events=last)[2] == 0  # skill_completed at the cap: nothing to stop
    assert _write("emit", park_after=3)[::2] == _write("append", park_after=3)[::2]
    assert len(_write("emit", park_after=3)[0]) == 3
