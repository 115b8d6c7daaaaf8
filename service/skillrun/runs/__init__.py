"""Runs: a run is an append-only, ordered event log; every stream is a view of it.

- ``store``: the log's verbs (create, append, read after a cursor, wait, list,
  purge), the run record as a projection of the log, and the in-memory store.
- ``sqlite``: the durable store (one file, WAL, group commit, a versioned schema).
- ``filelock``: one process owns a SQLite store (an OS lock beside the file).
- ``redis``: the store every node shares (a Stream per run, Redis Cluster safe).
- ``nodes``: what nodes sharing Redis do for each other: leases, taking over a dead
  node's runs, cancels that reach the node running the engine task.
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
from .follow import Follower, follow
from .manager import IdempotencyConflict, RunFinished, RunManager, ShuttingDown, request_hash
from .redis import RedisStore, is_redis_url
from .sqlite import SchemaTooNew, SqliteStore
from .store import TERMINAL, BadCursor, EventRecord, MemoryStore, RunPage, RunRecord, RunStore, StoreUnavailable

MEMORY = ":memory:"
# URL schemes of the store that processes share (the Redis store).
SHARED_SCHEMES = ("redis://", "rediss://")


def store_kind(db: str | Path) -> str:
    """``memory``, ``redis`` or ``sqlite``: which store ``db`` (SKILLRUN_DB, --db) selects."""
    text = str(db)
    if text == MEMORY:
        return "memory"
    return "redis" if text.lower().startswith(SHARED_SCHEMES) else "sqlite"


def open_store(
    db: str | Path,
    *,
    redis_prefix: str = "skillrun:",
    retention_s: float = 7 * 86400.0,
    max_events: int | None = 100_000,
    redis_cluster: bool = False,
) -> RunStore:
    """The one setting picks the store: ``redis://`` / ``rediss://`` / ``unix://`` URLs are
    Redis, ``:memory:`` the in-memory store, anything else (``sqlite:PATH`` or a plain
    path) a SQLite file."""
    text = str(db)
    if text == MEMORY:
        return MemoryStore()
    if is_redis_url(text):
        return RedisStore(text, prefix=redis_prefix, retention_s=retention_s, max_events=max_events,
                          cluster=redis_cluster)
    if text.startswith("sqlite:"):
        text = text.removeprefix("sqlite:")
        text = text[2:] if text.startswith("///") else text  # sqlite:///abs/path as well as sqlite:rel/path
    return SqliteStore(text)


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
    "RedisStore",
    "SchemaTooNew",
    "ShuttingDown",
    "SqliteStore",
    "StoreInUse",
    "StoreUnavailable",
    "Follower",
    "follow",
    "open_store",
    "request_hash",
    "store_kind",
]
