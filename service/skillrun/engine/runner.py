"""Runs a skill: every step's fate becomes an event; nothing fails silently, nothing runs forever.

The runner knows nothing of HTTP or of where events go: it calls ``Emitter.emit``
and returns a ``RunOutcome``.

Scheduling. Steps form a DAG through ``needs`` (a step without ``needs`` waits for
the one written before it). Ready steps start in the order written, at most
``skill.max_parallel`` at once; every capability call also takes one of the
engine's server-wide slots (``Engine(max_parallel=...)``), within its key's share
(``max_parallel_per_key``, see ``slots``). Only capability calls that work
(``Capability.holds_slot``) hold a slot, never a step that waits for others (a nested skill, a foreach), so the
limits cannot deadlock. A step that is the only thing able to run is awaited
inline rather than as a task: a long chain then costs no task per step.

Stopping. Every stop is a cancellation whose message says why
(``"<kind>\\n<message>"``): the caller's ``task.cancel(CANCELLED)``, the run's or a
step's time limit, or a sibling step that failed with ``on_error: fail``. Each
open step instance catches it, emits ``step_failed`` with that kind and re-raises;
each scheduler cancels its running steps with the same message, waits for them,
and emits ``step_skipped`` for the steps (and ``foreach`` items) that never started.
So every step and every item of every run gets exactly one fate, and no task
outlives the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import jsonschema

from .capability import _RUN_STATE, Capability, CapabilityError, CapabilityRegistry
from .expressions import Expression, ExpressionError, Template, render_elsewhere
from .inputcheck import InputCheck
from .model import Gate, Skill, Step
from .slots import CapabilitySlots
from .workers import TENANT, Inline, Offload

# What ends a run early, as the reason passed to ``Task.cancel(msg)``.
CANCELLED = "cancelled"
INTERRUPTED = "interrupted"
TIMEOUT = "timeout"
# A run that went past a server limit (events per run, foreach items): it fails.
LIMIT_EXCEEDED = "limit_exceeded"

_DEFAULT_MESSAGES = {
    CANCELLED: "the run was cancelled",
    INTERRUPTED: "the run was interrupted",
    TIMEOUT: "the time limit expired",
}


class Emitter(Protocol):
    def emit(
        self, type: str, message: str, step_id: str | None = None, data: dict[str, Any] | None = None
    ) -> None: ...


class SkillLookup(Protocol):
    def get(self, skill_id: str) -> Skill | None: ...


@dataclass(slots=True)
class RunOutcome:
    status: str
    outputs: dict[str, Any]
    steps: list[dict[str, Any]]
    duration_ms: float
    error: dict[str, str] | None = None


class StepFailure(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.step_id: str | None = None  # the step that failed (set when it is emitted)

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message}


class _TimedOut(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


def stop_reason(exc: BaseException, default: str = CANCELLED) -> dict[str, str]:
    """The ``{kind, message}`` a cancellation carries (see the module docstring)."""
    msg = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
    kind, _, message = msg.partition("\n")
    kind = kind or default
    return {"kind": kind, "message": message or _DEFAULT_MESSAGES.get(kind, f"the run was {kind}")}


def _stopped_status(reason: dict[str, str]) -> str:
    """A run's status from what stopped it: a limit fails it; cancels keep their kind."""
    if reason["kind"] == LIMIT_EXCEEDED:
        return "failed"
    return reason["kind"] if reason["kind"] in (CANCELLED, INTERRUPTED) else CANCELLED


def _reason_msg(kind: str, message: str) -> str:
    return f"{kind}\n{message}"


class _Deadline:
    """``asyncio.timeout``, but the cancellation it causes says why (its message).

    Nested runs and open steps read the message to report kind ``timeout``; the
    exit turns our own cancellation into ``_TimedOut``. Seconds None: no limit.
    """

    __slots__ = ("seconds", "message", "_task", "_handle", "_fired", "_cancelling")

    def __init__(self, seconds: float | None, message: str) -> None:
        self.seconds = seconds
        self.message = message
        self._handle: asyncio.TimerHandle | None = None
        self._fired = False

    async def __aenter__(self) -> "_Deadline":
        if self.seconds is not None:
            task = asyncio.current_task()
            assert task is not None
            self._task = task
            self._cancelling = task.cancelling()
            self._handle = asyncio.get_running_loop().call_later(self.seconds, self._fire)
        return self

    def _fire(self) -> None:
        self._fired = True
        self._task.cancel(_reason_msg(TIMEOUT, self.message))

    async def __aexit__(self, et: Any, exc: Any, tb: Any) -> bool:
        if self._handle is not None:
            self._handle.cancel()
        if self._fired and self._task.uncancel() <= self._cancelling and et is asyncio.CancelledError:
            raise _TimedOut(self.message)
        return False


