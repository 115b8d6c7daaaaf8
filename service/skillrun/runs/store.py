"""The run store: the log's verbs, small enough for SQLite or Redis Streams to follow.

A run record is a projection of its log, kept by the store itself: the first
event marks a queued run ``running``; the ``done`` event makes it terminal (its
status and result are ``done``'s). So a run is finished exactly when its log is
closed, and a crash can never leave one without the other.

``append`` is synchronous so the engine never waits on storage; a durable store
batches appends (group commit) behind it. Followers never poll: ``wait`` returns
as soon as an event after their cursor exists or the log is closed (or the
timeout passes).

Sequence numbers start at 1, so a log maps onto a Redis stream whose entry ids
are ``<seq>-0``.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Collection, NamedTuple, Protocol

from ..events import DONE, Projection, project_waits, projection
from ..slimevent import SlimEvent

TERMINAL = frozenset({"completed", "failed", "cancelled", "interrupted"})
UNFINISHED = frozenset({"queued", "running", "waiting"})


# The last second and its text, and the last millisecond (from and to, in ns) and
# its text: one tuple each, so threads read and replace one whole.
_last_second: tuple[int, str] = (-1, "")
_last_ms: tuple[int, int, str] = (0, 0, "")
_time_ns = time.time_ns


def _utc_second(second: int) -> str:
    global _last_second
    last = _last_second
    if last[0] == second:
        return last[1]
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    _last_second = (second, text)
    return text


def utc_now() -> str:
    """RFC 3339 UTC with milliseconds, ending in ``Z`` (sorts as text).

    Every event has one, and a run's events come microseconds apart: the text is
    kept for its millisecond, found by comparing the integer clock with the
    millisecond's bounds (~0.15 µs, not ~0.25 by ``int(time.time() * 1000)``, nor
    ~1.2 made each time), and a new millisecond's text reuses its second's.
    """
    global _last_ms
    now = _time_ns()
    last = _last_ms
    if last[0] <= now < last[1]:
        return last[2]
    ms = now // 1_000_000
    second, milli = divmod(ms, 1000)
    text = f"{_utc_second(second)}.{milli:03d}Z"
    _last_ms = (ms * 1_000_000, (ms + 1) * 1_000_000, text)
    return text


class EventRecord(NamedTuple):
    """One event of a run's log: its sequence number (from 1), type and JSON text.

    A named tuple: made for every event, it costs ~0.2 µs where a frozen dataclass
    cost ~1."""

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
    started_at: str | None = None
    finished_at: str | None = None
    result: dict[str, Any] | None = None
    # Idempotency: (owner, key) names at most one run; the hash is of the request that made it.
    idempotency_key: str | None = None
    request_hash: str | None = None
    # Steps waiting for input now (``status`` is ``waiting`` while there are any).
    waits: int = 0

    def copy(self) -> RunRecord:
        """A shallow copy (``dataclasses.replace(self)`` does the same in ~4x the time:
        stores copy a record at every create and read)."""
        return RunRecord(self.run_id, self.owner, self.skill_id, self.trace_id, self.channel, self.inputs,
                         self.created_at, self.status, self.started_at, self.finished_at, self.result,
                         self.idempotency_key, self.request_hash, self.waits)


@dataclass(frozen=True, slots=True)
class RunPage:
    runs: list[RunRecord]
    next_cursor: str | None


class BadCursor(ValueError):
    """A list cursor this store did not hand out."""


class StoreUnavailable(Exception):
    """The store cannot be reached now (a networked store's outage); retry later.

    The HTTP layer answers it 503 with ``Retry-After``; followers heartbeat through it.
    """

    retry_after_s = 2


class RunStore(Protocol):
    # What /v1/health/ready reports: "memory", "sqlite" or "redis".
    kind: str
    # True when other processes or nodes share the store: their runs are live even
    # though this process does not run them (recovery, cancels; see ``runs.nodes``).
    shared: bool

    async def open(self) -> None:
        """Get ready (create files, tables); called once before anything else."""

    async def close(self) -> None:
        """Make every appended event durable, then release resources."""

    async def create(self, run: RunRecord) -> RunRecord:
        """Store a new run; with an idempotency key already used by the same owner,
        store nothing and return that earlier run instead."""

    async def get(self, run_id: str) -> RunRecord | None: ...

    def append(self, run_id: str, event: EventRecord) -> None:
        """Add the next event (``seq`` = last + 1). Never blocks; followers see it
        once it is durable."""

    async def read(self, run_id: str, after: int, limit: int = 1000) -> list[EventRecord]: ...

    def wait(self, run_id: str, after: int, timeout: float | None) -> Awaitable[bool]:
        """True once an event after ``after`` exists or the log is closed; False on timeout.
        (An awaitable: a store may hand back the change's own wait, no coroutine around it.)"""

    async def list_runs(
        self,
        owner: str | None,
        *,
        statuses: Collection[str] | None = None,
        skill_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> RunPage:
        """Runs newest first; ``owner=None`` lists every owner's (for recovery)."""

    async def purge(self, finished_before: str) -> int:
        """Delete finished runs (and their logs) that finished before the RFC 3339 time."""

    async def delete(self, run_id: str) -> bool:
        """Delete one finished run, its log and its idempotency key; True if it was
        there and finished. A run still queued or running is never deleted (False)."""

    async def count_runs(self, owner: str) -> int:
        """How many runs ``owner`` has stored (any status): for the stored-runs quota."""

    async def check(self) -> bool:
        """Whether the store answers now (readiness: a cheap round trip, never a scan)."""


def project(run: RunRecord, event: EventRecord, now: str) -> None:
    """Apply an event to its run record (``events.projection``; see the module docstring)."""
    apply_change(run, projection(event.seq, event.type, event.data), now)


def apply_change(run: RunRecord, change: Projection, now: str) -> None:
    """Apply an event's ``projection`` (computed once, where the store has it) to its run record."""
    if change.starts and run.status == "queued":
        run.status = "running"
        run.started_at = now
    if change.waits or change.resumed:
        run.status, run.waits = project_waits(run.status, run.waits, change)
    if change.result is not None:
        run.status = change.status
        run.result = change.result
        run.finished_at = now


# A log's change notification: ``notify`` wakes everyone waiting in ``wait`` now (a
# change before the wait is not seen by it). What an ``asyncio.Event`` swapped for a
# fresh one on every change did, in a fraction of its memory: every live run holds one.
Changed = SlimEvent


async def at_once(value: bool) -> bool:
    """``value``, awaited without waiting (for a ``wait`` that knows its answer)."""
    return value


async def wait_changed(changed: asyncio.Event | Changed, timeout: float | None) -> bool:
    """Wait for a log's change notification; False when ``timeout`` passes first.

    A ``Changed``'s own ``wait_for``: no timer per wait (``slimevent``). An
    ``asyncio.Event``: ``asyncio.timeout``, not ``asyncio.wait_for``: no extra task per wait.
    """
    if isinstance(changed, SlimEvent):
        return await changed.wait_for(timeout)
    try:
        async with asyncio.timeout(timeout):
            await changed.wait()
    except TimeoutError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class ListCursor:
    """Where a page of ``list_runs`` ended: its last run, which the caller owns.

    A cursor names only the owner's own run, so it tells nothing of other keys'
    activity (a global row number did: it jumped when another key created runs).
    It needs no signature: a store looks the run up among the caller's own runs,
    so a forged cursor reaches nothing the caller could not list anyway.
    ``created_at`` resumes the listing if that run was purged in the meantime.

    On the wire: the 17 digits of ``created_at`` (to the millisecond), ``-``, the
    run id. Every string of that shape is a cursor (the spec's pattern), so no
    spec-valid request is refused.
    """

    created_at: str
    run_id: str

    _WIRE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{3})-([A-Za-z0-9_-]{1,64})")

    def encode(self) -> str:
        digits = "".join(c for c in self.created_at if c.isdigit())
        return f"{digits.ljust(17, '0')[:17]}-{self.run_id}"

    @classmethod
    def decode(cls, cursor: str | None) -> "ListCursor | None":
        if cursor is None:
            return None
        m = cls._WIRE.fullmatch(cursor)
        if m is None:
            raise BadCursor(cursor)
        y, mo, d, h, mi, sec, ms, run_id = m.groups()
        return cls(f"{y}-{mo}-{d}T{h}:{mi}:{sec}.{ms}Z", run_id)


@dataclass(slots=True)
class _Log:
    run: RunRecord
    n: int
    events: list[EventRecord] = field(default_factory=list)
    changed: Changed = field(default_factory=Changed)

    @property
    def closed(self) -> bool:
        return bool(self.events) and self.events[-1].type == DONE


class MemoryStore:
    """Runs and their logs in this process's memory (tests, ``SKILLRUN_DB=:memory:``)."""

    kind = "memory"
    shared = False

    def __init__(self) -> None:
        self._logs: dict[str, _Log] = {}
        self._idempotent: dict[tuple[str, str], str] = {}
        self._n = 0

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def create(self, run: RunRecord) -> RunRecord:
        if run.idempotency_key is not None:
            earlier = self._idempotent.get((run.owner, run.idempotency_key))
            if earlier is not None and earlier in self._logs:
                return self._logs[earlier].run.copy()
        if run.run_id in self._logs:
            raise ValueError(f"run {run.run_id} exists")
        self._n += 1
        self._logs[run.run_id] = _Log(run.copy(), self._n)
        if run.idempotency_key is not None:
            self._idempotent[(run.owner, run.idempotency_key)] = run.run_id
        return run.copy()

    async def get(self, run_id: str) -> RunRecord | None:
        log = self._logs.get(run_id)
        # A copy, as a durable store would give: callers cannot change the log's record.
        return log.run.copy() if log else None

    def append(self, run_id: str, event: EventRecord) -> None:
        log = self._logs[run_id]
        if event.seq != len(log.events) + 1:
            raise ValueError(f"run {run_id}: event {event.seq} out of order")
        log.events.append(event)
        project(log.run, event, utc_now())
        log.changed.notify()  # wakes every follower at once

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
        if len(log.events) > after or log.closed:
            return True
        return await wait_changed(log.changed, timeout)

    async def list_runs(
        self,
        owner: str | None,
        *,
        statuses: Collection[str] | None = None,
        skill_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> RunPage:
        after = self._after(ListCursor.decode(cursor), owner)
        found: list[_Log] = []
        for log in sorted(self._logs.values(), key=lambda l: l.n, reverse=True):
            if after is not None and not after(log):
                continue
            if owner is not None and log.run.owner != owner:
                continue
            if statuses is not None and log.run.status not in statuses:
                continue
            if skill_id is not None and log.run.skill_id != skill_id:
                continue
            found.append(log)
            if len(found) > limit:
                break
        more = len(found) > limit
        page = found[:limit]
        last = page[-1].run if more else None
        return RunPage([l.run.copy() for l in page], ListCursor(last.created_at, last.run_id).encode() if last else None)

    def _after(self, cursor: ListCursor | None, owner: str | None) -> Callable[[_Log], bool] | None:
        """Whether a run comes after the cursor's (older: listed on a later page)."""
        if cursor is None:
            return None
        mark = self._logs.get(cursor.run_id)
        if mark is not None and (owner is None or mark.run.owner == owner):
            n = mark.n
            return lambda log: log.n < n
        return lambda log: log.run.created_at < cursor.created_at  # that run is gone (or never was the caller's)

    async def count_runs(self, owner: str) -> int:
        return sum(1 for log in self._logs.values() if log.run.owner == owner)

    async def check(self) -> bool:
        return True

    async def purge(self, finished_before: str) -> int:
        gone = [
            rid
            for rid, log in self._logs.items()
            if log.run.status in TERMINAL and log.run.finished_at is not None and log.run.finished_at < finished_before
        ]
        for rid in gone:
            self._forget(rid)
        return len(gone)

    def _forget(self, run_id: str) -> None:
        run = self._logs.pop(run_id).run
        if run.idempotency_key is not None:
            self._idempotent.pop((run.owner, run.idempotency_key), None)

    async def delete(self, run_id: str) -> bool:
        log = self._logs.get(run_id)
        if log is None or log.run.status not in TERMINAL:
            return False
        self._forget(run_id)
        return True
