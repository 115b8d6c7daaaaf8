"""Log lines: plain text for a terminal (the default), or one JSON object per line.

``--log-format json`` (``SKILLRUN_LOG_FORMAT=json``) writes ``timestamp``, ``level``,
``logger``, ``message`` and, where they apply, ``run_id``, ``trace_id``, ``span_id``,
``skill_id``, ``step_id``, ``owner`` (the key's identity, never the key) and the
access log's ``method``, ``route``, ``status``, ``duration_ms``, ``bytes`` (and
``owner`` once the key check accepted the request's key). Nothing
a request carries is logged whole: the access log names the spec's route template,
not the path (a path may hold a run id; the query, anything).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any

from .context import RUN, STEP

FORMATS = ("text", "json")
ACCESS_LOGGER = "skillrun.access"
# What the access log adds to a record (``extra=``); the JSON lines carry them as fields.
ACCESS_FIELDS = ("method", "route", "status", "duration_ms", "bytes", "run_id", "trace_id")
_CONTEXT_FIELDS = ("run_id", "trace_id", "span_id", "skill_id", "step_id", "owner")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the ids of the run and step the record came from."""

    def __init__(self, span_ids: Any = None) -> None:
        super().__init__()
        # () -> (trace id, span id) | None: the current span's, when tracing is on.
        self._span_ids = span_ids

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        run = RUN.get()
        if run is not None:
            out.update(run_id=run.run_id, trace_id=run.trace_id, skill_id=run.skill_id, owner=run.owner)
        step = STEP.get()
        if step is not None and run is not None:
            out["step_id"] = step.step_id
        if self._span_ids is not None:
            ids = self._span_ids()
            if ids is not None:
                out.setdefault("trace_id", ids[0])
                out["span_id"] = ids[1]
        for name in (*ACCESS_FIELDS, *_CONTEXT_FIELDS):
            value = record.__dict__.get(name)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The terminal's format; an access line reads ``GET /v1/runs/{run_id} 200 3.1 ms 512 B key_9f86d081884c7d65``
    (the owner last, when the key was accepted)."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")


def configure(fmt: str, level: int = logging.INFO, span_ids: Any = None) -> logging.Handler:
    """Route every logger (uvicorn's too) to one stderr handler in ``fmt``."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: expected one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(span_ids) if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn's loggers keep their own handlers unless told: send them to ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return handler


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's ``log_config``: keep the handlers ``configure`` installed."""
    return {"version": 1, "disable_existing_loggers": False}
