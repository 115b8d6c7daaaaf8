"""Runs a skill: every step's fate becomes an event; nothing fails silently.

The runner knows nothing of HTTP or of where events go: it calls
``Emitter.emit`` and returns a ``RunOutcome``. Steps run in the order written
(the DAG scheduler will build on the same ``_StepRun``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from .capability import CapabilityError, CapabilityRegistry
from .expressions import ExpressionError
from .model import Skill, Step

# What ends a run early, as the reason passed to ``Task.cancel(msg)``.
CANCELLED = "cancelled"
INTERRUPTED = "interrupted"


class Emitter(Protocol):
    def emit(
        self, type: str, message: str, step_id: str | None = None, data: dict[str, Any] | None = None
    ) -> None: ...


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

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message}


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


@dataclass(slots=True)
class _RunState:
    inputs: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)  # step id -> output
    summaries: list[dict[str, Any]] = field(default_factory=list)
    # The step instance running now: (step, index or None, started at).
    open: tuple[Step, int | None, float] | None = None


class Engine:
    def __init__(self, capabilities: CapabilityRegistry) -> None:
        self.capabilities = capabilities

    async def run(
        self,
        skill: Skill,
        inputs: dict[str, Any],
        emitter: Emitter,
        *,
        channel: str,
        timeout_s: float | None = None,
    ) -> RunOutcome:
        """Run ``skill``; emits ``skill_start`` .. ``skill_completed`` and returns the outcome.

        Cancelling the task running this (``task.cancel(CANCELLED | INTERRUPTED)``)
        ends the run with that status; the open step gets ``step_failed``.
        """
        started = time.perf_counter()
        state = _RunState(inputs=skill.with_defaults(inputs))
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
        status, error = "completed", None
        try:
            async with asyncio.timeout(timeout_s):
                for step in skill.steps:
                    await self._run_step(step, state, emitter)
        except StepFailure as failure:
            status, error = "failed", failure.as_dict()
        except TimeoutError:
            error = {"kind": "timeout", "message": f"the run took longer than {timeout_s:g} s"}
            self._fail_open(state, emitter, error)
            status = "failed"
        except asyncio.CancelledError as exc:
            reason = exc.args[0] if exc.args and exc.args[0] in (CANCELLED, INTERRUPTED) else CANCELLED
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # this task owns the run; ending it cleanly is the point
            error = {"kind": reason, "message": f"the run was {reason}"}
            self._fail_open(state, emitter, error)
            status = reason
        outputs = self._outputs(skill, state)
        duration = _ms(started)
        emitter.emit(
            "skill_completed",
            f"Skill '{skill.id}' {status}.",
            None,
            {"status": status, "duration_ms": duration},
        )
        return RunOutcome(status, outputs, state.summaries, duration, error)

    def _fail_open(self, state: _RunState, emitter: Emitter, error: dict[str, str]) -> None:
        if state.open is None:
            return
        step, index, t0 = state.open
        state.open = None
        data: dict[str, Any] = {"error": error, "duration_ms": _ms(t0)}
        if index is not None:
            data["index"] = index
        emitter.emit("step_failed", f"Step '{step.id}' failed: {error['message']}", step.id, data)
        state.summaries.append({"id": step.id, "status": "failed", "duration_ms": data["duration_ms"], "error": error})

    async def _run_step(self, step: Step, state: _RunState, emitter: Emitter) -> None:
        t0 = time.perf_counter()
        if step.when is not None:
            try:
                go = step.when.evaluate(state.inputs, state.outputs)
            except ExpressionError as exc:
                self._fail_before_start(step, t0, state, emitter, StepFailure("expression_error", str(exc)))
            if go is not True:
                emitter.emit(
                    "step_skipped",
                    f"Step '{step.id}' skipped: its condition is false.",
                    step.id,
                    {"reason": "condition is false", "condition": step.when.source},
                )
                state.summaries.append({"id": step.id, "status": "skipped"})
                return
        if step.foreach is None:
            output, status = await self._run_instance(step, None, None, state, emitter)
            state.outputs[step.id] = output
            state.summaries.append({"id": step.id, "status": status, "duration_ms": _ms(t0)})
            return
        try:
            items = step.foreach.render(state.inputs, state.outputs)
        except ExpressionError as exc:
            self._fail_before_start(step, t0, state, emitter, StepFailure("expression_error", str(exc)))
        if not isinstance(items, list):
            self._fail_before_start(
                step, t0, state, emitter, StepFailure("expression_error", "foreach must give a list")
            )
        results = []
        degraded = False
        for index, item in enumerate(items):
            output, status = await self._run_instance(step, index, {"item": item, "index": index}, state, emitter)
            degraded |= status == "degraded"
            results.append(output)
        state.outputs[step.id] = results
        state.summaries.append(
            {"id": step.id, "status": "degraded" if degraded else "completed", "duration_ms": _ms(t0)}
        )

    async def _run_instance(
        self,
        step: Step,
        index: int | None,
        local: dict[str, Any] | None,
        state: _RunState,
        emitter: Emitter,
    ) -> tuple[dict[str, Any], str]:
        """One execution of a step's capability: start, then exactly one terminal event."""
        t0 = time.perf_counter()
        cap = self.capabilities.get(step.uses)
        start: dict[str, Any] = {"uses": step.uses}
        if index is not None:
            start["index"] = index
        emitter.emit("step_start", f"Starting step '{step.id}'.", step.id, start)
        state.open = (step, index, t0)
        try:
            if cap is None:
                raise StepFailure("internal", f"capability {step.uses!r} is not registered")
            try:
                args = step.input.render(state.inputs, state.outputs, local)
            except ExpressionError as exc:
                raise StepFailure("expression_error", str(exc)) from None
            try:
                output = await cap.fn(args)
            except CapabilityError as exc:
                raise StepFailure(exc.kind, str(exc)) from None
            except (StepFailure, asyncio.CancelledError):
                raise
            except Exception as exc:  # a capability bug is the step's failure, not the run's crash
                raise StepFailure("capability_error", f"{type(exc).__name__}: {exc}") from None
            if not isinstance(output, dict):
                raise StepFailure("capability_error", f"{step.uses} returned {type(output).__name__}, not an object")
            if step.gate is not None:
                gate = self.capabilities.get(step.gate.uses)
                assert gate is not None  # the loader checked it
                result = await gate.fn(output)
                if result.findings:
                    state.open = None
                    data = {
                        "produced_output": result.redacted,
                        "gate": step.gate.uses,
                        "findings": result.findings,
                        "duration_ms": _ms(t0),
                    }
                    if index is not None:
                        data["index"] = index
                    kinds = ", ".join(f["kind"] for f in result.findings)
                    emitter.emit("step_degraded", f"Step '{step.id}' degraded: {kinds} redacted.", step.id, data)
                    return result.redacted, "degraded"
        except StepFailure as failure:
            self._fail(step, index, t0, state, emitter, failure)
        state.open = None
        done: dict[str, Any] = {"produced_output": output, "duration_ms": _ms(t0)}
        if index is not None:
            done["index"] = index
        emitter.emit("step_completed", f"Step '{step.id}' completed.", step.id, done)
        return output, "completed"

    def _fail(
        self,
        step: Step,
        index: int | None,
        t0: float,
        state: _RunState,
        emitter: Emitter,
        failure: StepFailure,
    ) -> None:
        """Emit the step's failure and end the run (``on_error: fail``, the default)."""
        state.open = (step, index, t0)
        self._fail_open(state, emitter, failure.as_dict())
        raise failure

    def _fail_before_start(
        self, step: Step, t0: float, state: _RunState, emitter: Emitter, failure: StepFailure
    ) -> None:
        """A step that cannot even start still gets ``step_start`` then ``step_failed``."""
        emitter.emit("step_start", f"Starting step '{step.id}'.", step.id, {"uses": step.uses})
        self._fail(step, None, t0, state, emitter, failure)

    def _outputs(self, skill: Skill, state: _RunState) -> dict[str, Any]:
        """The skill's outputs; an output whose steps did not run is left out."""
        out: dict[str, Any] = {}
        for o in skill.outputs:
            try:
                out[o.name] = o.value.render(state.inputs, state.outputs)
            except ExpressionError:
                continue
        return out
