"""Follow a run's log from a cursor until its ``done`` event."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from ..events import DONE
from .store import EventRecord, RunStore, StoreUnavailable


async def follow(
    store: RunStore, run_id: str, after: int = 0, *, idle_s: float | None = None
) -> AsyncIterator[list[EventRecord]]:
    """Yield batches of events after ``after``, live, ending with the one holding ``done``.

    Yields an empty batch whenever ``idle_s`` passes without an event, so a
    caller can send a heartbeat. Reading is always from the store, so a slow
    reader costs the store a read, not a growing queue. A cursor at or past a
    closed log's ``done`` yields nothing and ends: the reader has everything.
    While the store is unreachable, empty batches (heartbeats) keep the stream
    open, and reading goes on from the cursor when it is back.
    """
    cursor = after
    woke = False
    while True:
        try:
            batch = await store.read(run_id, cursor)
        except StoreUnavailable:
            await asyncio.sleep(min(idle_s if idle_s is not None else 1.0, 1.0))
            yield []
            continue
        if batch:
            yield batch
            cursor = batch[-1].seq
            if batch[-1].type == DONE:
                return
            woke = False
            continue
        if woke:
            return  # woken with nothing to read: the log is closed before the cursor
        woke = await store.wait(run_id, cursor, idle_s)
        if not woke:
            yield []


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
