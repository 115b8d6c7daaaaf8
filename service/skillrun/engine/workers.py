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

Deltas. A ``sync_fn`` in a worker reports partial output with ``emit_delta`` as it
would inline: the worker sends each delta as a datagram on a Unix socket the pool
listens on (one message per ``sendto``, no shared lock, so a worker killed mid-send
cannot wedge the others), tagged with the job's number; the pool hands it to the
step's sink on the loop. The worker's last message for a job marks its end, and the
pool waits for it before handing back the result, so no delta arrives after the step
has its output (one that did would be dropped by the step anyway).

Workers are forked from a forkserver that has already imported the capabilities
(never forked from the running event loop), run at a lower CPU priority than the
serving process, and have their address space capped.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import multiprocessing
import os
import resource
import socket
from collections import deque
from concurrent.futures import Future
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from .capability import _STEP, _STEP_DELTA, DeltaSink

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


# In a worker process: its socket to the pool's delta channel, and the pool's address.
_CHANNEL: ContextVar[tuple[socket.socket, str] | None] = ContextVar("skillrun_worker_channel", default=None)

# The most characters of delta text one datagram carries (JSON escapes make a
# character at most 6 bytes: 48 KiB, well inside a Unix socket's send buffer).
_PIECE_CHARS = 8192


def _worker_init(memory_bytes: int, channel: str = "") -> None:
    """In each worker: yield the CPU to the serving process, cap memory, open the delta channel."""
    if channel:
        _CHANNEL.set((socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM), channel))
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


class _WorkerSink:
    """``emit_delta`` in a worker: each delta a datagram to the pool, text bounded per job."""

    __slots__ = ("sock", "address", "job", "room")

    def __init__(self, sock: socket.socket, address: str, job: int, max_chars: int) -> None:
        self.sock, self.address, self.job, self.room = sock, address, job, max_chars

    def send(self, message: list[Any]) -> None:
        self.sock.sendto(json.dumps(message).encode(), self.address)

    def __call__(self, text: str | None, progress: float | None) -> None:
        if text and self.room > 0:
            text = text[: self.room]
            self.room -= len(text)
            for start in range(0, len(text), _PIECE_CHARS):
                last = start + _PIECE_CHARS >= len(text)
                self.send([self.job, text[start:start + _PIECE_CHARS], progress if last else None])
        elif progress is not None:
            self.send([self.job, None, progress])


def run_with_deltas(fn: SyncFn, args: dict[str, Any], job: int, max_chars: int) -> Any:
    """In a worker: ``fn(args)`` with its deltas sent to the pool, then the job's end mark."""
    channel = _CHANNEL.get()
    if channel is None:  # pragma: no cover - a pool always opens the channel
        return fn(args)
    sink = _WorkerSink(channel[0], channel[1], job, max_chars)
    token = _STEP_DELTA.set(sink)
    try:
        return fn(args)
    finally:
        _STEP_DELTA.reset(token)
        sink.send([job, None, None, True])


@dataclass(eq=False)
class _Job:
    fn: SyncFn
    args: dict[str, Any]
    tenant: str
    result: asyncio.Future[Any]
    running: Future[Any] | None = field(default=None)
    # With a delta sink: the job's number on the channel, and its end mark's arrival.
    sink: DeltaSink | None = None
    number: int = 0
    ended: asyncio.Future[None] | None = None
    died: bool = False  # its worker died (or was killed): no end mark will come


