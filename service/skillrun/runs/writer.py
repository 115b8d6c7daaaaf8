"""The engine's ``Emitter`` for one run: the envelope (``events``), the sequence, the append."""

from __future__ import annotations

import json
from typing import Any, Callable

import orjson

from ..events import DONE, SKILL_COMPLETED
from .store import EventRecord, RunStore, utc_now

_json_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_orjson_dumps = orjson.dumps
# ``EventRecord(seq, type, data)`` without its ``__new__`` (a Python function wrapping this).
_record = tuple.__new__

# An envelope's text around its timestamp, by (type, message, step id): up to the
# timestamp's value, and from its end through the step id. Shared by every run: the
# events of a step's instances share them. Messages may vary without end (a failure's
# quotes its error): the table keeps short ones only, and starts over when full.
_PARTS: dict[tuple[str, str, str | None], tuple[str, str]] = {}
_PARTS_MAX = 4096
_PARTS_TEXT_MAX = 256  # characters of message and step id


def _envelope_parts(type: str, message: str, step_id: str | None) -> tuple[str, str] | None:
    """``_PARTS``'s entry (None: a string orjson refuses, see ``RunWriter.emit``)."""
    try:
        head = _orjson_dumps({"type": type, "message": message, "timestamp": ""}).decode()
        step = _orjson_dumps(step_id).decode()
    except TypeError:
        return None
    parts = (head[:-2], f'","step_id":{step}')
    if len(message) + len(step) <= _PARTS_TEXT_MAX:
        if len(_PARTS) >= _PARTS_MAX:
            _PARTS.clear()
        _PARTS[(type, message, step_id)] = parts
    return parts


def event_text(payload: dict[str, Any]) -> str:
    """A payload's JSON text: one line (json escapes CR and LF inside strings, which SSE
    requires: a raw line break would end the data field), compact. orjson, unless a string
    holds a lone surrogate, which only the stdlib encoder writes (``sse.encode`` escapes it)."""
    try:
        return _orjson_dumps(payload).decode()
    except TypeError:
        return _json_dumps(payload)


class RunWriter:
    """Appends one run's events.

    ``observer``: called with each appended event's type, step id and data.

    ``max_events``: once the log holds that many events, ``on_full`` is called once
    (the run manager stops the run with kind ``limit_exceeded``). The events that end
    the run still go in after it (a ``step_failed`` per open step or item,
    ``skill_completed``, ``done``): a log always ends properly, so it is bounded by
    the cap plus what one scheduling slice and the closing events add, not by the cap alone.
    """

    def __init__(
        self,
        store: RunStore,
        run_id: str,
        trace_id: str,
        last_seq: int = 0,
        *,
        max_events: int | None = None,
        on_full: Callable[[], None] | None = None,
        observer: Callable[[str, str | None, Any], None] | None = None,
    ) -> None:
        self._store = store
        self.run_id = run_id
        self.trace_id = trace_id
        self.seq = last_seq
        self.max_events = max_events
        self._on_full = on_full
        # Sees every event as it is appended (metrics, span events: ``skillrun.observe``).
        self._observer = observer
        # Set when the run is parked at shutdown (it waits for input): nothing more is
        # appended, so its log stays open and the next start resumes it.
        self.parked = False
        # The envelope's fields after the step id, up to the data's value (``emit``).
        self._ids = f',"trace_id":{_json_dumps(trace_id)},"run_id":{_json_dumps(run_id)},"data":'

    def emit(
        self, type: str, message: str, step_id: str | None = None, data: dict[str, Any] | None = None
    ) -> None:
        """An engine event (``Emitter.emit``), appended in its envelope: the ``EventEnvelope``
        fields, as the log stores it and a stream sends it.

        Every event of every run comes here, so the envelope's text is made from parts:
        the fields before the timestamp and the step id after it (``_envelope_parts``,
        shared by every event with the same type, message and step id: a foreach's
        items share two), the run's ids (``_ids``), and ``data``, the only part orjson
        writes each time. No envelope dict is made, and the text is the one orjson would
        write for it (tests/test_runs_writer.py). A string with a lone surrogate, which
        orjson refuses, sends the whole envelope through the stdlib encoder."""
        parts = _PARTS.get((type, message, step_id))
        if parts is None:
            parts = _envelope_parts(type, message, step_id)
        text: str | None = None
        if parts is not None:
            try:
                text = f"{parts[0]}{utc_now()}{parts[1]}{self._ids}{_orjson_dumps(data).decode()}}}"
            except orjson.JSONEncodeError:  # a string in data orjson refuses
                pass
        if text is None:
            text = event_text(self._envelope(type, message, step_id, data))
        self._put(type, text, step_id, data)

    def append(self, type: str, payload: dict[str, Any]) -> None:
        """An event whose payload is not an envelope: ``done`` (the run's result). Its
        observer sees the payload as ``data``, with no step."""
        self._put(type, event_text(payload), None, payload)

    def _envelope(self, type: str, message: str, step_id: str | None, data: dict[str, Any] | None) -> dict[str, Any]:
        return {"type": type, "message": message, "timestamp": utc_now(), "step_id": step_id,
                "trace_id": self.trace_id, "run_id": self.run_id, "data": data}

    def _put(self, type: str, text: str, step_id: str | None, data: Any) -> None:
        if self.parked:
            return
        seq = self.seq = self.seq + 1
        # The record is made without ``EventRecord.__new__`` (every event comes here).
        self._store.append(self.run_id, _record(EventRecord, (seq, type, text)))
        observer = self._observer
        if observer is not None:
            observer(type, step_id, data)
        # The run's last two events come after its engine has ended: nothing left to stop.
        if seq == self.max_events and self._on_full is not None and type not in (SKILL_COMPLETED, DONE):
            self._on_full()
