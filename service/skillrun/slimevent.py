"""``SlimEvent``: ``asyncio.Event``'s behaviour in ~100 bytes instead of ~1 KB.

An ``asyncio.Event``'s waiters deque allocates a block of 64 slots, and an idle
stream held five of them (bench/stream.py (d): 10,000 idle streams, each its own
run). This keeps a list only while someone waits. Used for uvicorn's two
per-connection events (``http/edge.py``) and for a run log's change notification
(``runs.store.Changed``), which wakes the waiters of a change without staying set
(``notify``).

``wait_for(timeout)`` is ``wait`` with a time limit that costs no timer of its own:
a follower waits for its run's next change for at most the heartbeat interval, and
``asyncio.timeout`` made a ``Timeout``, a ``TimerHandle`` and a copy of the task's
context for every such wait (a cancelled one stays in the loop's heap until pruned).
Here a wait's limit is an entry in a list of the loop's shared ``_Slots``: one timer
per 10 ms slot, however many waits end in it.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import weakref


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
        self._unlist(fut)

    def _unlist(self, fut: asyncio.Future[bool]) -> None:
        """Off the list of waiters: one that left before a wake-up took it off."""
        waiters = self._waiters
        if waiters is not None and fut in waiters:
            waiters.remove(fut)

    async def wait_for(self, timeout: float | None) -> bool:
        """``wait`` for at most ``timeout`` seconds (None: no limit): True when set or
        notified, False when the time passed first (up to one slot, 10 ms, late)."""
        if self._value:
            return True
        if timeout is None:
            return await self.wait()
        if timeout <= 0:
            return False
        fut = self.waiter()
        slots = _slots_of(fut.get_loop())
        slot = slots.add(fut, timeout)
        try:
            return await fut
        finally:
            if fut.cancelled() or not fut.result():  # cancelled, or the time passed: still listed
                self._unlist(fut)
            slots.discard(fut, slot)

    async def wait(self) -> bool:
        if self._value:
            return True
        fut = self.waiter()
        try:
            return await fut
        finally:
            if fut.cancelled():  # left before a wake-up took it off the list
                self._unlist(fut)


class _Slots:
    """A loop's time limits of ``wait_for``: futures by the 10 ms slot their limit ends
    in, one ``call_at`` per slot; a future still pending when its slot comes gets False."""

    STEP = 0.01

    __slots__ = ("loop", "slots", "context")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.slots: dict[int, list[asyncio.Future[bool]]] = {}
        # The slot's callback runs in a context of its own, not a copy of whichever
        # waiter's context opened the slot (held until it fires).
        self.context = contextvars.Context()

    def add(self, fut: asyncio.Future[bool], timeout: float) -> int:
        slot = math.ceil((self.loop.time() + timeout) / self.STEP)
        waiting = self.slots.get(slot)
        if waiting is None:
            self.slots[slot] = [fut]
            self.loop.call_at(slot * self.STEP, self._expire, slot, context=self.context)
        else:
            waiting.append(fut)
        return slot

    def discard(self, fut: asyncio.Future[bool], slot: int) -> None:
        """A wait that ended before its slot came: not held until then."""
        waiting = self.slots.get(slot)
        if waiting is not None:
            try:
                waiting.remove(fut)
            except ValueError:
                pass

    def _expire(self, slot: int) -> None:
        for fut in self.slots.pop(slot, ()):
            if not fut.done():
                fut.set_result(False)


_SLOTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Slots] = weakref.WeakKeyDictionary()


def _slots_of(loop: asyncio.AbstractEventLoop) -> _Slots:
    slots = _SLOTS.get(loop)
    if slots is None:
        slots = _SLOTS[loop] = _Slots(loop)
    return slots
