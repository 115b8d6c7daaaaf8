"""The engine's ``Emitter`` for one run: the envelope, the sequence, the append."""

from __future__ import annotations

import json
from typing import Any, Callable

import orjson

from ..engine.runner import LIMIT_EXCEEDED
from .store import EventRecord, RunStore, utc_now

_json_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _dumps(payload: dict[str, Any]) -> str:
    """Compact one-line JSON; orjson (~1 µs an event) unless a string holds a lone
    surrogate, which only the stdlib encoder writes (``sse.encode`` escapes it)."""
    try:
        return orjson.dumps(payload).decode("utf-8")
    except TypeError:
        return _json_dumps(payload)


class RunWriter:
    """Appends a run's events. Past ``max_events`` it asks ``stop`` (once) to end the run
    with ``limit_exceeded``; the events that close the log are still written, so a log
    holds at most ``max_events`` plus one closing event per open or unstarted step."""

    def __init__(
        self,
        store: RunStore,
        run_id: str,
        trace_id: str,
        last_seq: int = 0,
        *,
        max_events: int | None = None,
        stop: Callable[[str], Any] | None = None,
    ) -> None:
        self._store = store
        self.run_id = run_id
        self.trace_id = trace_id
        self.seq = last_seq
        self._max_events = max_events
        self._stop = stop

    def emit(
        self, type: str, message: str, step_id: str | None = None, data: dict[str, Any] | None = None
    ) -> None:
        self.append(
            type,
            {
                "type": type,
                "message": message,
                "timestamp": utc_now(),
                "step_id": step_id,
                "trace_id": self.trace_id,
                "run_id": self.run_id,
                "data": data,
            },
        )

    def append(self, type: str, payload: dict[str, Any]) -> None:
        self.seq += 1
        if self._stop is not None and self._max_events is not None and self.seq > self._max_events:
            stop, self._stop = self._stop, None
            stop(f"{LIMIT_EXCEEDED}\nthe run wrote more than {self._max_events} events (SKILLRUN_MAX_EVENTS_PER_RUN)")
        # JSON text is one line: json escapes CR and LF inside strings, which
        # SSE requires (a raw line break would end the data field).
        self._store.append(self.run_id, EventRecord(self.seq, type, _dumps(payload)))
