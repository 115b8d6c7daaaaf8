"""Runs: a run is an append-only, ordered event log; every stream is a view of it.

- ``store``: the log's verbs (create, append, read after a cursor, wait, finish)
  and the in-memory store.
- ``writer``: the engine's ``Emitter`` for one run: envelope, sequence, append.
- ``manager``: starts runs as tasks, cancels them, drains them at shutdown.
- ``follow``: read a run's log from a cursor, live, until ``done``.
"""

from .follow import follow
from .manager import RunManager, ShuttingDown
from .store import EventRecord, MemoryStore, RunRecord, RunStore

__all__ = [
    "EventRecord",
    "MemoryStore",
    "RunManager",
    "RunRecord",
    "RunStore",
    "ShuttingDown",
    "follow",
]
