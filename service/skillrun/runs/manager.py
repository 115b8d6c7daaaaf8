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
from ..engine.resume import Resume
from ..engine.waiting import NotWaiting, Waiter
from .recovery import LogFates, ms_since_iso, closing_events
from .redaction import RunInputs
from .store import TERMINAL, UNFINISHED, EventRecord, RunRecord, RunStore, StoreUnavailable, utc_now
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


class AnswerInvalid(Exception):
    """An answer breaks the waiting step's schema: ``field`` (``value``, ``value.x``) and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# How long an answer's request waits for the step's terminal event to be stored
# (its post-gates run first); past it the answer is acknowledged as delivered.
ANSWER_RECORDED_S = 30.0


def _ends_wait_of(record: EventRecord, step_id: str, index: int | None) -> bool:
    if record.type not in ev.ENDS_WAIT:
        return False
    payload = json.loads(record.data)
    data = payload.get("data") or {}
    return bool(payload.get("step_id") == step_id and data.get("index") == index and "waited_ms" in data)


def _timed_out(record: EventRecord) -> bool:
    """Whether a wait-ending event is the wait's own timeout (``human.input``'s kind)."""
    if record.type not in (ev.STEP_FAILED, ev.STEP_RETRYING, ev.STEP_FALLBACK):
        return False
    error = (json.loads(record.data).get("data") or {}).get("error") or {}
    return bool(error.get("kind") == "timeout")


def new_run_id() -> str:
    """``run_`` and 24 hex digits: 12 of the creation time in milliseconds, then 12
    random ones (48 bits: two runs in one millisecond still differ).

    Time first so a store's indexes on the id (SQLite's ``event_batches`` primary key
    and runs' ``run_id``) take each new run at their right edge. A random id lands on a
    random page of an index as large as everything stored: with 1,000,000 runs stored
    (bench/stored.py) that made each run's commits ~55 us slower (174 against 120 us),
    and /execute 14% slower than on an empty store."""
    return f"run_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


def new_trace_id() -> str:
    return secrets.token_hex(16)


def request_hash(skill_id: str, body: dict[str, Any]) -> str:
    """What makes two requests "the same" for an idempotency key: the skill and the body."""
    canonical = json.dumps([skill_id, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


class RunManager:
    # The first wait before giving a running place back again (doubling to 5 s).
    RELEASE_RETRY_S = 0.5

    def __init__(
        self,
        store: RunStore,
        engine: Engine,
        catalog: Any = None,
        quotas: RunQuotas | None = None,
        *,
        max_resumes: int = 3,
        observe: Any = None,
    ) -> None:
        self.store = store
        # ``observe.hub.Observability``: each run's writer gets its observer (metrics, spans).
        self.observe = observe
        self.engine = engine
        self.catalog = catalog
        self.quotas = quotas or RunQuotas()
        self.max_resumes = max_resumes
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._writers: dict[str, RunWriter] = {}  # the runs this node runs: their writers
        self._owners: dict[str, str] = {}
        self._fenced: set[str] = set()  # runs stopped here without closing their logs (``fence``)
        # A waiting run counts toward stored runs, not running ones (``quotas``).
        engine.answers.on_change = self._waiting_changed
        self._background: set[asyncio.Future[None]] = set()
        self.draining = False
        # With a store shared by several nodes: asks the node running a run's engine
        # task to cancel it; False if no live node runs it (see runs.nodes).
        self.remote_cancel: Callable[[str, str], Awaitable[bool]] | None = None
        # Likewise for an answer to a step waiting for input: (run, step, index, value).
        self.remote_answer: Callable[[str, str, int | None, Any], Awaitable[bool]] | None = None

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
        run, _replayed = await self.start_or_replay(
            skill, inputs, owner=owner, channel=channel, trace_id=trace_id, timeout_s=timeout_s,
            idempotency_key=idempotency_key, request_hash=request_hash,
        )
        return run

    async def start_or_replay(
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
    ) -> tuple[RunRecord, bool]:
        """``start``, also telling whether the run is an earlier one found by its
        idempotency key (the HTTP answer then says ``Idempotent-Replayed: true``)."""
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
            return stored, True
        self._launch(run, skill, timeout_s, given)
        return stored, False

    def _launch(self, run: RunRecord, skill: Skill, timeout_s: float | None, given: RunInputs,
                resume: Resume | None = None) -> None:
        """The run's engine task (its running place is taken: the task's end gives it back)."""
        task = asyncio.create_task(self._run(run, skill, timeout_s, given, resume), name=run.run_id)
        self._tasks[run.run_id] = task
        self._owners[run.run_id] = run.owner
        # One callback, not two: each holds a copy of the context while the run lives.
        task.add_done_callback(functools.partial(self._task_done, run=run))

    async def _create_admitted(self, run: RunRecord) -> RunRecord:
        """Store ``run`` if its owner and the server are under their running limits
        and its stored-runs limit (``QuotaExceeded`` if not: nothing is stored). The place is taken before the
        store is awaited, so concurrent starts cannot overshoot; it is given back
        unless a new run was stored (its task's end gives it back then)."""
        await self.quotas.admit_stored(run.owner, functools.partial(self.store.count_runs, run.owner))
        self.quotas.admit(run.owner)
        await self.quotas.admit_everywhere(run.owner, run.run_id)
        self.quotas.started(run.owner)
        stored: RunRecord | None = None
        try:
            stored = await self.store.create(run)
        finally:
            if stored is None or stored.run_id != run.run_id:
                self.quotas.ended(run.owner)
                await self._release(run)
        if stored.run_id == run.run_id:
            self.quotas.stored(run.owner)
        return stored

    async def _release(self, run: RunRecord) -> None:
        """Give back the shared running place taken for ``run``, which was not stored
        (as far as its caller knows); while the store is unreachable, until it answers."""
        try:
            await self.quotas.release_everywhere(run.owner, run.run_id)
        except StoreUnavailable:
            log.error("run %s: its running place could not be given back (store unreachable); "
                      "trying again until the store answers", run.run_id)
            task = asyncio.ensure_future(self._release_later(run))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _release_later(self, run: RunRecord) -> None:
        """``_release`` once the store is back. A create whose answer was lost may have
        landed: that run has no engine and its caller got an error, so its log is closed
        (``interrupted``), which gives its place back like any run's end."""
        delay = self.RELEASE_RETRY_S
        while True:
            await asyncio.sleep(delay)
            try:
                stored = await self.store.get(run.run_id)
                if stored is not None and stored.status not in TERMINAL and not self.running_here(run.run_id):
                    if await self.close_log(run.run_id, INTERRUPTED):
                        await self.until_finished(run.run_id)
                await self.quotas.release_everywhere(run.owner, run.run_id)
            except StoreUnavailable:
                delay = min(2 * delay, 5.0)
                continue
            log.info("run %s: its running place was given back", run.run_id)
            return

    def _writer(self, run: RunRecord, given: RunInputs, last_seq: int = 0) -> RunWriter:
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
        return given.writer(
            self.store, run.run_id, run.trace_id, last_seq=last_seq, max_events=cap, on_full=full,
            observer=self._observer(),
        )

    def _observer(self) -> Callable[[str, str | None, Any], None] | None:
        return self.observe.run_observer() if self.observe is not None else None

    async def _run(
        self, run: RunRecord, skill: Skill, timeout_s: float | None, given: RunInputs, resume: Resume | None
    ) -> None:
        # No await before the engine's: a cancel always reaches the engine, which ends the log.
        # This task's log lines, spans and outgoing requests carry the run's ids.
        if self.observe is not None:
            self.observe.bind_run(run.run_id, run.trace_id, run.skill_id, run.owner)
        writer = self._writers[run.run_id] = self._writer(run, given, resume.last_seq if resume else 0)
        started = time.perf_counter() - (resume.elapsed_s if resume else 0.0)
        try:
            outcome = await self.engine.run(
                skill, given.given, writer, channel=run.channel, timeout_s=timeout_s, tenant=run.owner, resume=resume,
                run_key=run.run_id,
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
        try:
            self._ended(task, run)
        finally:
            self.quotas.ended(run.owner)  # its running place, whatever happened above

    def _ended(self, task: asyncio.Task[None], run: RunRecord) -> None:
        self._tasks.pop(run.run_id, None)
        self._writers.pop(run.run_id, None)
        self._owners.pop(run.run_id, None)
        if run.run_id in self._fenced:
            self._fenced.discard(run.run_id)
            return  # its log belongs to whoever holds the run now: nothing is closed here
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

    def _waiting_changed(self, run_id: str, waiting: bool) -> None:
        """A run of this node began (or ended) waiting for input: it holds no running place meanwhile."""
        owner = self._owners.get(run_id)
        if owner is None:
            return
        note = getattr(self.store, "note_waiting", None)  # a shared store counts it for every node
        writer = self._writers.get(run_id)
        # A parked (or fenced) run still waits, whoever resumes it: the shared count keeps it so.
        if note is not None and not (writer is not None and writer.parked and not waiting):
            note(run_id, owner, waiting)
        if waiting:
            self.quotas.ended(owner)
        else:
            self.quotas.started(owner)

    async def answer(self, run: RunRecord, step_id: str, index: int | None, value: Any) -> None:
        """Deliver ``value`` to the step instance of ``run`` that waits for input, and
        return once the event that ends its wait is stored (an acknowledged answer
        survives a restart). ``RunFinished`` if the run has ended; ``NotWaiting`` if
        that instance does not wait (any more); ``AnswerInvalid`` if ``value`` breaks
        the schema it announced."""
        if run.status in TERMINAL:
            raise RunFinished(run.status)
        key = (run.run_id, step_id, index)
        if run.run_id not in self._tasks and self.remote_answer is not None:
            await self._answer_elsewhere(run, step_id, index, value)
            return
        waiter = self.engine.answers.get(key)
        problem = waiter.check(value)
        if problem is not None:
            raise AnswerInvalid(*problem)
        writer = self._writers.get(run.run_id)
        cursor = writer.seq if writer is not None else 0
        self.engine.answers.deliver(key, value)
        await self._until_wait_ended(run.run_id, step_id, index, cursor)

    async def _answer_elsewhere(self, run: RunRecord, step_id: str, index: int | None, value: Any) -> None:
        """An answer for a run another node runs (a shared store): checked against what
        the log says waits, then sent to that node, then awaited in the log like here."""
        waiting = await self._waiting_in_log(run.run_id, step_id, index)
        if waiting is None:
            raise NotWaiting("it is not waiting for input")
        schema, cursor = waiting
        problem = Waiter(schema).check(value)
        if problem is not None:
            raise AnswerInvalid(*problem)
        assert self.remote_answer is not None
        if not await self.remote_answer(run.run_id, step_id, index, value):
            raise NotWaiting("the node running it is gone; it waits again once a survivor resumes the run")
        ended = await self._until_wait_ended(run.run_id, step_id, index, cursor)
        if ended is not None and _timed_out(ended):
            # Its node timed the wait out before the answer reached it (it dropped the
            # answer): the timeout won, so the answer is refused, never acknowledged.
            raise NotWaiting("its wait timed out before the answer reached it")

    async def _waiting_in_log(self, run_id: str, step_id: str, index: int | None) -> tuple[dict[str, Any], int] | None:
        """The schema and seq of the instance's open ``step_waiting`` in the log, if one is open."""
        found: tuple[dict[str, Any], int] | None = None
        cursor = 0
        while batch := await self.store.read(run_id, cursor):
            for record in batch:
                if record.type == ev.STEP_WAITING:
                    payload = json.loads(record.data)
                    data = payload.get("data") or {}
                    if payload.get("step_id") == step_id and data.get("index") == index:
                        found = (dict(data.get("schema") or {}), record.seq)
                elif found is not None and (record.type == ev.SKILL_RESUMED or _ends_wait_of(record, step_id, index)):
                    found = None
            cursor = batch[-1].seq
        return found

    def answer_here(self, run_id: str, step_id: str, index: int | None, value: Any) -> None:
        """Deliver an answer another node checked and sent, if the step still waits here."""
        key = (run_id, step_id, index)
        try:
            waiter = self.engine.answers.get(key)
        except NotWaiting:
            log.info("run %s: an answer for step %r came, but it no longer waits", run_id, step_id)
            return
        if waiter.check(value) is None:
            waiter.answer.set_result(value)

    async def _until_wait_ended(
        self, run_id: str, step_id: str, index: int | None, cursor: int
    ) -> EventRecord | None:
        """Follow the log from ``cursor`` until the instance's wait-ending event (or the
        run's end) is stored; that event, or None if none came in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ANSWER_RECORDED_S
        while (left := deadline - loop.time()) > 0:
            batch = await self.store.read(run_id, cursor)
            for record in batch:
                if record.type == ev.DONE or _ends_wait_of(record, step_id, index):
                    return record
            if batch:
                cursor = batch[-1].seq
                continue
            await self.store.wait(run_id, cursor, left)
        log.warning("run %s: the answer to step %r was delivered, its outcome not yet stored", run_id, step_id)
        return None

    def _park_waiting(self) -> None:
        """Stop the engine tasks of the runs waiting for input without ending their logs."""
        for run_id, task in list(self._tasks.items()):
            writer = self._writers.get(run_id)
            if writer is None or task.done() or not self.engine.answers.waiting(run_id):
                continue
            writer.parked = True  # what the stopped engine would write is dropped
            task.cancel(INTERRUPTED)
            log.info("run %s waits for input: parked, resumed at the next start", run_id)

    def fence(self, run_id: str) -> None:
        """Stop this node's engine task of ``run_id`` without writing another event: the
        run is another node's now (it took it over while this node's lease had lapsed),
        or may be any moment (``runs.nodes``: the lease could not be renewed in time).
        Like a parked run, its log is left as it is, for whoever holds the run."""
        task, writer = self._tasks.get(run_id), self._writers.get(run_id)
        if task is None or task.done():
            return
        self._fenced.add(run_id)
        if writer is not None:
            writer.parked = True
        task.cancel(INTERRUPTED)
        log.warning("run %s: stopped here, its lease lapsed (another node may resume it)", run_id)

    def fence_all(self) -> list[str]:
        """``fence`` every run this node runs; their ids."""
        fenced = [run_id for run_id, task in self._tasks.items() if not task.done()]
        for run_id in fenced:
            self.fence(run_id)
        return fenced

    def running_here(self, run_id: str) -> bool:
        return run_id in self._tasks

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
        fates, last = await self._read_fates(run_id)
        if last is not None and last.type == ev.DONE:
            return False
        skill = self.catalog.get(run.skill_id) if self.catalog is not None else None
        writer = RunWriter(self.store, run_id, run.trace_id, last_seq=last.seq if last else 0, observer=self._observer())
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

    async def _read_fates(self, run_id: str) -> tuple[LogFates, EventRecord | None]:
        fates = LogFates()
        last: EventRecord | None = None
        while True:  # a page at a time: only what the fates need stays in memory
            batch = await self.store.read(run_id, last.seq if last else 0)
            if not batch:
                break
            fates.feed(batch)
            last = batch[-1]
        return fates, last

    async def recover(self) -> int:
        """Runs left unfinished by a crash or kill -9 go on from their logs (see
        ``resume``), or, where they cannot, become ``interrupted`` with their logs closed.
        Returns how many were found.

        Not with a store shared by several nodes: other nodes' runs are live; a dead
        node's are taken over by a survivor once its lease expires (``runs.nodes``)."""
        if self.store.shared:
            return 0
        found = resumed = 0
        seen: set[str] = set()
        while True:
            page = await self.store.list_runs(None, statuses=UNFINISHED, limit=100)
            pending = [r for r in page.runs if r.run_id not in self._tasks and r.run_id not in seen]
            if not pending:
                break
            closing: list[str] = []
            for run in pending:
                seen.add(run.run_id)
                found += 1
                if await self.resume(run):
                    resumed += 1
                elif await self.close_log(run.run_id, INTERRUPTED):
                    closing.append(run.run_id)
            # Wait until the closing events are stored, so the next page moves on.
            for run_id in closing:
                await self.until_finished(run_id)
        if found:
            log.warning("found %d run(s) left running by a previous process: %d resumed, %d interrupted",
                        found, resumed, found - resumed)
        return found

    async def resume(self, run: RunRecord) -> bool:
        """Continue ``run`` from its log in this process; False when it cannot go on
        (its skill is gone, changed or opts out, it has secret inputs, or it was
        resumed ``max_resumes`` times already): then close it instead."""
        skill = self.catalog.get(run.skill_id) if self.catalog is not None else None
        fates, last = await self._read_fates(run.run_id)
        if last is not None and last.type == ev.DONE:
            return True  # it ended after all: nothing to do
        why = self._cannot_resume(run, skill, fates)
        if why is not None:
            log.info("run %s is not resumed: %s", run.run_id, why)
            return False
        assert skill is not None
        elapsed_s = ms_since_iso(run.started_at or run.created_at) / 1000
        state = fates.resume(elapsed_s) if fates.started else None
        if state is not None:
            state.last_seq = last.seq if last else 0
        timeout_s = fates.timeout_ms / 1000 if fates.timeout_ms is not None else None
        self.quotas.started(run.owner)
        self._launch(run, skill, timeout_s, RunInputs(skill, run.inputs), state)
        return True

    def _cannot_resume(self, run: RunRecord, skill: Skill | None, fates: LogFates) -> str | None:
        if skill is None:
            return f"skill {run.skill_id!r} is no longer loaded"
        if skill.on_restart != "resume":
            return f"skill {skill.id!r} says on_restart: {skill.on_restart}"
        if fates.started and fates.digest != skill.digest:
            # (A log without a digest was written by a release before resumes: not
            # knowing its definition, it is closed, not continued with another.)
            return f"skill {skill.id!r} is not the definition the run started with"
        if fates.resumes >= self.max_resumes:
            return f"resumed {fates.resumes} time(s) already (SKILLRUN_MAX_RESUMES)"
        if skill.secret_inputs:
            return "its secret inputs were never stored"
        return None

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

    async def delete(self, run_id: str) -> bool:
        """Delete a finished run and its log (False if it is gone or still going)."""
        gone = await self.store.delete(run_id)
        if gone:
            self.quotas.purged()  # its owner's stored count is taken again at the next start
        return gone

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
        """Stop starting runs, let running ones finish for ``grace_s``, interrupt the rest.

        A run that waits for input is parked instead (at once, or when the grace ends):
        its log stays open, ``waiting``, and the next start resumes it (its step waits
        again), so a restart never ends a run that waits for a person."""
        self.draining = True
        self._park_waiting()
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        self._park_waiting()
        for task in pending:
            task.cancel(INTERRUPTED)
        if pending:
            log.warning("interrupted %d run(s) still running after %.1f s", len(pending), grace_s)
            await asyncio.wait(pending, timeout=5)
        # Runs cancelled before their first step are closed by a task of their own.
        rest = list(self._tasks.values())
        if rest:
            await asyncio.wait(rest, timeout=5)
