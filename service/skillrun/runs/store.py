"""The run store: the log's verbs, small enough for SQLite or Redis Streams to follow.

``append`` is synchronous so the engine never waits on storage; a durable store
batches appends (group commit) behind it. Followers never poll: ``wait`` returns
as soon as an event after their cursor exists (or the timeout passes).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

TERMINAL = frozenset({"completed", "failed", "cancelled", "interrupted"})


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event of a run's log: its sequence number (from 1), type and JSON text."""

    seq: int
    type: str
    data: str


@dataclass(slots=True)
class RunRecord:
    run_id: str
    owner: str
    skill_id: str
    trace_id: str
    channel: str
    inputs: dict[str, Any]
    created_at: str
    status: str = "queued"
    finished_at: str | None = None
    result: dict[str, Any] | None = None


class RunStore(Protocol):
    async def create(self, run: RunRecord) -> None: ...

    async def get(self, run_id: str) -> RunRecord | None: ...

    def append(self, run_id: str, event: EventRecord) -> None: ...

    async def read(self, run_id: str, after: int, limit: int = 1000) -> list[EventRecord]: ...

    async def wait(self, run_id: str, after: int, timeout: float | None) -> bool: ...

    async def set_status(
        self, run_id: str, status: str, *, result: dict[str, Any] | None = None, at: str | None = None
    ) -> None: ...


@dataclass(slots=True)
class _Log:
    run: RunRecord
    events: list[EventRecord] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class MemoryStore:
    """Runs and their logs in this process's memory (tests, and the default for now)."""

    def __init__(self) -> None:
        self._logs: dict[str, _Log] = {}

    async def create(self, run: RunRecord) -> None:
        if run.run_id in self._logs:
            raise ValueError(f"run {run.run_id} exists")
        self._logs[run.run_id] = _Log(run)

    async def get(self, run_id: str) -> RunRecord | None:
        log = self._logs.get(run_id)
        return log.run if log else None

    def append(self, run_id: str, event: EventRecord) -> None:
        log = self._logs[run_id]
        if event.seq != len(log.events) + 1:
            raise ValueError(f"run {run_id}: event {event.seq} out of order")
        log.events.append(event)
        # Wake every follower at once, then give the next ones a fresh event to wait on.
        log.changed.set()
        log.changed = asyncio.Event()

    async def read(self, run_id: str, after: int, limit: int = 1000) -> list[EventRecord]:
        log = self._logs.get(run_id)
        if log is None:
            return []
        # seq n lives at index n - 1, so "after n" starts at index n.
        return log.events[max(after, 0) : max(after, 0) + limit]

    async def wait(self, run_id: str, after: int, timeout: float | None) -> bool:
        log = self._logs.get(run_id)
        if log is None:
            return False
        if len(log.events) > after:
            return True
        try:
            await asyncio.wait_for(log.changed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def set_status(
        self, run_id: str, status: str, *, result: dict[str, Any] | None = None, at: str | None = None
    ) -> None:
        run = self._logs[run_id].run
        run.status = status
        if result is not None:
            run.result = result
        if status in TERMINAL:
            run.finished_at = at
