"""Follow a run's log from a cursor until its ``done`` event."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from ..events import DONE
from .store import EventRecord, RunStore, StoreUnavailable


class Follower:
    """A run's log from a cursor, live, a batch at a time (``next``), to the batch holding ``done``.

    A class, not a generator: a stream (``http/handlers/_stream.py``) awaits ``next``
    from its own loop, and an idle one holds this object and one coroutine frame,
    where an async generator held its frame, its ``asend`` and the loop's weak
    reference to it (bench/stream.py (d): 10,000 idle streams). ``follow`` is the
    same as an async iterator.

    ``next`` gives an empty batch whenever ``idle_s`` passes without an event, so
    a caller can send a heartbeat. Reading is always from the store, so a slow
    reader costs the store a read, not a growing queue. A cursor at or past a
    closed log's ``done`` gives nothing and ends: the reader has everything.
    While the store is unreachable, empty batches (heartbeats) keep the stream
    open, and reading goes on from the cursor when it is back.
    """

    __slots__ = ("store", "run_id", "cursor", "idle_s", "_woke", "_ended")

    def __init__(self, store: RunStore, run_id: str, after: int = 0, *, idle_s: float | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.cursor = after
        self.idle_s = idle_s
        self._woke = False
        self._ended = False

    async def next(self) -> list[EventRecord] | None:
        """The next batch; ``[]`` for a heartbeat; None once the log has ended."""
        if self._ended:
            return None
        while True:
            try:
                batch = await self.store.read(self.run_id, self.cursor)
            except StoreUnavailable:
                await asyncio.sleep(min(self.idle_s if self.idle_s is not None else 1.0, 1.0))
                return []
            if batch:
                self.cursor = batch[-1].seq
                self._ended = batch[-1].type == DONE
                self._woke = False
                return batch
            if self._woke:
                self._ended = True  # woken with nothing to read: the log is closed before the cursor
                return None
            self._woke = await self.store.wait(self.run_id, self.cursor, self.idle_s)
            if not self._woke:
                return []


async def follow(
    store: RunStore, run_id: str, after: int = 0, *, idle_s: float | None = None
) -> AsyncIterator[list[EventRecord]]:
    """Yield batches of events after ``after``, live, ending with the one holding ``done``
    (``Follower``'s, as an async iterator)."""
    follower = Follower(store, run_id, after, idle_s=idle_s)
    while (batch := await follower.next()) is not None:
        yield batch


async def last_seq_if_past(store: RunStore, run_id: str, cursor: int) -> int | None:
    """The log's last ``seq`` when ``cursor`` is past it (an id never issued), else None.

    Only ``read`` is needed, so every store answers alike: one read for a cursor
    that exists, and a binary search of one-event reads (about 17 for the largest
    log) for one that does not, so a bad cursor never costs reading a whole log.
    """
    if cursor <= 0 or await store.read(run_id, cursor - 1, limit=1):
        return None
    low, high = 0, cursor - 1  # the last seq is in [low, high]: seq low exists (0: none)
    while low < high:
        mid = (low + high + 1) // 2
        if await store.read(run_id, mid - 1, limit=1):
            low = mid
        else:
            high = mid - 1
    return low