class _Forward:
    """Forwards a nested skill's step events into the parent's stream.

    The nested step ``b`` of parent step ``a`` (item ``i`` of a foreach) appears as
    step ``a/b`` (``a[i]/b``) with ``parent_step_id`` (the parent's ``step_id`` as its
    own events carry it), ``parent_index`` and ``path`` (plain step ids from the
    root), so a client can draw the tree. The nested run's own ``skill_start`` and
    ``skill_completed`` are not forwarded: a stream has one of each.
    """

    __slots__ = ("parent", "parent_step_id", "parent_index", "plain_id", "prefix")

    def __init__(self, parent: Emitter, parent_step_id: str, plain_id: str, index: int | None) -> None:
        self.parent = parent
        self.parent_step_id = parent_step_id
        self.parent_index = index
        self.plain_id = plain_id
        self.prefix = parent_step_id if index is None else f"{parent_step_id}[{index}]"

    def emit(
        self, type: str, message: str, step_id: str | None = None, data: dict[str, Any] | None = None
    ) -> None:
        if step_id is None:
            return
        data = dict(data) if data else {}
        if "parent_step_id" in data:  # from deeper down: make it relative to the root
            data["parent_step_id"] = f"{self.prefix}/{data['parent_step_id']}"
            data["path"] = [self.plain_id, *data["path"]]
        else:
            data["parent_step_id"] = self.parent_step_id
            if self.parent_index is not None:
                data["parent_index"] = self.parent_index
            data["path"] = [self.plain_id, step_id]
        self.parent.emit(type, message, f"{self.prefix}/{step_id}", data)


async def _drain(tasks: set[asyncio.Task[Any]], msg: str) -> None:
    """Cancel ``tasks`` with ``msg`` and wait until every one has ended."""
    for t in tasks:
        t.cancel(msg)
    pending = {t for t in tasks if not t.done()}
    while pending:
        try:
            _, pending = await asyncio.wait(pending)
        except asyncio.CancelledError:
            continue  # we are stopping anyway; the children must end first
    for t in tasks:
        if not t.cancelled():
            t.exception()  # retrieved: failures were emitted by the step itself


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
        self._input_validators: dict[tuple[str, str], Any] = {}
        self.input_check = InputCheck()  # rendered capability inputs against their schemas
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
    ) -> RunOutcome:
        """Run ``skill``; emits ``skill_start`` .. ``skill_completed`` and returns the outcome.

        Cancelling the task running this (``task.cancel(CANCELLED | INTERRUPTED)``)
        ends the run with that status; the open steps get ``step_failed``. The time
        limit is the smaller of ``timeout_s`` and the skill's own ``timeout``.
        ``tenant`` (the run's owner) is whose turn CPU-bound work waits for.
        """
        started = time.perf_counter()
        run = _Run(self, skill, skill.with_defaults(inputs), emitter, 0)
        emitter.emit(
            "skill_start",
            f"Starting skill '{skill.id}'.",
            None,
            {
                "skill_id": skill.id,
                "version": skill.version,
                "execution_channel": channel,
                "steps": [s.id for s in skill.steps],
            },
        )
        limits = [t for t in (timeout_s, skill.timeout_s) if t is not None]
        limit = min(limits) if limits else None
        status, error = "completed", None
        state = _RUN_STATE.set({})
        tenant_token = TENANT.set(tenant)  # the steps' tasks inherit it
        try:
            async with _Deadline(limit, f"the run took longer than {limit:g} s" if limit else ""):
                await run.execute()
        except StepFailure as failure:
            status, error = "failed", failure.as_dict()
        except _TimedOut as exc:
            status, error = "failed", {"kind": TIMEOUT, "message": exc.message}
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None:
                while task.uncancel():  # this task owns the run; ending it cleanly is the point
                    pass
            error = stop_reason(exc)
            status = _stopped_status(error)
            if status == CANCELLED:
                error = {"kind": CANCELLED, "message": error["message"]}
        finally:
            _RUN_STATE.reset(state)
            TENANT.reset(tenant_token)
        outputs = await run.result_outputs()
        duration = _ms(started)
        emitter.emit(
            "skill_completed",
            f"Skill '{skill.id}' {status}.",
            None,
            {"status": status, "duration_ms": duration},
        )
        return RunOutcome(status, outputs, run.step_summaries(), duration, error)

    def slot(self, cap: Capability) -> contextlib.AbstractAsyncContextManager[None]:
        """What a call of ``cap`` holds while it runs: a slot of the caller's share, or nothing."""
        return self.slots.hold(TENANT.get()) if cap.holds_slot else contextlib.nullcontext()

    async def invoke(self, cap: Capability, args: dict[str, Any]) -> Any:
        """Call a capability: CPU-bound ones through ``offload``, the others on the loop."""
        if cap.sync_fn is not None:
            return await self.offload.call(cap.sync_fn, args)
        return await cap.fn(args)

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


