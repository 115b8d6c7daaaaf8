"""Where CPU-bound capability work runs: inline on the loop when it is small, else in
a pool of worker processes where a deadline can stop it.

The event loop only serves. A capability with a ``sync_fn`` (see ``Capability``)
declares that its cost grows with its input; such a call runs in a worker process
unless its input is smaller than ``inline_max_chars``, where the work costs less than
the hop (measured on this kind of machine, 2 cores: a round trip to a worker costs
~0.15-0.4 ms; the costliest built-in, ``text.extractive_summary``, ~120 ns a
character, so 4,096 characters inline cost at most ~0.5 ms of loop time).

Stopping. A call is awaited as an asyncio future; when the awaiting task is cancelled
(a step or run deadline, a cancel, a failing sibling), the worker's task is cancelled
too, and pebble kills a worker whose task is running and starts a new one. So every
deadline is hard for CPU-bound work: nothing runs on past it.

Fairness. Calls wait in one FIFO queue per tenant (the run's owner); a free worker
takes the next call of the next tenant in turn (round robin), and one tenant holds at
most ``per_tenant`` workers at once, so one key's flood of large inputs leaves
workers for everyone else's.

Workers are forked from a forkserver that has already imported the capabilities
(never forked from the running event loop), run at a lower CPU priority than the
serving process, and have their address space capped.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import resource
from collections import deque
from concurrent.futures import Future
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

log = logging.getLogger(__name__)

SyncFn = Callable[[dict[str, Any]], Any]

# The owner of the run whose step is calling (set by ``Engine.run``).
TENANT: ContextVar[str] = ContextVar("skillrun_tenant", default="")

INLINE_MAX_CHARS = 4096


class Offload(Protocol):
    async def call(self, fn: SyncFn, args: dict[str, Any]) -> Any:
        """``fn(args)``, inline or in a worker; cancelling the caller stops the work."""

    def inline(self, args: dict[str, Any]) -> bool:
        """Whether ``call`` would run ``fn(args)`` on the loop (small input, or no pool)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class Inline:
    """Every call on the loop: for tests and for a server started with no worker processes."""

    def inline(self, args: dict[str, Any]) -> bool:
        return True

    async def call(self, fn: SyncFn, args: dict[str, Any]) -> Any:
        return fn(args)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


