"""Runs a skill: every step's fate becomes an event; nothing fails silently, nothing runs forever.

The runner knows nothing of HTTP or of where events go: it calls ``Emitter.emit``
and returns a ``RunOutcome``.

Scheduling. Steps form a DAG through ``needs`` (a step without ``needs`` waits for
the one written before it). Ready steps start in the order written, at most
``skill.max_parallel`` at once; every capability call also takes one of the
engine's server-wide slots (``Engine(max_parallel=...)``), within its key's share
(``max_parallel_per_key``, see ``slots``). Only capability calls that work
(``Capability.holds_slot``) hold a slot, never a step that waits for others (a
nested skill, a foreach), so the limits cannot deadlock. A step that is the only thing able to run is awaited
inline rather than as a task: a long chain then costs no task per step. A step
that has none of the phases that need per-instance machinery (gates, retries, a
time limit, a fallback, a nested skill: ``step.plain``) runs through
``StepLife.plain`` (the slim path): once, or, for a ``foreach``, its items one after
the other in one loop. Its ``when`` is no such phase: the scheduler decides it
before either path runs.

Stopping (``stopping``): every stop is a cancellation whose message says why.
Each open step instance (``step``) emits ``step_failed`` with that reason; each
scheduler (``pool``) cancels its running steps with the same message, waits for
them, and emits ``step_skipped`` for the steps (and ``foreach`` items) that never
started. So every step and every item of every run gets exactly one fate, and no
task outlives the run. Nested skills' events reach the parent's stream through
``forward``; every event is built by ``skillrun.events``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Coroutine, Protocol

import jsonschema

from .. import events as ev
from ..events import Emitter
from .capability import _RUN_KEY, _RUN_STATE, _STEP, Capability, CapabilityError, CapabilityRegistry
from .expressions import NEEDS_CEL, Expression, ExpressionError, Template, render_elsewhere
from .deltas import DeltaPolicy, RunDeltaBudget
from .forward import Forward
from .hooks import NO_TRACER, NOTHING, Tracer
from .inputcheck import InputCheck
from .model import Skill, Step
from .pool import Pool
from .resume import Fate, OneFate, Resume
from .slots import CapabilitySlots
from .step import StepLife, ms_since, plain
from .stopping import (
    CANCELLED,
    INTERRUPTED,
    LIMIT_EXCEEDED,
    TIMEOUT,
    Deadline,
    StepFailure,
    TimedOut,
    passed_on,
    reason_msg,
    stop_reason,
    stopped_status,
)
from .waiting import Answers
from .workers import TENANT, Inline, Offload

__all__ = [
    "CANCELLED",
    "INTERRUPTED",
    "LIMIT_EXCEEDED",
    "TIMEOUT",
    "Emitter",
    "Engine",
    "RunOutcome",
    "SkillLookup",
    "StepFailure",
    "stop_reason",
]


class SkillLookup(Protocol):
    def get(self, skill_id: str) -> Skill | None: ...


@dataclass(slots=True)
class RunOutcome:
    status: str
    outputs: dict[str, Any]
    steps: list[dict[str, Any]]
    duration_ms: float
    error: dict[str, str] | None = None


SLICE_S = 0.002
# The most a skill's outputs may take to render once its steps have ended.
OUTPUTS_S = 5.0


class Engine:
    """Runs skills. One per app: its ``max_parallel`` bounds capability calls server-wide."""

    def __init__(
        self,
        capabilities: CapabilityRegistry,
        *,
        skills: SkillLookup | None = None,
        max_parallel: int = 256,
        max_depth: int = 8,
        rng: random.Random | None = None,
        offload: Offload | None = None,
        max_parallel_per_key: int | None = None,
        max_foreach_items: int | None = None,
        tracer: Tracer | None = None,
        deltas: DeltaPolicy | None = None,
    ) -> None:
        self.capabilities = capabilities
        self.skills = skills
        self.max_parallel = max_parallel
        self.max_depth = max_depth
        self.rng = rng or random.Random()
        # Where CPU-bound capabilities (``sync_fn``) run: see ``workers``.
        self.offload: Offload = offload or Inline()
        # One key holds at most ``max_parallel_per_key`` of them (see ``slots``).
        self.slots = CapabilitySlots(max_parallel, max_parallel_per_key or max_parallel)
        self.max_foreach_items = max_foreach_items
        self.tracer: Tracer = tracer or NO_TRACER  # spans per run and attempt (``hooks``)
        self._input_validators: dict[tuple[str, str], Any] = {}
        self.input_check = InputCheck()  # rendered capability inputs against their schemas
        self.deltas = deltas or DeltaPolicy()  # steps' partial output: coalescing window, bound
        self.answers = Answers()  # steps waiting for input, by run, step and item (``waiting``)
        # Instances of a plain step (run once or per item) take the slim path
        # (``step.plain``); False: the general one, which gives the same events (the
        # tests compare the two).
        self.slim = True
        self._slice_start = time.perf_counter()

    async def yield_if_due(self) -> None:
        """Give the event loop a turn after ``SLICE_S`` of steps that never waited.

        A step whose capability does no I/O does not suspend; a run of thousands
        of them would hold the loop (and every other stream) until it ends. A turn
        per step would instead cost a loop iteration per step and one-event
        batches. A turn every couple of milliseconds keeps both fairness and
        throughput.
        """
        now = time.perf_counter()
        if now - self._slice_start >= SLICE_S:
            await asyncio.sleep(0)
            self._slice_start = time.perf_counter()

    def yield_soon(self) -> None:
        """The next ``yield_if_due`` gives the loop a turn: a stop requested from inside a
        step (a run past a limit) is then delivered after this step, not a slice later."""
        self._slice_start = float("-inf")

    async def run(
        self,
        skill: Skill,
        inputs: dict[str, Any],
        emitter: Emitter,
        *,
        channel: str,
        timeout_s: float | None = None,
        tenant: str = "",
        resume: Resume | None = None,
        run_key: str = "",
    ) -> RunOutcome:
        """Run ``skill``; emits ``skill_start`` .. ``skill_completed`` and returns the outcome.

        Cancelling the task running this (``task.cancel(CANCELLED | INTERRUPTED)``)
        ends the run with that status; the open steps get ``step_failed``. The time
        limit is the smaller of ``timeout_s`` and the skill's own ``timeout``.
        ``tenant`` (the run's owner) is whose turn CPU-bound work waits for;
        ``run_key`` (the run's id) names its steps' calls (``idempotency_key``).
        With ``resume``, the run continues its log (``skill_resumed`` instead of
        ``skill_start``; see ``resume``); its limit counts the time already spent.
        """
        started = time.perf_counter() - (resume.elapsed_s if resume else 0.0)
        one_fate = OneFate(emitter, resume) if resume is not None else None
        run = _Run(self, skill, skill.with_defaults(inputs), one_fate or emitter, 0, resume.fates if resume else None,
                   expires=resume.expires if resume else None)
        limits = [t for t in (timeout_s, skill.timeout_s) if t is not None]
        limit = min(limits) if limits else None
        if resume is None:
            emitter.emit(*ev.skill_start(skill.id, skill.version, channel, [s.id for s in skill.steps],
                                         digest=skill.digest, timeout_ms=limit * 1000 if limit is not None else None))
        else:
            emitter.emit(*ev.skill_resumed(skill.id, resume.restored, resume.rerun, resume.resumes))
            if limit is not None:
                limit = max(0.0, limit - resume.elapsed_s)
        status, error = "completed", None
        state = _RUN_STATE.set({})
        key_token = _RUN_KEY.set(run_key)
        tenant_token = TENANT.set(tenant)  # the steps' tasks inherit it
        try:
            async with self.tracer.run(skill.id, channel), Deadline(limit, f"the run took longer than {limit:g} s" if limit else ""):
                await run.execute()
        except StepFailure as failure:
            status, error = "failed", failure.as_dict()
        except TimedOut as exc:
            status, error = "failed", {"kind": TIMEOUT, "message": exc.message}
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None:
                while task.uncancel():  # this task owns the run; ending it cleanly is the point
                    pass
            error = stop_reason(exc)
            status = stopped_status(error)
            if status == CANCELLED:
                error = {"kind": CANCELLED, "message": error["message"]}
        finally:
            _RUN_STATE.reset(state)
            _RUN_KEY.reset(key_token)
            TENANT.reset(tenant_token)
        if one_fate is not None:  # what the log knew of and nothing gave a fate since
            one_fate.close(f"not run: {error['message']}" if error else "not run")
        outputs = await run.result_outputs()
        duration = ms_since(started)
        emitter.emit(*ev.skill_completed(skill.id, status, duration))
        return RunOutcome(status, outputs, run.step_summaries(stopped=status), duration, error)

    def slot(self, cap: Capability) -> contextlib.AbstractAsyncContextManager[None]:
        """What a call of ``cap`` holds while it runs: a slot of the caller's share, or nothing."""
        return self.slots.hold(TENANT.get()) if cap.holds_slot else contextlib.nullcontext()

    def invoke(self, cap: Capability, args: dict[str, Any]) -> Awaitable[Any]:
        """Call a capability: CPU-bound ones through ``offload``, the others on the loop
        (their own coroutine, awaited by the caller: no coroutine around it)."""
        if cap.sync_fn is not None:
            return self.offload.call(cap.sync_fn, args)
        return cap.fn(args)

    def _check_nested_inputs(self, skill: Skill, args: dict[str, Any]) -> None:
        key = (skill.id, skill.version)
        validator = self._input_validators.get(key)
        if validator is None:
            validator = jsonschema.Draft4Validator(skill.inputs_schema)
            self._input_validators[key] = validator
        err = jsonschema.exceptions.best_match(validator.iter_errors(args))
        if err is not None:
            where = ".".join(str(p) for p in err.absolute_path) or "inputs"
            raise StepFailure("input_invalid", f"skill {skill.id!r} inputs: {where}: {err.message}")


def _failure_of(exc: Exception) -> StepFailure | None:
    """What a capability call raised, as the step's failure (None: a ``StepFailure``
    already, raised as it is)."""
    if isinstance(exc, StepFailure):
        return None
    if isinstance(exc, TimedOut):
        return StepFailure(TIMEOUT, exc.message)
    if isinstance(exc, CapabilityError):
        return StepFailure(exc.kind, str(exc), exc.retry_after_s)
    return StepFailure("capability_error", f"{type(exc).__name__}: {exc}")  # a bug: the step's failure, not the run's crash


class _Run:
    """One run of one skill (the top level or a nested one)."""

    def __init__(
        self,
        engine: Engine,
        skill: Skill,
        inputs: dict[str, Any],
        emitter: Emitter,
        depth: int,
        fates: dict[tuple[str, int | None], Fate] | None = None,
        prefix: str = "",
        expires: dict[tuple[str, int | None], str] | None = None,
        delta_budget: RunDeltaBudget | None = None,
    ) -> None:
        self.engine = engine
        # The run's delta text left, shared with its nested runs (``deltas``).
        self.delta_budget = delta_budget if delta_budget is not None else RunDeltaBudget(engine.deltas.max_run_chars)
        self.skill = skill
        self.inputs = inputs
        self.emitter = emitter
        self.depth = depth
        # A resumed run: the fates its log recorded, by full step id ("a[2]/b") and index.
        self.fates = fates
        self.prefix = prefix  # a nested run's steps' ids in the log start with it
        self.expires = expires  # a resumed run: when the waits before the seam expire
        self.outputs: dict[str, Any] = {}  # step id -> output (absent: skipped or failed)
        self.summaries: dict[str, dict[str, Any]] = {}
        self._started: set[str] = set()
        self._items: dict[str, int] = {}  # foreach step id -> its item count (``data.items``)

    # ---------------------------------------------------------------- scheduling

    async def execute(self) -> None:
        """Run every step; raises ``StepFailure`` (``on_error: fail``) or ``CancelledError``."""
        steps = self.skill.steps
        waiting = {s.id: len(s.needs) for s in steps}
        dependants: dict[str, list[Step]] = {}
        for s in steps:
            for need in s.needs:
                dependants.setdefault(need, []).append(s)
        # A list, not a deque: this frame lives as long as the run, and an empty deque
        # is 760 bytes (10,000 sleeping runs: 7 MB); few steps are ever ready at once.
        ready = [s for s in steps if not s.needs]
        pool: Pool[Step] = Pool(self.skill.max_parallel)
        order = {s.id: n for n, s in enumerate(steps)}

        def release(step: Step) -> None:
            # Ready steps keep the order written (dependants are listed in it).
            for d in dependants.get(step.id, ()):
                waiting[d.id] -= 1
                if waiting[d.id] == 0:
                    ready.append(d)

        try:
            while ready or pool.running:
                if not pool.running and len(ready) == 1:
                    # The only step that can run now: no task needed.
                    step = ready.pop(0)
                    await self._step(step)
                    release(step)
                    continue
                while ready and pool.has_room():
                    step = ready.pop(0)
                    pool.start(step, self._step(step), f"step:{step.id}")
                for step in await pool.finished(lambda s: order[s.id]):
                    release(step)
        except StepFailure as failure:
            await pool.drain(reason_msg(CANCELLED, f"step {failure.step_id!r} failed"))
            self._skip_unstarted(f"not run: step {failure.step_id!r} failed")
            raise
        except asyncio.CancelledError as exc:
            await pool.drain(passed_on(exc))
            self._skip_unstarted(f"not run: {stop_reason(exc)['message']}")
            raise

    def _skip_unstarted(self, reason: str) -> None:
        for step in self.skill.steps:
            if step.id not in self.summaries and step.id not in self._started:
                fate = self._fate(step.id, None)
                if fate is not None:  # it ended before the run was resumed
                    summary: dict[str, Any] = {"id": step.id, "status": fate.status}
                    if fate.error is not None:
                        summary["error"] = fate.error
                    self.summaries[step.id] = summary
                    continue
                self.emitter.emit(*ev.step_skipped(step.id, reason))
                self.summaries[step.id] = {"id": step.id, "status": "skipped"}

    async def _step(self, step: Step) -> None:
        """Run one step (once, or per foreach item); record its output and summary.

        One coroutine, its body in the ``try``: a run whose step waits holds every
        frame above the wait (bench/stream.py (d): 10,000 idle streams)."""
        self._started.add(step.id)
        t0 = time.perf_counter()
        try:
            fate = self._fate(step.id, None)
            if fate is not None:
                self._restore(step, fate)
                return
            if step.when is not None:
                try:
                    go = await self.render(step.when)
                except ExpressionError as exc:
                    output, status, error = await self._instance(step, None, None, StepFailure("expression_error", str(exc)))
                    self._record(step, output, status, t0, error)
                    return
                if go is not True:
                    self.emitter.emit(*ev.step_skipped(
                        step.id, "condition is false", why="its condition is false", condition=step.when.source
                    ))
                    self.summaries[step.id] = {"id": step.id, "status": "skipped"}
                    return
            if step.foreach is None:
                if self.engine.slim and plain(step):
                    output, status, error = await StepLife(self, step, None, None, lazy=True).plain()
                else:
                    output, status, error = await self._instance(step, None, None)
                self._record(step, output, status, t0, error)
                return
            try:
                items = await self.render(step.foreach)
                if not isinstance(items, list):
                    raise ExpressionError(f"foreach must give a list, not {type(items).__name__}")
            except ExpressionError as exc:
                output, status, error = await self._instance(step, None, None, StepFailure("expression_error", str(exc)))
                self._record(step, output, status, t0, error)
                return
            self._check_fan_out(step, items, t0)
            if not items:
                self.emitter.emit(*ev.step_skipped(step.id, "foreach gave no items"))
                self.outputs[step.id] = []
                self.summaries[step.id] = {"id": step.id, "status": "skipped"}
                return
            results, status, error = await self._foreach(step, items)
            self._record(step, results, status, t0, error)
        except StepFailure as failure:
            self.summaries[step.id] = {"id": step.id, "status": "failed", "duration_ms": ms_since(t0), "error": failure.as_dict()}
            raise
        except asyncio.CancelledError as exc:
            self.summaries[step.id] = {"id": step.id, "status": "failed", "duration_ms": ms_since(t0), "error": stop_reason(exc)}
            raise

    def _fate(self, step_id: str, index: int | None) -> Fate | None:
        """The fate the log recorded for this instance before the run was resumed."""
        return self.fates.get((self.prefix + step_id, index)) if self.fates else None

    def _restore(self, step: Step, fate: Fate) -> None:
        """A step that ended before the seam: its recorded fate, nothing run, nothing emitted."""
        output, status, error = fate.outcome(step.id)
        summary: dict[str, Any] = {"id": step.id, "status": status}
        if status == "skipped":
            if fate.empty_foreach:
                self.outputs[step.id] = []
            self.summaries[step.id] = summary
            return
        summary["duration_ms"] = fate.duration_ms
        if error is not None:
            summary["error"] = error
        elif output is not None:
            self.outputs[step.id] = output
        self.summaries[step.id] = summary

    def _check_fan_out(self, step: Step, items: list[Any], t0: float) -> None:
        """Past the server's ``max_foreach_items`` the step fails the run (whatever its ``on_error``)."""
        cap = self.engine.max_foreach_items
        if cap is None or len(items) <= cap:
            return
        failure = StepFailure(
            LIMIT_EXCEEDED, f"foreach gave {len(items)} items; this server runs at most {cap} (SKILLRUN_MAX_FOREACH_ITEMS)"
        )
        self.emitter.emit(*ev.step_start(step.id, step.uses))
        self.emitter.emit(*ev.step_failed(step.id, failure.as_dict(), ms_since(t0)))
        failure.step_id = step.id
        raise failure

    def _record(self, step: Step, output: Any, status: str, t0: float, error: dict[str, str] | None) -> None:
        if output is not None or step.foreach is not None and status != "skipped":
            self.outputs[step.id] = output
        summary: dict[str, Any] = {"id": step.id, "status": status, "duration_ms": ms_since(t0)}
        if error is not None:
            summary["error"] = error
        self.summaries[step.id] = summary

    async def _foreach(self, step: Step, items: list[Any]) -> tuple[list[Any], str, dict[str, str] | None]:
        self._items[step.id] = len(items)
        results: list[Any] = [None] * len(items)
        statuses: list[str] = [""] * len(items)
        errors: list[dict[str, str] | None] = [None] * len(items)
        started = [False] * len(items)
        try:
            if step.max_parallel == 1:
                # Inline, the common, cheapest case: each item's instance awaited here,
                # with no coroutine (nor closure and cells) around it; a run whose item
                # waits holds this frame as long as it waits (bench/stream.py (d)). A
                # ``plain`` step's items take the slim path (``StepLife.plain``).
                slim = self.engine.slim and plain(step)
                count = len(items)
                quick = step.input.bound(self.inputs) if slim else None
                resumed = bool(self.fates)  # else no item has a fate yet: none to look up
                for index in range(count):
                    started[index] = True  # from here on, the instance gives the item its fate
                    fate = self._fate(step.id, index) if resumed else None
                    if fate is not None:  # ended before the run was resumed
                        out, statuses[index], errors[index] = fate.outcome(step.id)
                    elif slim:
                        # (items, lazy, quick) passed by position: keywords cost a class
                        # call ~2k instructions more, which each of 10,000 items would pay.
                        out, statuses[index], errors[index] = await StepLife(
                            self, step, index, {"item": items[index], "index": index}, count, True, quick
                        ).plain()
                    else:
                        out, statuses[index], errors[index] = await self._instance(
                            step, index, {"item": items[index], "index": index}
                        )
                    results[index] = out
            else:
                await self._pool(step, self._item(step, items, results, statuses, errors, started), len(items))
        except StepFailure:
            self._skip_items(step, started, f"not run: another item of step {step.id!r} failed")
            raise
        except asyncio.CancelledError as exc:
            self._skip_items(step, started, f"not run: {stop_reason(exc)['message']}")
            raise
        error = next((e for e in errors if e is not None), None)
        if error is not None:
            return results, "failed", error
        return results, "degraded" if "degraded" in statuses else "completed", None

    def _item(
        self, step: Step, items: list[Any], results: list[Any], statuses: list[str],
        errors: list[dict[str, str] | None], started: list[bool],
    ) -> Callable[[int], Coroutine[Any, Any, None]]:
        """One item of a ``foreach`` run in a pool (as the inline loop in ``_foreach`` runs it)."""

        async def one(index: int) -> None:
            started[index] = True  # from here on, _instance gives the item its fate
            fate = self._fate(step.id, index)
            if fate is not None:  # ended before the run was resumed
                out, statuses[index], errors[index] = fate.outcome(step.id)
            else:
                out, statuses[index], errors[index] = await self._instance(
                    step, index, {"item": items[index], "index": index}
                )
            results[index] = out

        return one

    def _skip_items(self, step: Step, started: list[bool], reason: str) -> None:
        """Items that never started (the step ended first) get their fate too: one
        ``step_skipped`` per run of consecutive ones (``index`` .. ``last_index``), so
        cancelling 10,000 items costs one event, not 10,000."""
        unstarted = (i for i, began in enumerate(started) if not began)
        for first, last in ev.index_ranges(unstarted):
            self.emitter.emit(*ev.step_skipped(step.id, reason, first, items=len(started), last_index=last))

    async def _pool(self, step: Step, one: Callable[[int], Coroutine[Any, Any, None]], count: int) -> None:
        """Run ``one(i)`` for every item, at most ``step.max_parallel`` at once, in index order."""
        pool: Pool[int] = Pool(step.max_parallel)
        nxt = 0
        try:
            while nxt < count or pool.running:
                while nxt < count and pool.has_room():
                    pool.start(nxt, one(nxt), f"step:{step.id}[{nxt}]")
                    nxt += 1
                await pool.finished(int)
        except StepFailure as failure:
            await pool.drain(reason_msg(CANCELLED, f"another item of step {step.id!r} failed"))
            raise failure from None
        except asyncio.CancelledError as exc:
            await pool.drain(passed_on(exc))
            raise

    # ---------------------------------------------------------------- one instance

    def _instance(
        self,
        step: Step,
        index: int | None,
        local: dict[str, Any] | None,
        failure: StepFailure | None = None,
    ) -> Coroutine[Any, Any, tuple[Any, str, dict[str, str] | None]]:
        """One execution of a step: ``step_start``, then exactly one terminal event (see
        ``step``). The instance's own coroutine, for the caller to await (no coroutine around it)."""
        return StepLife(self, step, index, local).live(failure)

    def wait_expiry(self, step_id: str, index: int | None) -> str | None:
        """When the wait of this instance expires, if it waited before the run was resumed."""
        return self.expires.get((self.prefix + step_id, index)) if self.expires else None

    def item_count(self, step_id: str) -> int | None:
        """How many items the ``foreach`` step has (its items' first events say so)."""
        return self._items.get(step_id)

    # ---------------------------------------------------------------- capability calls

    async def _call(self, step: Step, cap: Capability, args: dict[str, Any], *, fallback: bool = False) -> dict[str, Any]:
        """One capability call within the server-wide slots and the step's time limit;
        ``fallback``: the call of the step's ``on_error`` fallback, which is no attempt."""
        engine = self.engine
        problem = engine.input_check.problem(cap, args)
        if problem is not None:  # rendered from expressions, so unchecked at load
            raise StepFailure("input_invalid", f"{cap.name} {problem}")
        tracer = engine.tracer
        observed = tracer.fallback(step.id, cap.name) if fallback else tracer.attempt(step.id, cap.name)
        if observed is NOTHING and not cap.holds_slot and step.timeout_s is None:
            # A call that holds no slot (a waiting one: util.sleep, human input), with no
            # span and no time limit: the call itself, without ``_invoke``'s coroutine
            # around it (a waiting call holds every frame above it as long as it waits).
            try:
                output = await engine.invoke(cap, args)
            except Exception as exc:
                failure = _failure_of(exc)
                if failure is None:
                    raise
                raise failure from None
        elif observed is NOTHING and not cap.holds_slot:  # the same with a time limit
            output = await self._invoke(step, cap, args)
        elif observed is NOTHING and self.engine.slots.take_now(tenant := TENANT.get()):
            try:  # a call whose slots are free (taken without waiting), no span
                output = await self._invoke(step, cap, args)
            finally:
                self.engine.slots.give_back(tenant)
        else:
            async with self.engine.slot(cap), observed:
                output = await self._invoke(step, cap, args)
        if not isinstance(output, dict):
            raise StepFailure("capability_error", f"{cap.name} returned {type(output).__name__}, not an object")
        # ``SLICE_S`` of steps that never waited have passed: ``yield_if_due`` would yield.
        # Asked here first (every call asks), with no coroutine per call when it would not.
        now = time.perf_counter()
        if now - engine._slice_start >= SLICE_S:
            # The step's instance lasted a slice (``t0``: its start, read here only, once a
            # slice): its call waited (a timer, I/O, a worker process; a capability on the
            # loop does no long CPU work), so the loop had its turns meanwhile, and this
            # run's began as it returned. A turn here would cost each step that waited a
            # loop iteration more for nothing (each of 1,000 streams' ticks did,
            # bench/stream.py (b)): the slice starts over instead.
            if now - getattr(_STEP.get(), "t0", now) >= SLICE_S:
                engine._slice_start = now
            else:
                await engine.yield_if_due()
        return output

    async def _invoke(self, step: Step, cap: Capability, args: dict[str, Any]) -> Any:
        """The call itself, within the step's time limit; what it raises, as the step's failure."""
        try:
            if step.timeout_s is None:  # no limit: no timer, no message to format
                return await self.engine.invoke(cap, args)
            async with Deadline(step.timeout_s, f"step {step.id!r} took longer than {step.timeout_s:g} s"):
                return await self.engine.invoke(cap, args)
        except Exception as exc:
            failure = _failure_of(exc)
            if failure is None:
                raise
            raise failure from None

    async def _nested(self, step: Step, index: int | None, args: dict[str, Any]) -> dict[str, Any]:
        skill_id = step.skill_id
        assert skill_id is not None
        lookup = self.engine.skills
        child = lookup.get(skill_id) if lookup is not None else None
        if child is None:
            raise StepFailure("internal", f"skill {skill_id!r} is not loaded")
        if self.depth + 1 > self.engine.max_depth:
            raise StepFailure("internal", f"nested skills go deeper than {self.engine.max_depth}")
        self.engine._check_nested_inputs(child, args)
        forward = Forward(self.emitter, step.id, step.id, index)
        sub = _Run(self.engine, child, child.with_defaults(args), forward, self.depth + 1,
                   self.fates, f"{self.prefix}{forward.prefix}/", self.expires, self.delta_budget)
        try:
            limit = min([t for t in (step.timeout_s, child.timeout_s) if t is not None], default=None)
            async with self.engine.tracer.attempt(step.id, step.uses), Deadline(limit, f"skill {skill_id!r} took longer than {limit or 0:g} s"):
                await sub.execute()
        except TimedOut as exc:
            raise StepFailure(TIMEOUT, exc.message) from None
        except StepFailure as exc:
            raise StepFailure(exc.kind, f"skill {skill_id!r}: {exc.message}") from None
        return await sub.result_outputs()

    # ---------------------------------------------------------------- results

    async def result_outputs(self) -> dict[str, Any]:
        """The skill's outputs; an output whose steps did not run is left out, and so is
        one whose rendering takes longer than ``OUTPUTS_S``."""
        out: dict[str, Any] = {}
        for o in self.skill.outputs:
            try:
                value = o.value.quick(self.inputs, self.outputs, None)
                if value is NEEDS_CEL:  # only CEL can take long: the deadline's timer for it alone
                    async with asyncio.timeout(OUTPUTS_S):
                        value = await self.render(o.value)
            except (ExpressionError, TimeoutError):
                continue
            out[o.name] = value
        return out

    async def render(self, what: Template | Expression, local: dict[str, Any] | None = None) -> Any:
        """A template's value (or an expression's): on the loop when what it reads is
        small, else where a deadline can stop it (see ``workers``). What needs no CEL
        (``quick``: paths, constants, a conditional on a path) costs at most a copy of
        what it reads: on the loop, without measuring what it reads first."""
        value = what.quick(self.inputs, self.outputs, local)
        if value is not NEEDS_CEL:
            return value
        if not isinstance(what, Template) or what.expressions:
            scope = what.activation(self.inputs, self.outputs, local)
            if not self.engine.offload.inline(scope):
                return await self.engine.offload.call(render_elsewhere, {"template": what.raw, "scope": scope})
        return what.render(self.inputs, self.outputs, local)

    def step_summaries(self, stopped: str | None = None) -> list[dict[str, Any]]:
        """Each step's fate; with the run ``stopped`` (cancelled, interrupted), a step it
        stopped shares that status (not ``failed``: the step did nothing wrong)."""
        out = [self.summaries[s.id] for s in self.skill.steps if s.id in self.summaries]
        if stopped in (CANCELLED, INTERRUPTED):
            for summary in out:
                if summary["status"] == "failed" and summary.get("error", {}).get("kind") == stopped:
                    summary["status"] = stopped
        return out

