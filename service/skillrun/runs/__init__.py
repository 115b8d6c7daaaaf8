"""Runs: a run is an append-only, ordered event log; every stream is a view of it.

- ``store``: the log's verbs (create, append, read after a cursor, wait, list,
  purge), the run record as a projection of the log, and the in-memory store.
- ``sqlite``: the durable store (one file, WAL, group commit, a versioned schema).
- ``filelock``: one process owns a SQLite store (an OS lock beside the file).
- ``writer``: the engine's ``Emitter`` for one run: envelope, sequence, append.
- ``manager``: starts runs as tasks, cancels them, drains them at shutdown,
  closes logs a crash left open, purges old runs.
- ``recovery``: the events that close a log no engine will finish (every step
  and ``foreach`` item gets its one fate).
- ``redaction``: secret inputs (``writeOnly`` / ``format: password``): redacted in
  the run record, scrubbed from every event before it is stored.
- ``follow``: read a run's log from a cursor, live, until ``done``.
"""

from __future__ import annotations

from pathlib import Path

from .filelock import StoreInUse
from .follow import follow
from .manager import IdempotencyConflict, RunFinished, RunManager, ShuttingDown, request_hash
from .sqlite import SchemaTooNew, SqliteStore
from .store import TERMINAL, BadCursor, EventRecord, MemoryStore, RunPage, RunRecord, RunStore

MEMORY = ":memory:"
# URL schemes of the store that processes share (the Redis store).
SHARED_SCHEMES = ("redis://", "rediss://")


def store_kind(db: str | Path) -> str:
    """``memory``, ``redis`` or ``sqlite``: which store ``db`` (SKILLRUN_DB, --db) selects."""
    text = str(db)
    if text == MEMORY:
        return "memory"
    return "redis" if text.lower().startswith(SHARED_SCHEMES) else "sqlite"


def open_store(db: str | Path) -> RunStore:
    """``:memory:`` for the in-memory store, else the SQLite file at ``db``."""
    return MemoryStore() if str(db) == MEMORY else SqliteStore(db)


__all__ = [
    "MEMORY",
    "TERMINAL",
    "BadCursor",
    "EventRecord",
    "IdempotencyConflict",
    "MemoryStore",
    "RunFinished",
    "RunManager",
    "RunPage",
    "RunRecord",
    "RunStore",
    "SchemaTooNew",
    "ShuttingDown",
    "SqliteStore",
    "StoreInUse",
    "follow",
    "open_store",
    "request_hash",
    "store_kind",
]
