"""The bounded pool both schedulers use: the DAG of steps and a ``foreach``'s items.

At most ``limit`` tasks run at once. ``finished`` waits for the next ones to end
and hands back their keys in ``order``; the first failure among them is raised
(the others' exceptions are retrieved: each step emitted its own fate). The
caller decides what a failure stops: ``drain`` cancels what is still running,
with the reason, and waits until it has ended.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine, Generic, TypeVar

from .stopping import drain

K = TypeVar("K")


class Pool(Generic[K]):
    __slots__ = ("limit", "running")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running: dict[asyncio.Task[None], K] = {}

    def __len__(self) -> int:
        return len(self.running)

    def has_room(self) -> bool:
        return len(self.running) < self.limit

    def start(self, key: K, coro: Coroutine[Any, Any, None], name: str) -> None:
        self.running[asyncio.create_task(coro, name=name)] = key

    async def finished(self, order: Callable[[K], Any]) -> list[K]:
        """Wait for at least one task to end; the keys of those that did, in ``order``."""
        done, _ = await asyncio.wait(self.running, return_when=asyncio.FIRST_COMPLETED)
        keys: list[K] = []
        for task in sorted(done, key=lambda t: order(self.running[t])):
            key = self.running.pop(task)
            exc = task.exception()
            if exc is not None:
                for other in done:
                    if other is not task and not other.cancelled():
                        other.exception()
                    self.running.pop(other, None)
                raise exc
            keys.append(key)
        return keys

    async def drain(self, msg: str) -> None:
        """Cancel every running task with ``msg`` and wait until each has ended."""
        tasks = set(self.running)
        self.running.clear()
        await drain(tasks, msg)
