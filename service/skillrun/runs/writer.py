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


class RunWriter:
    """Appends one run's events.

    ``observer``: called with each appended event's type and payload.

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
        observer: Callable[[str, dict[str, Any]], None] | None = None,
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

    def emit(
        self, type: str, message: str, step_id: str | None = None, data: dict[str, Any] | None = None
    ) -> None:
        """An engine event (``Emitter.emit``), appended in its envelope: the ``EventEnvelope``
        fields, as the log stores it and a stream sends it. Every event of every run
        comes here: the envelope is made here, with no call between it and the event."""
        self.append(type, {
            "type": type, "message": message, "timestamp": utc_now(), "step_id": step_id,
            "trace_id": self.trace_id, "run_id": self.run_id, "data": data,
        })

    def append(self, type: str, payload: dict[str, Any]) -> None:
        if self.parked:
            return
        seq = self.seq = self.seq + 1
        # JSON text is one line: json escapes CR and LF inside strings, which
        # SSE requires (a raw line break would end the data field). Compact: orjson
        # (~1 µs an event), unless a string holds a lone surrogate, which only the
        # stdlib encoder writes (``sse.encode`` escapes it). Every event of every run
        # comes here: the record is made without ``EventRecord.__new__``.
        try:
            text = _orjson_dumps(payload).decode()
        except TypeError:
            text = _json_dumps(payload)
        self._store.append(self.run_id, _record(EventRecord, (seq, type, text)))
        observer = self._observer
        if observer is not None:
            observer(type, payload)
        # The run's last two events come after its engine has ended: nothing left to stop.
        if seq == self.max_events and self._on_full is not None and type not in (SKILL_COMPLETED, DONE):
            self._on_full()