class ProcessOffload:
    """A bounded pool of worker processes (pebble), fed fairly from per-tenant queues."""

    def __init__(
        self,
        workers: int,
        *,
        inline_max_chars: int = INLINE_MAX_CHARS,
        per_tenant: int | None = None,
        memory_mb: int = 1024,
        delta_max_chars: int = 1_000_000,
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
        self.delta_max_chars = delta_max_chars
        self._channel: socket.socket | None = None  # deltas from workers (see the module's docstring)
        self._numbers = itertools.count(1)
        self._sinks: dict[int, _Job] = {}  # jobs whose deltas are expected, by number

    async def start(self) -> None:
        import pebble

        if self._pool is not None:
            return
        context = multiprocessing.get_context("forkserver")
        # Workers fork from a server that has the capabilities imported: a worker
        # killed at a deadline is replaced in milliseconds.
        context.set_forkserver_preload(["skillrun.capabilities"])
        self._loop = asyncio.get_running_loop()
        address = self._open_channel(self._loop)
        self._pool = pebble.ProcessPool(
            max_workers=self.workers,
            context=context,
            initializer=_worker_init,
            initargs=(self.memory_mb * 1024 * 1024, address),
        )
        # Warm every worker before the first request pays for it.
        warm = [self._pool.schedule(_ready) for _ in range(self.workers)]
        await asyncio.gather(*(asyncio.wrap_future(f) for f in warm))

    def _open_channel(self, loop: asyncio.AbstractEventLoop) -> str:
        """Listen for workers' deltas on a Unix datagram socket (Linux's abstract namespace:
        no file to clean up, gone with the process); its address."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        address = f"\0skillrun-deltas-{os.getpid()}-{os.urandom(6).hex()}"
        sock.bind(address)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        loop.add_reader(sock.fileno(), self._receive)
        self._channel = sock
        return address

    def _receive(self) -> None:
        """Hand every waiting datagram to its job's sink (on the loop)."""
        sock = self._channel
        while sock is not None:
            try:
                raw = sock.recv(1 << 17)
            except (BlockingIOError, InterruptedError):
                return
            try:
                number, text, progress, *end = json.loads(raw)
            except (ValueError, TypeError):
                log.warning("dropped a malformed delta message from a worker")
                continue
            job = self._sinks.get(number)
            if job is None:
                continue  # its call has ended (a deadline, a cancel): dropped
            if end:
                if job.ended is not None and not job.ended.done():
                    job.ended.set_result(None)
            elif job.sink is not None:
                job.sink(text if isinstance(text, str) else None, progress)

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None and self._loop is not None:
            self._loop.remove_reader(channel.fileno())
            channel.close()
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
        job = _Job(fn, args, TENANT.get(), loop.create_future(), sink=_STEP.get())
        if job.sink is not None and self._channel is not None:
            job.number, job.ended = next(self._numbers), loop.create_future()
            self._sinks[job.number] = job
        try:
            return await self._run(job)
        finally:
            self._sinks.pop(job.number, None)

    async def _run(self, job: _Job) -> Any:
        queue = self._queues.get(job.tenant)
        if queue is None:
            queue = self._queues[job.tenant] = deque()
            self._turns.append(job.tenant)
        queue.append(job)
        self._dispatch()
        try:
            result = await job.result
        except asyncio.CancelledError:
            self._abandon(job)
            raise
        except Exception:
            await self._deltas_drained(job)
            raise
        await self._deltas_drained(job)
        return result

    @staticmethod
    async def _deltas_drained(job: _Job) -> None:
        """Wait for the job's end mark: its deltas were sent before it, so they have all
        reached the sink (they travel apart from the result). A worker that died sends
        none: wait only briefly."""
        if job.ended is None or job.died:
            return
        try:
            async with asyncio.timeout(1.0):
                await asyncio.shield(job.ended)
        except TimeoutError:
            log.warning("a worker's deltas did not end within 1 s; later ones are dropped")

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
        if job.ended is not None:
            job.running = self._pool.schedule(run_with_deltas, args=(job.fn, job.args, job.number, self.delta_max_chars))
        else:
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
                job.died = _worker_died(exc)
                job.result.set_exception(_worker_error(exc))
            else:
                job.result.set_result(done.result())
        self._dispatch()


def _worker_died(exc: BaseException) -> bool:
    from pebble import ProcessExpired

    return isinstance(exc, ProcessExpired)


def _worker_error(exc: BaseException) -> BaseException:
    """A worker's failure as the capability's: a worker that died is a capability error."""
    from pebble import ProcessExpired

    from .capability import CapabilityError

    if isinstance(exc, ProcessExpired):
        return CapabilityError(f"the worker process died (exit code {exc.exitcode})", kind="capability_error")
    if isinstance(exc, MemoryError):
        return CapabilityError("the input needs more memory than a worker may use", kind="input_too_large")
    return exc


def make_offload(
    workers: int, inline_max_chars: int = INLINE_MAX_CHARS, memory_mb: int = 1024, delta_max_chars: int = 1_000_000
) -> Offload:
    """``workers`` processes (0: every call inline)."""
    if workers <= 0:
        return Inline()
    return ProcessOffload(workers, inline_max_chars=inline_max_chars, memory_mb=memory_mb,
                          delta_max_chars=delta_max_chars)