class _Run:
    """One run of one skill (the top level or a nested one)."""

    def __init__(self, engine: Engine, skill: Skill, inputs: dict[str, Any], emitter: Emitter, depth: int) -> None:
        self.engine = engine
        self.skill = skill
        self.inputs = inputs
        self.emitter = emitter
        self.depth = depth
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
        ready = deque(s for s in steps if not s.needs)
        running: dict[asyncio.Task[None], Step] = {}
        limit = self.skill.max_parallel
        order = {s.id: n for n, s in enumerate(steps)}

        def release(step: Step) -> None:
            # Ready steps keep the order written (dependants are listed in it).
            for d in dependants.get(step.id, ()):
                waiting[d.id] -= 1
                if waiting[d.id] == 0:
                    ready.append(d)

        try:
            while ready or running:
                if not running and len(ready) == 1:
                    # The only step that can run now: no task needed.
                    step = ready.popleft()
                    await self._step(step)
                    release(step)
                    continue
                while ready and len(running) < limit:
                    step = ready.popleft()
                    running[asyncio.create_task(self._step(step), name=f"step:{step.id}")] = step
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=lambda t: order[running[t].id]):
                    step = running.pop(task)
                    exc = task.exception()
                    if exc is not None:
                        for other in done:
                            if other is not task and not other.cancelled():
                                other.exception()
                        raise exc
                    release(step)
        except StepFailure as failure:
            await _drain(set(running), _reason_msg(CANCELLED, f"step {failure.step_id!r} failed"))
            self._skip_unstarted(f"not run: step {failure.step_id!r} failed")
            raise
        except asyncio.CancelledError as exc:
            reason = stop_reason(exc)
            await _drain(set(running), _reason_msg(reason["kind"], reason["message"]))
            self._skip_unstarted(f"not run: {reason['message']}")
            raise

    def _skip_unstarted(self, reason: str) -> None:
        for step in self.skill.steps:
            if step.id not in self.summaries and step.id not in self._started:
                self.emitter.emit("step_skipped", f"Step '{step.id}' skipped: {reason}.", step.id, {"reason": reason})
                self.summaries[step.id] = {"id": step.id, "status": "skipped"}

    async def _step(self, step: Step) -> None:
        """Run one step (once, or per foreach item); record its output and summary."""
        self._started.add(step.id)
        t0 = time.perf_counter()
        try:
            await self._step_body(step, t0)
        except StepFailure as failure:
            self.summaries[step.id] = {"id": step.id, "status": "failed", "duration_ms": _ms(t0), "error": failure.as_dict()}
            raise
        except asyncio.CancelledError as exc:
            self.summaries[step.id] = {"id": step.id, "status": "failed", "duration_ms": _ms(t0), "error": stop_reason(exc)}
            raise

    async def _step_body(self, step: Step, t0: float) -> None:
        if step.when is not None:
            try:
                go = await self._render(step.when)
            except ExpressionError as exc:
                output, status, error = await self._instance(step, None, None, StepFailure("expression_error", str(exc)))
                self._record(step, output, status, t0, error)
                return
            if go is not True:
                self.emitter.emit(
                    "step_skipped",
                    f"Step '{step.id}' skipped: its condition is false.",
                    step.id,
                    {"reason": "condition is false", "condition": step.when.source},
                )
                self.summaries[step.id] = {"id": step.id, "status": "skipped"}
                return
        if step.foreach is None:
            output, status, error = await self._instance(step, None, None)
            self._record(step, output, status, t0, error)
            return
        try:
            items = await self._render(step.foreach)
            if not isinstance(items, list):
                raise ExpressionError(f"foreach must give a list, not {type(items).__name__}")
        except ExpressionError as exc:
            output, status, error = await self._instance(step, None, None, StepFailure("expression_error", str(exc)))
            self._record(step, output, status, t0, error)
            return
        self._check_fan_out(step, items, t0)
        if not items:
            self.emitter.emit(
                "step_skipped", f"Step '{step.id}' skipped: foreach gave no items.", step.id,
                {"reason": "foreach gave no items"},
            )
            self.outputs[step.id] = []
            self.summaries[step.id] = {"id": step.id, "status": "skipped"}
            return
        results, status, error = await self._foreach(step, items)
        self._record(step, results, status, t0, error)

    def _check_fan_out(self, step: Step, items: list[Any], t0: float) -> None:
        """Past the server's ``max_foreach_items`` the step fails the run (whatever its ``on_error``)."""
        cap = self.engine.max_foreach_items
        if cap is None or len(items) <= cap:
            return
        failure = StepFailure(
            LIMIT_EXCEEDED, f"foreach gave {len(items)} items; this server runs at most {cap} (SKILLRUN_MAX_FOREACH_ITEMS)"
        )
        self._emit("step_start", f"Starting step '{step.id}'.", step, None, {"uses": step.uses})
        self._emit(
            "step_failed", f"Step '{step.id}' failed: {failure.message}", step, None,
            {"error": failure.as_dict(), "duration_ms": _ms(t0)},
        )
        failure.step_id = step.id
        raise failure

    def _record(self, step: Step, output: Any, status: str, t0: float, error: dict[str, str] | None) -> None:
        if output is not None or step.foreach is not None and status != "skipped":
            self.outputs[step.id] = output
        summary: dict[str, Any] = {"id": step.id, "status": status, "duration_ms": _ms(t0)}
        if error is not None:
            summary["error"] = error
        self.summaries[step.id] = summary

    async def _foreach(self, step: Step, items: list[Any]) -> tuple[list[Any], str, dict[str, str] | None]:
        self._items[step.id] = len(items)
        results: list[Any] = [None] * len(items)
        statuses: list[str] = [""] * len(items)
        errors: list[dict[str, str] | None] = [None] * len(items)
        started = [False] * len(items)

        async def one(index: int) -> None:
            started[index] = True  # from here on, _instance gives the item its fate
            out, statuses[index], errors[index] = await self._instance(
                step, index, {"item": items[index], "index": index}
            )
            results[index] = out

        try:
            if step.max_parallel == 1:
                for index in range(len(items)):  # inline: the common, cheapest case
                    await one(index)
            else:
                await self._pool(step, one, len(items))
        except StepFailure:
            await self._skip_items(step, started, f"not run: another item of step {step.id!r} failed")
            raise
        except asyncio.CancelledError as exc:
            await self._skip_items(step, started, f"not run: {stop_reason(exc)['message']}")
            raise
        error = next((e for e in errors if e is not None), None)
        if error is not None:
            return results, "failed", error
        return results, "degraded" if "degraded" in statuses else "completed", None

    async def _skip_items(self, step: Step, started: list[bool], reason: str) -> None:
        """Items that never started (the step ended first) get ``step_skipped`` too.

        As many events as the items would have had at least, so the loop gets its
        turns; a cancellation meanwhile is kept and raised once every item has its fate.
        """
        stop: asyncio.CancelledError | None = None
        for index, began in enumerate(started):
            if not began:
                self._emit("step_skipped", f"Step '{step.id}' item {index} skipped: {reason}.", step, index, {"reason": reason})
                try:
                    await self.engine.yield_if_due()
                except asyncio.CancelledError as exc:
                    stop = exc
        if stop is not None:
            raise stop

    async def _pool(self, step: Step, one: Any, count: int) -> None:
        """Run ``one(i)`` for every item, at most ``step.max_parallel`` at once, in index order."""
        running: set[asyncio.Task[None]] = set()
        nxt = 0
        try:
            while nxt < count or running:
                while nxt < count and len(running) < step.max_parallel:
                    running.add(asyncio.create_task(one(nxt), name=f"step:{step.id}[{nxt}]"))
                    nxt += 1
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.exception() is not None:
                        for other in done:
                            if not other.cancelled():
                                other.exception()
                        raise task.exception()  # type: ignore[misc]
        except StepFailure as failure:
            await _drain(running, _reason_msg(CANCELLED, f"another item of step {step.id!r} failed"))
            raise failure from None
        except asyncio.CancelledError as exc:
            reason = stop_reason(exc)
            await _drain(running, _reason_msg(reason["kind"], reason["message"]))
            raise

    # ---------------------------------------------------------------- one instance

    def _emit(self, type: str, message: str, step: Step, index: int | None, data: dict[str, Any]) -> None:
        if index is not None:
            data["index"] = index
            if type in ("step_start", "step_skipped"):
                # Every item's first event: after a crash, the log says which items never started.
                data["items"] = self._items[step.id]
        self.emitter.emit(type, message, step.id, data)

    async def _instance(
        self,
        step: Step,
        index: int | None,
        local: dict[str, Any] | None,
        failure: StepFailure | None = None,
    ) -> tuple[Any, str, dict[str, str] | None]:
        """One execution of a step: ``step_start``, then exactly one terminal event.

        Returns (output, status, error). Raises ``StepFailure`` when the step failed
        and its ``on_error`` is ``fail``; re-raises ``CancelledError`` after
        emitting ``step_failed`` with the cancellation's reason.
        """
        t0 = time.perf_counter()
        started = False
        findings_degraded: list[dict[str, Any]] = []
        degrade_info: dict[str, Any] = {}
        try:
            args: dict[str, Any] = {}
            warnings: list[tuple[Gate, list[dict[str, Any]]]] = []
            if failure is None:
                try:
                    args = await self._render(step.input, local)
                except ExpressionError as exc:
                    failure = StepFailure("expression_error", str(exc))
            if failure is None:
                for gate in step.gates:
                    if gate.stage != "pre":
                        continue
                    result = await self._gate(gate, args)
                    if not result.findings:
                        continue
                    if gate.policy == "skip":
                        kinds = ", ".join(f["kind"] for f in result.findings)
                        self._emit(
                            "step_skipped", f"Step '{step.id}' skipped: gate {gate.uses} found {kinds}.", step, index,
                            {"reason": f"gate {gate.uses} found {kinds}", "gate": gate.uses, "findings": result.findings},
                        )
                        return None, "skipped", None
                    if gate.policy == "fail":
                        failure = _gate_failure(gate, result.findings)
                        break
                    if gate.policy == "warn":
                        warnings.append((gate, result.findings))
                    else:  # degrade: run on the redacted input
                        args = result.redacted
                        findings_degraded.extend(result.findings)
                        degrade_info = {"gate": gate.uses, "stage": "pre", "policy": "degrade"}
            self._emit("step_start", f"Starting step '{step.id}'.", step, index, {"uses": step.uses})
            started = True
            for gate, findings in warnings:
                self._warn(step, index, gate, "pre", findings)
            if failure is None:
                try:
                    output, post = await self._attempts(step, index, args, local)
                    if post is not None:
                        findings_degraded.extend(post[1])
                        degrade_info = post[0]
                except StepFailure as exc:
                    failure = exc
            if failure is not None:
                output, post, failure = await self._on_error(step, index, local, failure)
                if post is not None:
                    findings_degraded.extend(post[1])
                    degrade_info = post[0]
                if failure is not None:
                    data: dict[str, Any] = {"error": failure.as_dict(), "duration_ms": _ms(t0)}
                    if step.on_error == "continue":
                        data["on_error"] = "continue"
                    self._emit("step_failed", f"Step '{step.id}' failed: {failure.message}", step, index, data)
                    if step.on_error == "continue":
                        return None, "failed", failure.as_dict()
                    failure.step_id = step.id
                    raise failure
        except asyncio.CancelledError as exc:
            if not started:
                self._emit("step_start", f"Starting step '{step.id}'.", step, index, {"uses": step.uses})
            reason = stop_reason(exc)
            self._emit(
                "step_failed", f"Step '{step.id}' failed: {reason['message']}", step, index,
                {"error": reason, "duration_ms": _ms(t0)},
            )
            raise
        if findings_degraded:
            kinds = ", ".join(dict.fromkeys(f["kind"] for f in findings_degraded))
            dropped = degrade_info.get("policy") == "skip"
            self._emit(
                "step_degraded",
                f"Step '{step.id}' degraded: {kinds} {'found, output dropped' if dropped else 'redacted'}.",
                step, index,
                {
                    "produced_output": {} if dropped else output,
                    "findings": findings_degraded,
                    "duration_ms": _ms(t0),
                    **degrade_info,
                },
            )
            return (None if dropped else output), "degraded", None
        done: dict[str, Any] = {"produced_output": output, "duration_ms": _ms(t0)}
        if degrade_info.get("fallback"):
            done["fallback"] = degrade_info["fallback"]
        self._emit("step_completed", f"Step '{step.id}' completed.", step, index, done)
        return output, "completed", None

    async def _on_error(
        self, step: Step, index: int | None, local: dict[str, Any] | None, failure: StepFailure
    ) -> tuple[Any, Any, StepFailure | None]:
        """``on_error: fallback``: run the alternative; else hand the failure back."""
        fb = step.fallback
        if step.on_error != "fallback" or fb is None:
            return None, None, failure
        self._emit(
            "step_fallback", f"Step '{step.id}' failed ({failure.kind}); running fallback {fb.uses}.", step, index,
            {"error": failure.as_dict(), "uses": fb.uses},
        )
        cap = self.engine.capabilities.get(fb.uses)
        try:
            if cap is None:
                raise StepFailure("internal", f"capability {fb.uses!r} is not registered")
            try:
                args = await self._render(fb.input, {**(local or {}), "error": failure.as_dict()})
            except ExpressionError as exc:
                raise StepFailure("expression_error", str(exc)) from None
            output = await self._call(step, cap, args)
            output, post = await self._post_gates(step, index, output)
        except StepFailure as exc:
            return None, None, StepFailure(exc.kind, f"fallback {fb.uses} failed too: {exc.message}")
        info = post[0] if post else {}
        info["fallback"] = fb.uses
        return output, (info, post[1] if post else []), None

    async def _attempts(
        self, step: Step, index: int | None, args: dict[str, Any], local: dict[str, Any] | None
    ) -> tuple[Any, tuple[dict[str, Any], list[dict[str, Any]]] | None]:
        """Call the step's capability (or nested skill), retrying per ``step.retry``."""
        retry = step.retry
        attempt = 1
        while True:
            try:
                if step.skill_id is not None:
                    output = await self._nested(step, index, args)
                else:
                    cap = self.engine.capabilities.get(step.uses)
                    if cap is None:
                        raise StepFailure("internal", f"capability {step.uses!r} is not registered")
                    output = await self._call(step, cap, args)
                return await self._post_gates(step, index, output)
            except StepFailure as failure:
                if attempt >= retry.max_attempts or not retry.retries(failure.kind):
                    if attempt > 1:
                        failure.message = f"{failure.message} (after {attempt} attempts)"
                    raise
                delay = retry.delay_ms(attempt, self.engine.rng.random())
                self._emit(
                    "step_retrying",
                    f"Step '{step.id}' attempt {attempt} failed ({failure.kind}); retrying in {delay:g} ms.",
                    step, index,
                    {"attempt": attempt, "error": failure.as_dict(), "delay_ms": delay},
                )
                await asyncio.sleep(delay / 1000)
                attempt += 1

    async def _call(self, step: Step, cap: Capability, args: dict[str, Any]) -> dict[str, Any]:
        """One capability call within the server-wide slots and the step's time limit."""
        problem = self.engine.input_check.problem(cap, args)
        if problem is not None:  # rendered from expressions, so unchecked at load
            raise StepFailure("input_invalid", f"{cap.name} {problem}")
        async with self.engine.slot(cap):
            try:
                async with _Deadline(step.timeout_s, f"step {step.id!r} took longer than {step.timeout_s or 0:g} s"):
                    output = await self.engine.invoke(cap, args)
            except _TimedOut as exc:
                raise StepFailure(TIMEOUT, exc.message) from None
            except CapabilityError as exc:
                raise StepFailure(exc.kind, str(exc)) from None
            except (StepFailure, asyncio.CancelledError):
                raise
            except Exception as exc:  # a capability bug is the step's failure, not the run's crash
                raise StepFailure("capability_error", f"{type(exc).__name__}: {exc}") from None
        if not isinstance(output, dict):
            raise StepFailure("capability_error", f"{cap.name} returned {type(output).__name__}, not an object")
        await self.engine.yield_if_due()
        return output

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
        sub = _Run(self.engine, child, child.with_defaults(args), _Forward(self.emitter, step.id, step.id, index), self.depth + 1)
        try:
            limit = min([t for t in (step.timeout_s, child.timeout_s) if t is not None], default=None)
            async with _Deadline(limit, f"skill {skill_id!r} took longer than {limit or 0:g} s"):
                await sub.execute()
        except _TimedOut as exc:
            raise StepFailure(TIMEOUT, exc.message) from None
        except StepFailure as exc:
            raise StepFailure(exc.kind, f"skill {skill_id!r}: {exc.message}") from None
        return await sub.result_outputs()

    # ---------------------------------------------------------------- gates

    async def _gate(self, gate: Gate, value: dict[str, Any]) -> Any:
        cap = self.engine.capabilities.get(gate.uses)
        if cap is None:
            raise StepFailure("internal", f"gate {gate.uses!r} is not registered")
        try:
            return await self.engine.invoke(cap, value)
        except CapabilityError as exc:
            raise StepFailure(exc.kind, f"gate {gate.uses}: {exc}") from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise StepFailure("capability_error", f"gate {gate.uses}: {type(exc).__name__}: {exc}") from None

    def _warn(self, step: Step, index: int | None, gate: Gate, stage: str, findings: list[dict[str, Any]]) -> None:
        kinds = ", ".join(f["kind"] for f in findings)
        self._emit(
            "gate_warning", f"Step '{step.id}': gate {gate.uses} found {kinds}.", step, index,
            {"gate": gate.uses, "stage": stage, "findings": findings},
        )

    async def _post_gates(
        self, step: Step, index: int | None, output: dict[str, Any]
    ) -> tuple[Any, tuple[dict[str, Any], list[dict[str, Any]]] | None]:
        degraded: tuple[dict[str, Any], list[dict[str, Any]]] | None = None
        for gate in step.gates:
            if gate.stage != "post":
                continue
            result = await self._gate(gate, output)
            if not result.findings:
                continue
            if gate.policy == "fail":
                raise _gate_failure(gate, result.findings)
            if gate.policy == "warn":
                self._warn(step, index, gate, "post", result.findings)
            elif gate.policy == "skip":
                degraded = ({"gate": gate.uses, "stage": "post", "policy": "skip"}, result.findings)
            else:
                output = result.redacted
                found = degraded[1] if degraded else []
                degraded = ({"gate": gate.uses, "stage": "post", "policy": "degrade"}, [*found, *result.findings])
        return output, degraded

    # ---------------------------------------------------------------- results

    async def result_outputs(self) -> dict[str, Any]:
        """The skill's outputs; an output whose steps did not run is left out, and so is
        one whose rendering takes longer than ``OUTPUTS_S``."""
        out: dict[str, Any] = {}
        for o in self.skill.outputs:
            try:
                async with asyncio.timeout(OUTPUTS_S):
                    out[o.name] = await self._render(o.value)
            except (ExpressionError, TimeoutError):
                continue
        return out

    async def _render(self, what: Template | Expression, local: dict[str, Any] | None = None) -> Any:
        """A template's value (or an expression's): on the loop when what it reads is
        small, else where a deadline can stop it (see ``workers``)."""
        if not isinstance(what, Template) or what.expressions:
            scope = what.activation(self.inputs, self.outputs, local)
            if not self.engine.offload.inline(scope):
                return await self.engine.offload.call(render_elsewhere, {"template": what.raw, "scope": scope})
        return what.render(self.inputs, self.outputs, local)

    def step_summaries(self) -> list[dict[str, Any]]:
        return [self.summaries[s.id] for s in self.skill.steps if s.id in self.summaries]


def _gate_failure(gate: Gate, findings: list[dict[str, Any]]) -> StepFailure:
    kinds = ", ".join(f["kind"] for f in findings)
    return StepFailure("gate_failed", f"gate {gate.uses} found {kinds}")
