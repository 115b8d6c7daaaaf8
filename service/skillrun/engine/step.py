"""One step's life (one execution of a step, or of one ``foreach`` item), as phases:

    pre-gates -> step_start -> attempts (call, post-gates; retried) -> fallback -> outcome

Both gate stages run through the same ``gates``; what a finding means differs
only where the stage does: a pre-gate ``skip`` skips the step before it starts, a
post-gate ``skip`` drops the output (the step is degraded). A ``fail`` finding is
the step's failure (before the attempts: not retried; after: retried), a ``warn``
becomes ``gate_warning``, a ``degrade`` goes on with the redacted value.

An instance emits ``step_start`` and then exactly one terminal event, also when
it is cancelled (``step_failed`` with the cancellation's reason).
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import datetime, timedelta, timezone
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from .. import events as ev
from ..events import Emitter, Event
from .capability import _RUN_KEY, _STEP, Capability, CapabilityError, CapabilityRegistry
from .deltas import DeltaPolicy, RunDeltaBudget, StepDeltas
from .expressions import NEEDS_CEL, ExpressionError, Template
from .model import Gate, Step
from .stopping import StepFailure, stop_reason
from .waiting import Answers



class EngineCalls(Protocol):
    """What a step needs of the engine (``runner.Engine``)."""

    capabilities: CapabilityRegistry
    rng: random.Random
    answers: Answers  # where waiting steps wait for their answers
    deltas: DeltaPolicy  # how partial output is coalesced and bounded

    def invoke(self, cap: Capability, args: dict[str, Any]) -> Awaitable[Any]: ...


class StepHost(Protocol):
    """What a step needs of the run it belongs to (``runner._Run``): its values, its
    stream, and the two ways to do the work (a capability call, a nested skill)."""

    @property
    def engine(self) -> EngineCalls: ...

    inputs: dict[str, Any]
    outputs: dict[str, Any]
    emitter: Emitter
    prefix: str  # a nested run's: its steps' ids in the log start with it
    delta_budget: RunDeltaBudget  # the run's delta text left (nested runs share it)

    async def _call(self, step: Step, cap: Capability, args: dict[str, Any], *, fallback: bool = False) -> dict[str, Any]: ...

    async def _nested(self, step: Step, index: int | None, args: dict[str, Any]) -> dict[str, Any]: ...

    async def render(self, what: Template, local: dict[str, Any] | None = None) -> Any: ...

    def item_count(self, step_id: str) -> int | None: ...

    def wait_expiry(self, step_id: str, index: int | None) -> str | None: ...

Findings = list[dict[str, Any]]

# The longest ``Retry-After`` a retry honours (a longer one waits this long): the
# clients' cap too, so an upstream cannot park a step for hours.
RETRY_AFTER_MAX_S = 60.0


def utc_after(seconds: float) -> str:
    """RFC 3339 UTC (milliseconds, ``Z``) ``seconds`` from now."""
    then = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return then.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seconds_until(iso: str) -> float:
    """Seconds from now to an RFC 3339 time (0 when it has passed)."""
    then = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return max(0.0, (then - datetime.now(timezone.utc)).total_seconds())


def ms_since(start: float) -> float:
    """Milliseconds since ``start`` (``perf_counter``), to the microsecond. Rounded in
    integers: ``round(x, 3)`` costs ~3x as much, and a step pays it per instance."""
    return int((time.perf_counter() - start) * 1_000_000 + 0.5) / 1000


def gate_failure(gate: Gate, findings: Findings) -> StepFailure:
    kinds = ", ".join(f["kind"] for f in findings)
    return StepFailure("gate_failed", f"gate {gate.uses} found {kinds}")


@dataclass(slots=True)
class Verdict:
    """What one stage's gates made of a value."""

    value: dict[str, Any]
    warnings: list[tuple[Gate, Findings]] = field(default_factory=list)
    findings: Findings = field(default_factory=list)  # degrading findings
    info: dict[str, Any] = field(default_factory=dict)  # the last degrading gate: gate, stage, policy
    skip: tuple[Gate, Findings] | None = None  # a pre-gate ``skip`` found something
    failure: StepFailure | None = None  # a ``fail`` gate found something


