"""``SlimEvent``: ``asyncio.Event``'s behaviour in ~100 bytes instead of ~1 KB.

An ``asyncio.Event``'s waiters deque allocates a block of 64 slots, and an idle
stream held five of them (bench/stream.py (d): 10,000 idle streams, each its own
run). This keeps a list only while someone waits. Used for uvicorn's two
per-connection events (``http/edge.py``) and for a run log's change notification
(``runs.store.Changed``), which wakes the waiters of a change without staying set
(``notify``).
"""

from __future__ import annotations

import asyncio


class SlimEvent:
    __slots__ = ("_value", "_waiters")

    def __init__(self, value: bool = False) -> None:
        self._value = value
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if not self._value:
            self._value = True
            self.notify()

    def clear(self) -> None:
        self._value = False

    def notify(self) -> None:
        """Wakes everyone waiting now; a ``wait`` after it waits for the next one."""
        waiters, self._waiters = self._waiters, None
        for fut in waiters or ():
            if not fut.done():
                fut.set_result(True)

    def waiter(self) -> asyncio.Future[bool]:
        """A future that ``set``/``notify`` resolves, for a callback instead of a task
        awaiting ``wait`` (done at once if set); ``forget`` it if it is not wanted any more."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._value:
            fut.set_result(True)
        elif self._waiters is None:
            self._waiters = [fut]
        else:
            self._waiters.append(fut)
        return fut

    def forget(self, fut: asyncio.Future[bool]) -> None:
        fut.cancel()
        if self._waiters is not None and fut in self._waiters:
            self._waiters.remove(fut)

    async def wait(self) -> bool:
        if self._value:
            return True
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = [fut]
        else:
            self._waiters.append(fut)
        try:
            return await fut
        finally:
            # Left before a wake-up took it off the list (cancelled, timed out).
            if not fut.done() or fut.cancelled():
                waiters = self._waiters
                if waiters is not None and fut in waiters:
                    waiters.remove(fut)
