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