# Shared by the verdicts of steps without gates; never changed (only ``gates`` fills a verdict).
_NONE: list[Any] = []
_NO_INFO: dict[str, Any] = {}


def plain(step: Step) -> bool:
    """Whether an instance of ``step`` has only the phases every step has: no gates, one
    attempt (no ``retry``), no time limit, no ``fallback``, no nested skill. Its
    instances (the step run once, or each of its items) then take ``StepLife.plain``,
    the slim path: the same events as ``live``, without the phases it has none of (a
    10,000-item ``foreach`` pays for them 10,000 times, a short run once per step). A
    ``when`` does not count: the scheduler decides it before either path runs."""
    return (not step.gates and step.retry.max_attempts == 1 and step.timeout_s is None
            and step.on_error != "fallback" and step.skill_id is None)


class StepLife:
    """One instance of ``step`` in ``run``; ``live`` runs its phases (``plain``: those
    of a plain step)."""

    __slots__ = ("run", "step", "index", "local", "items", "t0", "started", "findings", "info", "waited",
                 "asked", "attempts", "deltas", "ended", "quick")

    def __init__(self, run: StepHost, step: Step, index: int | None, local: dict[str, Any] | None,
                 items: int | None = None, lazy: bool = False, quick: Callable[..., Any] | None = None) -> None:
        self.run = run
        # ``plain``: the step's input as ``Template.quick`` renders it, bound to the run's
        # inputs (a foreach's items share it: ``Template.bound``); None: ``quick`` itself.
        self.quick = quick
        self.step = step
        self.index = index
        self.local = local
        # A foreach item's first event says how many items the step has (for recovery).
        self.items = items if items is not None or index is None else run.item_count(step.id)
        self.t0 = time.perf_counter()
        self.started = False
        self.ended = False  # its terminal event is written, or it has stopped: no delta after
        # Degrading findings so far, and the info of the last gate (or fallback) that degraded.
        self.findings: Findings = []
        self.info: dict[str, Any] = {}
        self.waited: float | None = None  # when its open wait for input began
        self.asked = False  # it has waited for input in this process
        self.attempts = 0  # attempts of the capability (or nested skill) begun so far
        # Its capability's partial output (``emit_delta``), written between its
        # step_start and its terminal event. ``lazy`` (``plain``): made by the first
        # delta (``__call__``); most items never report one.
        self.deltas: StepDeltas | None = None if lazy else self._new_deltas()

    def _new_deltas(self) -> StepDeltas:
        step, run = self.step, self.run
        return StepDeltas(run.engine.deltas, self._write, step.id, self.index,
                          texts=not step.gates or not any(g.stage == "post" for g in step.gates),
                          budget=run.delta_budget)

    def place(self) -> tuple[str, int | None]:
        """(full step id, index): what ``capability.idempotency_key`` names."""
        return self.run.prefix + self.step.id, self.index

    def __call__(self, text: str | None, progress: float | None) -> None:
        """The instance's delta sink (``capability.DeltaSink``): its ``StepDeltas``; a
        ``plain`` instance makes them at the first delta, which they would have dropped
        before ``step_start`` and after the instance ended as this drops it."""
        deltas = self.deltas
        if deltas is None:
            if not self.started or self.ended:
                return
            deltas = self.deltas = self._new_deltas()
            deltas.start()
            deltas.begin(self.attempts or 1)
        deltas(text, progress)

    def _write(self, event: Event) -> None:
        self.run.emitter.emit(*event)

    def emit(self, event: Event) -> None:
        # Deltas pending go out before any other event of the step; none after its end.
        deltas = self.deltas
        if event.type in ev.STEP_TERMINAL:
            self.ended = True
            if deltas is not None:
                deltas.close()
        elif deltas is not None:
            deltas.flush()
        if self.waited is not None and event.type in ev.ENDS_WAIT:
            # The event that ends a wait says how long it was (the run is ``running`` again).
            event = event._replace(data={**(event.data or {}), "waited_ms": ms_since(self.waited)})
            self.waited = None
        self.run.emitter.emit(*event)

    async def wait_for_input(self, prompt: str, schema: dict[str, Any], timeout_s: float | None) -> Any:
        """``step_waiting``, then the answer (see ``waiting``); ``CapabilityError``
        (kind ``timeout``) when none came within ``timeout_s``."""
        run_id = _RUN_KEY.get()
        key = (run_id, self.run.prefix + self.step.id, self.index)
        answers = self.run.engine.answers
        waiter = answers.open(key, schema)
        try:
            expires = None if timeout_s is None else utc_after(timeout_s)
            earlier = self.run.wait_expiry(self.step.id, self.index) if not self.asked else None
            if earlier is not None and timeout_s is not None:  # waited before a restart: same deadline
                expires, timeout_s = earlier, seconds_until(earlier)
            self.asked = True  # a retry after a timeout waits afresh
            self.waited = time.perf_counter()
            self.emit(ev.step_waiting(self.step.id, prompt, schema, f"/v1/runs/{run_id}/input", expires, self.index))
            try:
                async with asyncio.timeout(timeout_s):
                    return await waiter.answer
            except TimeoutError:
                # The answer's future decides, once: an answer set in the same loop turn as
                # the timeout (its POST was acknowledged) wins; a timeout that came first
                # cancelled the future, so a later answer finds it closed (409).
                if waiter.answer.done() and not waiter.answer.cancelled():
                    return waiter.answer.result()
                raise CapabilityError(f"no answer came before {expires}", kind="timeout") from None
        finally:
            answers.close(key, waiter)

    async def live(self, failure: StepFailure | None = None) -> tuple[Any, str, dict[str, str] | None]:
        """Returns (output, status, error). Raises ``StepFailure`` when the step failed
        and its ``on_error`` is ``fail``; re-raises ``CancelledError`` after emitting
        ``step_failed`` with the cancellation's reason."""
        # Its capability calls know which instance they belong to (``idempotency_key``).
        deltas = self.deltas
        assert deltas is not None  # made at once for ``live`` (only ``plain`` makes it lazily)
        token = _STEP.set(self)
        try:
            return await self._phases(failure)
        except asyncio.CancelledError as exc:
            self._start()
            self.emit(ev.step_failed(self.step.id, stop_reason(exc), ms_since(self.t0), self.index))
            raise
        finally:
            self.ended = True
            deltas.drop()  # a delta still in flight (a timer, a worker) is never written
            _STEP.reset(token)

    async def plain(self) -> tuple[Any, str, dict[str, str] | None]:
        """``live`` for an instance of a ``plain`` step: render, ``step_start``, one call,
        the terminal event. What ``_phases`` does for such a step, in the same order,
        without the branches it never takes (tests/test_engine_slim.py holds the two
        paths' events equal, failures and stops included)."""
        step, run = self.step, self.run
        token = _STEP.set(self)
        try:
            failure: StepFailure | None = None
            output: Any = None
            try:
                quick = self.quick or step.input.quick
                args = quick(run.inputs, run.outputs, self.local)
                if args is NEEDS_CEL:
                    args = await run.render(step.input, self.local)
            except ExpressionError as exc:
                failure = StepFailure("expression_error", str(exc))
            except StepFailure as exc:
                failure = exc
            self._start()
            if failure is None:
                self.attempts = 1
                cap = run.engine.capabilities.get(step.uses)
                try:
                    if cap is None:
                        raise StepFailure("internal", f"capability {step.uses!r} is not registered")
                    output = await run._call(step, cap, args)
                except StepFailure as exc:
                    failure = exc
                if failure is None and self.deltas is None and self.waited is None:
                    # ``_outcome`` of most: completed, with no gate nor fallback to report,
                    # and (no deltas, no wait) nothing for ``emit`` to do first.
                    self.ended = True
                    run.emitter.emit(*ev.step_completed(step.id, output, ms_since(self.t0), self.index))
                    return output, "completed", None
            return self._outcome(output, failure)
        except asyncio.CancelledError as exc:
            self._start()
            self.emit(ev.step_failed(self.step.id, stop_reason(exc), ms_since(self.t0), self.index))
            raise
        finally:
            self.ended = True
            if self.deltas is not None:
                self.deltas.drop()
            _STEP.reset(token)

    async def _phases(self, failure: StepFailure | None) -> tuple[Any, str, dict[str, str] | None]:
        step = self.step
        args: dict[str, Any] = {}
        warnings: list[tuple[Gate, Findings]] = []
        if failure is None:
            try:
                rendered = await self.run.render(step.input, self.local)
                # Most steps have no gates: no verdict to build (this is every step's path).
                verdict = await self.gates("pre", rendered) if step.gates else None
            except ExpressionError as exc:
                failure = StepFailure("expression_error", str(exc))
            except StepFailure as exc:
                failure = exc
            else:
                if verdict is None:
                    args = rendered
                elif verdict.skip is not None:
                    gate, found = verdict.skip
                    kinds = ", ".join(f["kind"] for f in found)
                    self.emit(ev.step_skipped(step.id, f"gate {gate.uses} found {kinds}", self.index,
                                              item=False, gate=gate.uses, findings=found, items=self.items))
                    return None, "skipped", None
                else:
                    args, warnings, failure = verdict.value, verdict.warnings, verdict.failure
                    self._degraded_by(verdict)
        self._start()
        self._warn("pre", warnings)
        output: Any = None
        if failure is None:
            try:
                output = await self._attempts(args)
            except StepFailure as exc:
                failure = exc
        if failure is not None:
            output, failure = await self._fallback(failure)
        return self._outcome(output, failure)

    def _start(self) -> None:
        if not self.started:
            self.started = True
            # Straight to the emitter: before its start an instance has no deltas pending
            # and has not waited, so ``emit`` would have nothing to do first.
            self.run.emitter.emit(*ev.step_start(self.step.id, self.step.uses, self.index, items=self.items))
            if self.deltas is not None:
                self.deltas.start()

    def _warn(self, stage: str, warnings: list[tuple[Gate, Findings]]) -> None:
        for gate, found in warnings:
            self.emit(ev.gate_warning(self.step.id, gate.uses, stage, found, self.index))

    def _degraded_by(self, verdict: Verdict) -> None:
        if verdict.info:
            self.findings.extend(verdict.findings)
            self.info = verdict.info

    # ---------------------------------------------------------------- gates (both stages)

    async def gates(self, stage: str, value: dict[str, Any]) -> Verdict:
        """Run the step's gates of ``stage`` over ``value``, in the order written."""
        if not self.step.gates:  # (the hot path does not call this for steps without gates)
            return Verdict(value, _NONE, _NONE, _NO_INFO)
        verdict = Verdict(value)
        for gate in self.step.gates:
            if gate.stage != stage:
                continue
            result = await self._gate(gate, verdict.value)
            if not result.findings:
                continue
            if gate.policy == "fail":
                verdict.failure = gate_failure(gate, result.findings)
                return verdict
            if gate.policy == "warn":
                verdict.warnings.append((gate, result.findings))
            elif gate.policy == "skip" and stage == "pre":
                verdict.skip = (gate, result.findings)
                return verdict
            elif gate.policy == "skip":  # post: the output is dropped
                verdict.findings = list(result.findings)
                verdict.info = {"gate": gate.uses, "stage": stage, "policy": "skip"}
            else:  # degrade: go on with the redacted value
                verdict.value = result.redacted
                verdict.findings = [*verdict.findings, *result.findings]
                verdict.info = {"gate": gate.uses, "stage": stage, "policy": "degrade"}
        return verdict

    async def _gate(self, gate: Gate, value: dict[str, Any]) -> Any:
        engine = self.run.engine
        cap = engine.capabilities.get(gate.uses)
        if cap is None:
            raise StepFailure("internal", f"gate {gate.uses!r} is not registered")
        try:
            return await engine.invoke(cap, value)
        except CapabilityError as exc:
            raise StepFailure(exc.kind, f"gate {gate.uses}: {exc}") from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise StepFailure("capability_error", f"gate {gate.uses}: {type(exc).__name__}: {exc}") from None

    async def _post_gates(self, output: dict[str, Any]) -> Verdict:
        verdict = await self.gates("post", output)
        self._warn("post", verdict.warnings)
        if verdict.failure is not None:
            raise verdict.failure
        return verdict

    # ---------------------------------------------------------------- attempts, fallback

    async def _attempts(self, args: dict[str, Any]) -> Any:
        """Call the step's capability (or nested skill), retrying per ``step.retry``."""
        step, run = self.step, self.run
        attempt = 1
        while True:
            self.attempts = attempt
            assert self.deltas is not None  # ``live`` makes it at once
            self.deltas.begin(attempt)
            try:
                if step.skill_id is not None:
                    output = await run._nested(step, self.index, args)
                else:
                    cap = run.engine.capabilities.get(step.uses)
                    if cap is None:
                        raise StepFailure("internal", f"capability {step.uses!r} is not registered")
                    output = await run._call(step, cap, args)
                if not step.gates:
                    return output
                verdict = await self._post_gates(output)
                self._degraded_by(verdict)
                return verdict.value
            except StepFailure as failure:
                if attempt >= step.retry.max_attempts or not step.retry.retries(failure.kind):
                    if attempt > 1:
                        failure.message = f"{failure.message} (after {attempt} attempts)"
                    raise
                delay = step.retry.delay_ms(attempt, run.engine.rng.random())
                if failure.retry_after_s is not None:  # the upstream said when: not sooner
                    delay = max(delay, min(failure.retry_after_s, RETRY_AFTER_MAX_S) * 1000)
                self.emit(ev.step_retrying(step.id, attempt, failure.as_dict(), delay, self.index))
                await asyncio.sleep(delay / 1000)
                attempt += 1

    async def _fallback(self, failure: StepFailure) -> tuple[Any, StepFailure | None]:
        """``on_error: fallback``: run the alternative; else hand the failure back."""
        step, run, fb = self.step, self.run, self.step.fallback
        if step.on_error != "fallback" or fb is None:
            return None, failure
        self.emit(ev.step_fallback(step.id, failure.as_dict(), fb.uses, self.index))
        assert self.deltas is not None  # ``live`` makes it at once
        self.deltas.begin(self.attempts + 1)  # the attempt after the last failed one
        cap = run.engine.capabilities.get(fb.uses)
        try:
            if cap is None:
                raise StepFailure("internal", f"capability {fb.uses!r} is not registered")
            try:
                args = await run.render(fb.input, {**(self.local or {}), "error": failure.as_dict()})
            except ExpressionError as exc:
                raise StepFailure("expression_error", str(exc)) from None
            verdict = await self._post_gates(await run._call(step, cap, args, fallback=True))
        except StepFailure as exc:
            return None, StepFailure(exc.kind, f"fallback {fb.uses} failed too: {exc.message}")
        self.findings.extend(verdict.findings)
        self.info = {**verdict.info, "fallback": fb.uses}
        return verdict.value, None

    # ---------------------------------------------------------------- outcome

    def _outcome(self, output: Any, failure: StepFailure | None) -> tuple[Any, str, dict[str, str] | None]:
        """The instance's one terminal event, and what the scheduler records."""
        step = self.step
        if failure is not None:
            go_on = step.on_error == "continue"
            self.emit(ev.step_failed(step.id, failure.as_dict(), ms_since(self.t0), self.index,
                                     "continue" if go_on else None))
            if go_on:
                return None, "failed", failure.as_dict()
            failure.step_id = step.id
            raise failure
        if self.findings:
            self.emit(ev.step_degraded(step.id, output, self.findings, ms_since(self.t0), self.info, self.index))
            dropped = self.info.get("policy") == "skip"
            return (None if dropped else output), "degraded", None
        self.emit(ev.step_completed(step.id, output, ms_since(self.t0), self.index, self.info.get("fallback")))
        return output, "completed", None
