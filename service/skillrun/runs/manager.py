"""Starts runs as tasks that write their logs, cancels them, drains them at shutdown,
closes the logs a crash left open, and purges old runs.

The live tasks are this node's business only (to cancel them); nothing that
follows a run needs them: followers read the store.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import secrets
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

from ..engine import Engine, Skill
from ..engine.runner import CANCELLED, INTERRUPTED, LIMIT_EXCEEDED
from .. import events as ev
from ..events import Event
from .quotas import RunQuotas
from .recovery import LogFates, closing_events
from .redaction import RunInputs
from .store import TERMINAL, UNFINISHED, EventRecord, RunRecord, RunStore, utc_now
from .writer import RunWriter

log = logging.getLogger(__name__)


class ShuttingDown(Exception):
    """The server is draining and starts no new runs."""


class IdempotencyConflict(Exception):
    """The idempotency key was used by this owner for a different request."""

    def __init__(self, run: RunRecord) -> None:
        super().__init__(run.run_id)
        self.run = run


class RunFinished(Exception):
    """The run has already ended."""


def new_run_id() -> str:
    return "run_" + secrets.token_hex(12)


def new_trace_id() -> str:
    return secrets.token_hex(16)


def request_hash(skill_id: str, body: dict[str, Any]) -> str:
    """What makes two requests "the same" for an idempotency key: the skill and the body."""
    canonical = json.dumps([skill_id, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


class RunManager:
    def __init__(self, store: RunStore, engine: Engine, catalog: Any = None, quotas: RunQuotas | None = None) -> None:
        self.store = store
        self.engine = engine
        self.catalog = catalog
        self.quotas = quotas or RunQuotas()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._background: set[asyncio.Future[None]] = set()
        self.draining = False
        # With a store shared by several nodes: asks the node running a run's engine
        # task to cancel it; False if no live node runs it (see runs.nodes).
        self.remote_cancel: Callable[[str, str], Awaitable[bool]] | None = None

    async def start(
        self,
        skill: Skill,
        inputs: dict[str, Any],
        *,
        owner: str,
        channel: str,
        trace_id: str | None = None,
        timeout_s: float | None = None,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> RunRecord:
        """Create a run and start it; with an idempotency key seen before, the earlier run.

        Raises ``IdempotencyConflict`` when that key came with a different request.
        """
        if self.draining:
            raise ShuttingDown()
        given = RunInputs(skill, inputs)
        run = RunRecord(
            run_id=new_run_id(),
            owner=owner,
            skill_id=skill.id,
            trace_id=trace_id or new_trace_id(),
            channel=channel,
            inputs=given.stored,  # secret inputs never reach the store (see runs.redaction)
            created_at=utc_now(),
            idempotency_key=idempotency_key,
            request_hash=request_hash,
        )
        stored = await self._create_admitted(run)
        if stored.run_id != run.run_id:
            if stored.request_hash != request_hash:
                raise IdempotencyConflict(stored)
            return stored
        task = asyncio.create_task(self._run(run, skill, timeout_s, given), name=run.run_id)
        self._tasks[run.run_id] = task
        task.add_done_callback(functools.partial(self._task_done, run=run))
        task.add_done_callback(lambda _t: self.quotas.ended(owner))
        return stored

    async def _create_admitted(self, run: RunRecord) -> RunRecord:
        """Store ``run`` if its owner and the server are under their running limits
        and its stored-runs limit (``QuotaExceeded`` if not: nothing is stored). The place is taken before the
        store is awaited, so concurrent starts cannot overshoot; it is given back
        unless a new run was stored (its task's end gives it back then)."""
        await self.quotas.admit_stored(run.owner, functools.partial(self.store.count_runs, run.owner))
        await self.quotas.admit_everywhere(run.owner)
        self.quotas.admit(run.owner)
        self.quotas.started(run.owner)
        stored: RunRecord | None = None
        try:
            stored = await self.store.create(run)
        finally:
            if stored is None or stored.run_id != run.run_id:
                self.quotas.ended(run.owner)
        if stored.run_id == run.run_id:
            self.quotas.stored(run.owner)
        return stored

    def _writer(self, run: RunRecord, given: RunInputs) -> RunWriter:
        """The run's writer, capped at ``max_events_per_run``: past it, the run is stopped
        (the runner's stop protocol) and fails with kind ``limit_exceeded``."""
        task = asyncio.current_task()
        cap = self.quotas.max_events_per_run

        def full() -> None:
            self.engine.yield_soon()
            if task is not None:
                task.cancel(f"{LIMIT_EXCEEDED}\nthe run wrote {cap} events, this server's limit per run "
                            f"(SKILLRUN_MAX_EVENTS_PER_RUN)")

        # The engine gets the real inputs; the writer scrubs secrets from what it stores.
        return given.writer(self.store, run.run_id, run.trace_id, max_events=cap, on_full=full)

    async def _run(self, run: RunRecord, skill: Skill, timeout_s: float | None, given: RunInputs) -> None:
        # No await before the engine's: a cancel always reaches the engine, which ends the log.
        writer = self._writer(run, given)
        started = time.perf_counter()
        try:
            outcome = await self.engine.run(
                skill, given.given, writer, channel=run.channel, timeout_s=timeout_s, tenant=run.owner
            )
            status, outputs, steps, error = outcome.status, outcome.outputs, outcome.steps, outcome.error
        except Exception as exc:  # an engine bug must still end the log
            log.exception("run %s crashed", run.run_id)
            status, outputs, steps = "failed", {}, []
            error = {"kind": "internal", "message": f"internal error: {type(exc).__name__}"}
            writer.emit(*ev.skill_completed(skill.id, status, round((time.perf_counter() - started) * 1000, 3)))
        result = ev.run_result(
            skill_id=skill.id, status=status, outputs=outputs, trace_id=run.trace_id, run_id=run.run_id,
            duration_ms=round((time.perf_counter() - started) * 1000, 3), steps=steps, error=error,
        )
        # The store makes the run terminal with this event (status and result from it).
        writer.append(ev.DONE, ev.done(result))

    def _task_done(self, task: asyncio.Task[None], *, run: RunRecord) -> None:
        self._tasks.pop(run.run_id, None)
        if task.cancelled():
            # Cancelled before its first step ran: the engine never saw it, so close the log here.
            closer = asyncio.ensure_future(self.close_log(run.run_id, INTERRUPTED if self.draining else CANCELLED))
            self._tasks[run.run_id] = closer  # type: ignore[assignment]  # drain waits for it too
            closer.add_done_callback(functools.partial(self._closer_done, run_id=run.run_id))

    def _closer_done(self, _task: asyncio.Future[bool], *, run_id: str) -> None:
        self._tasks.pop(run_id, None)

    async def cancel(self, run_id: str, reason: str = CANCELLED) -> RunRecord:
        """End a run with status ``reason``; its log ends ``skill_completed`` + ``done``.

        Raises ``RunFinished`` if it has already ended (or ``KeyError`` if unknown).
        """
        run = await self.store.get(run_id)
        if run is None:
            raise KeyError(run_id)
        if run.status in TERMINAL:
            raise RunFinished(run.status)
        task = self._tasks.get(run_id)
        if task is not None and not task.done():
            task.cancel(reason)
        elif self.remote_cancel is not None and await self.remote_cancel(run_id, reason):
            pass  # its node cancels the engine task, which ends the log as here
        elif not await self.close_log(run_id, reason):
            # Its engine was just writing its last events: it ended by itself.
            fresh = await self.store.get(run_id)
            raise RunFinished(fresh.status if fresh is not None and fresh.status in TERMINAL else "just now")
        return run

    def cancel_here(self, run_id: str, reason: str) -> None:
        """Cancel the run's engine task if this node runs it (a cancel sent by another node)."""
        task = self._tasks.get(run_id)
        if task is not None and not task.done():
            task.cancel(reason)

    def cancel_soon(self, run_id: str, reason: str = CANCELLED) -> None:
        """``cancel`` from code that cannot wait (a response ending); a finished run is left alone."""

        async def cancel() -> None:
            try:
                await self.cancel(run_id, reason)
            except (RunFinished, KeyError):
                pass

        task = asyncio.ensure_future(cancel())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close_log(self, run_id: str, status: str) -> bool:
        """Close the log of a run no engine is running, as ``status``; False if already closed.

        Every step and ``foreach`` item without a fate gets one (see ``runs.recovery``).
        """
        run = await self.store.get(run_id)
        if run is None or run.status in TERMINAL:
            return False
        fates = LogFates()
        last: EventRecord | None = None
        while True:  # a page at a time: only what the fates need stays in memory
            batch = await self.store.read(run_id, last.seq if last else 0)
            if not batch:
                break
            fates.feed(batch)
            last = batch[-1]
        if last is not None and last.type == ev.DONE:
            return False
        skill = self.catalog.get(run.skill_id) if self.catalog is not None else None
        writer = RunWriter(self.store, run_id, run.trace_id, last_seq=last.seq if last else 0)
        for n, event in enumerate(closing_events(run, fates, status, skill, self.catalog)):
            try:
                if isinstance(event, Event):
                    writer.emit(*event)
                else:
                    writer.append(ev.DONE, event)
            except ValueError:
                # Out of order: events we cannot see yet are being stored (its engine
                # just finished, or a second close raced us). The first append fails
                # whole, so the log is untouched; leave it to its writer.
                if n == 0:
                    return False
                raise
        return True

    async def recover(self) -> int:
        """Runs left unfinished by a crash or kill -9 become ``interrupted``, logs closed.

        Not with a store shared by several nodes: other nodes' runs are live; a dead
        node's are closed by a survivor once its lease expires (``runs.nodes``)."""
        if self.store.shared:
            return 0
        closed = 0
        while True:
            page = await self.store.list_runs(None, statuses=UNFINISHED, limit=100)
            pending = [r for r in page.runs if r.run_id not in self._tasks]
            if not pending:
                break
            for run in pending:
                if await self.close_log(run.run_id, INTERRUPTED):
                    closed += 1
            # Wait until the closing events are stored, so the next page moves on.
            for run in pending:
                await self.until_finished(run.run_id)
        if closed:
            log.warning("marked %d run(s) left running by a previous process as interrupted", closed)
        return closed

    async def until_finished(self, run_id: str) -> None:
        cursor = 0
        while True:
            run = await self.store.get(run_id)
            if run is None or run.status in TERMINAL:
                return
            batch = await self.store.read(run_id, cursor)
            if batch:
                cursor = batch[-1].seq
                continue
            await self.store.wait(run_id, cursor, 1.0)

    async def purge(self, retention_s: float) -> int:
        before = (datetime.now(timezone.utc) - timedelta(seconds=retention_s)).isoformat(timespec="milliseconds")
        gone = await self.store.purge(before.replace("+00:00", "Z"))
        if gone:
            self.quotas.purged()
        if gone:
            log.info("purged %d run(s) finished more than %g s ago", gone, retention_s)
        return gone

    async def purge_forever(self, retention_s: float, every_s: float) -> None:
        while True:
            try:
                await self.purge(retention_s)
            except Exception:  # retention is housekeeping: log, try again later
                log.exception("run purge failed")
            await asyncio.sleep(every_s)

    @property
    def live(self) -> int:
        return len(self._tasks)

    async def drain(self, grace_s: float) -> None:
        """Stop starting runs, let running ones finish for ``grace_s``, interrupt the rest."""
        self.draining = True
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel(INTERRUPTED)
        if pending:
            log.warning("interrupted %d run(s) still running after %.1f s", len(pending), grace_s)
            await asyncio.wait(pending, timeout=5)
        # Runs cancelled before their first step are closed by a task of their own.
        rest = list(self._tasks.values())
        if rest:
            await asyncio.wait(rest, timeout=5)