def input_size(value: Any, limit: int) -> int:
    """Characters in ``value``'s strings (plus one per item), counted up to just past ``limit``."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        v = stack.pop()
        if isinstance(v, str):
            total += len(v)
        elif isinstance(v, dict):
            total += len(v)
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            total += len(v)
            stack.extend(v)
        else:
            total += 1
    return total


def _worker_init(memory_bytes: int) -> None:
    """In each worker: yield the CPU to the serving process, and cap memory."""
    try:
        os.nice(5)
    except OSError:  # pragma: no cover - not permitted here
        pass
    if memory_bytes > 0:
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _ready() -> int:
    return os.getpid()


@dataclass(eq=False)
class _Job:
    fn: SyncFn
    args: dict[str, Any]
    tenant: str
    result: asyncio.Future[Any]
    running: Future[Any] | None = field(default=None)


class ProcessOffload:
    """A bounded pool of worker processes (pebble), fed fairly from per-tenant queues."""

    def __init__(
        self,
        workers: int,
        *,
        inline_max_chars: int = INLINE_MAX_CHARS,
        per_tenant: int | None = None,
        memory_mb: int = 1024,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self.inline_max_chars = inline_max_chars
        self.per_tenant = per_tenant if per_tenant is not None else max(1, workers - 1)
        self.memory_mb = memory_mb
        self._pool: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queues: dict[str, deque[_Job]] = {}
        self._turns: deque[str] = deque()  # tenants with waiting calls, in turn
        self._busy: dict[str, int] = {}  # tenant -> workers held
        self._running = 0

    async def start(self) -> None:
        import pebble

        if self._pool is not None:
            return
        context = multiprocessing.get_context("forkserver")
        # Workers fork from a server that has the capabilities imported: a worker
        # killed at a deadline is replaced in milliseconds.
        context.set_forkserver_preload(["skillrun.capabilities"])
        self._loop = asyncio.get_running_loop()
        self._pool = pebble.ProcessPool(
            max_workers=self.workers,
            context=context,
            initializer=_worker_init,
            initargs=(self.memory_mb * 1024 * 1024,),
        )
        # Warm every worker before the first request pays for it.
        warm = [self._pool.schedule(_ready) for _ in range(self.workers)]
        await asyncio.gather(*(asyncio.wrap_future(f) for f in warm))

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        for queue in self._queues.values():
            for job in queue:
                job.result.cancel()
        self._queues.clear()
        self._turns.clear()
        pool.stop()
        await asyncio.get_running_loop().run_in_executor(None, pool.join)

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def inline(self, args: dict[str, Any]) -> bool:
        return self._pool is None or input_size(args, self.inline_max_chars) <= self.inline_max_chars

    async def call(self, fn: SyncFn, args: dict[str, Any]) -> Any:
        if self.inline(args):
            return fn(args)
        loop = asyncio.get_running_loop()
        job = _Job(fn, args, TENANT.get(), loop.create_future())
        queue = self._queues.get(job.tenant)
        if queue is None:
            queue = self._queues[job.tenant] = deque()
            self._turns.append(job.tenant)
        queue.append(job)
        self._dispatch()
        try:
            return await job.result
        except asyncio.CancelledError:
            self._abandon(job)
            raise

    def _abandon(self, job: _Job) -> None:
        if job.running is not None:
            job.running.cancel()  # pebble stops the worker and starts another
            return
        queue = self._queues.get(job.tenant)
        if queue is not None and job in queue:
            queue.remove(job)
            if not queue:
                self._forget(job.tenant)

    def _forget(self, tenant: str) -> None:
        self._queues.pop(tenant, None)
        try:
            self._turns.remove(tenant)
        except ValueError:
            pass

    def _dispatch(self) -> None:
        """Give free workers to waiting calls, one tenant after another."""
        skipped = 0
        while self._running < self.workers and self._turns and skipped < len(self._turns):
            tenant = self._turns[0]
            self._turns.rotate(-1)
            if self._busy.get(tenant, 0) >= self.per_tenant:
                skipped += 1
                continue
            skipped = 0
            queue = self._queues[tenant]
            job = queue.popleft()
            if not queue:
                self._forget(tenant)
            self._submit(job)

    def _submit(self, job: _Job) -> None:
        self._running += 1
        self._busy[job.tenant] = self._busy.get(job.tenant, 0) + 1
        job.running = self._pool.schedule(job.fn, args=(job.args,))
        loop = self._loop
        assert loop is not None
        def finished(f: Future[Any]) -> None:  # on pebble's thread, or ours on a cancel
            try:
                loop.call_soon_threadsafe(self._finished, job, f)
            except RuntimeError:  # the loop has closed: nobody waits any more
                pass

        job.running.add_done_callback(finished)

    def _finished(self, job: _Job, done: Future[Any]) -> None:
        self._running -= 1
        held = self._busy[job.tenant] - 1
        if held:
            self._busy[job.tenant] = held
        else:
            del self._busy[job.tenant]
        if not job.result.done():
            if done.cancelled():
                job.result.cancel()
            elif (exc := done.exception()) is not None:
                job.result.set_exception(_worker_error(exc))
            else:
                job.result.set_result(done.result())
        self._dispatch()


def _worker_error(exc: BaseException) -> BaseException:
    """A worker's failure as the capability's: a worker that died is a capability error."""
    from pebble import ProcessExpired

    from .capability import CapabilityError

    if isinstance(exc, ProcessExpired):
        return CapabilityError(f"the worker process died (exit code {exc.exitcode})", kind="capability_error")
    if isinstance(exc, MemoryError):
        return CapabilityError("the input needs more memory than a worker may use", kind="input_too_large")
    return exc


def make_offload(workers: int, inline_max_chars: int = INLINE_MAX_CHARS, memory_mb: int = 1024) -> Offload:
    """``workers`` processes (0: every call inline)."""
    if workers <= 0:
        return Inline()
    return ProcessOffload(workers, inline_max_chars=inline_max_chars, memory_mb=memory_mb)
