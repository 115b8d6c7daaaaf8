"""Capabilities: the named operations steps call, registered with their schemas."""

from __future__ import annotations

import hashlib
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Protocol


# The running run's scratch space (see ``run_state``). A context variable, not a
# global: every run's task (and the step tasks it creates) sees its own.
_RUN_STATE: ContextVar[dict[str, dict[str, Any]] | None] = ContextVar("skillrun_run_state", default=None)


# The run a capability call belongs to (its id).
_RUN_KEY: ContextVar[str] = ContextVar("skillrun_run_key", default="")


class DeltaSink(Protocol):
    """Where a capability's partial output goes: the step instance it runs in
    (``step.StepLife``), or, in a worker process, the channel back to it."""

    def __call__(self, text: str | None, progress: float | None) -> None: ...


class StepCall(DeltaSink, Protocol):
    """The step instance a capability call runs in (``step.StepLife``): its partial
    output's sink, how it waits for a person's answer (it announces ``step_waiting``
    and returns the answer) and its place in the run."""

    async def wait_for_input(self, prompt: str, schema: dict[str, Any], timeout_s: float | None) -> Any: ...

    def place(self) -> tuple[str, int | None]:
        """(full step id, index)."""
        ...


# The current step instance (set by the step around its calls): one variable, set and
# reset once per instance (a foreach's 10,000 items pay for it 10,000 times).
_STEP: ContextVar[StepCall | None] = ContextVar("skillrun_step", default=None)
# In a worker process: the channel back to the step the task runs for (set by the
# worker around the task it runs; a worker has no ``_STEP``).
_STEP_DELTA: ContextVar[DeltaSink | None] = ContextVar("skillrun_step_delta", default=None)


def emit_delta(text: str | None = None, progress: float | None = None) -> None:
    """Report partial output of the step this call runs in: ``text`` to append to
    its text so far, and/or ``progress`` from 0 to 1 (the latest wins).

    The engine turns it into ``step_delta`` events (coalesced within a short window;
    see ``deltas``). It never blocks and never fails the call: outside a run's step,
    before the step has started or after it has ended, it does nothing. Works alike
    in ``fn`` and in a ``sync_fn`` running in a worker process.
    """
    sink: DeltaSink | None = _STEP.get() or _STEP_DELTA.get()
    if sink is not None and (text or progress is not None):
        sink(text or None, progress)


async def wait_for_input(prompt: str, schema: dict[str, Any], timeout_s: float | None) -> Any:
    """Wait for an answer to ``prompt`` matching ``schema`` (``human.input``): the
    step emits ``step_waiting`` and the run is ``waiting`` until the answer comes.
    ``CapabilityError`` (kind ``timeout``) after ``timeout_s``; kind ``internal``
    outside a run's step, where nobody could answer."""
    step = _STEP.get()
    if step is None:
        raise CapabilityError("waiting for input works only in a step of a run", kind="internal")
    return await step.wait_for_input(prompt, schema, timeout_s)


def idempotency_key() -> str | None:
    """A key naming the current step instance of the current run, the same for each of
    its attempts and after the run is resumed, so a receiver can drop a repeated call
    (``http.request`` sends it as ``Idempotency-Key``). None outside a run's step."""
    step, run_key = _STEP.get(), _RUN_KEY.get()
    if step is None or not run_key:
        return None
    step_id, index = step.place()
    return hashlib.sha256(f"{run_key}\n{step_id}\n{'' if index is None else index}".encode()).hexdigest()[:32]


def run_state(namespace: str) -> dict[str, Any]:
    """A capability's scratch space for the current run, under ``namespace``.

    The same dict for every call within one run (its nested skills and foreach
    items included), a new one for every run, gone when the run ends; so two runs
    at once never see each other's counts. Outside a run: a new dict per call.
    """
    state = _RUN_STATE.get()
    if state is None:
        return {}
    return state.setdefault(namespace, {})


class CapabilityError(Exception):
    """A capability failed; ``kind`` names how (it becomes the step's error kind).

    ``retry_after_s``: the failure says when trying again may work (an upstream's
    ``Retry-After``); a step that retries waits at least that long (see ``step``)."""

    def __init__(self, message: str, kind: str = "capability_error", retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> tuple[Any, ...]:  # keeps ``kind`` across a worker process's pipe
        return (type(self), (str(self), self.kind, self.retry_after_s))


@dataclass(frozen=True, slots=True)
class GateResult:
    """What a gate found (kinds and counts only) and the output with it redacted."""

    findings: list[dict[str, Any]]
    redacted: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Capability:
    name: str
    fn: Callable[[dict[str, Any]], Awaitable[Any]]
    description: str = ""
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    output_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    gate: bool = False
    # CPU-bound work: a pure, module-level (picklable) synchronous function that
    # computes what ``fn`` does. The engine runs it in a worker process under the
    # step's deadline (inline when its input is below a measured size threshold).
    sync_fn: Callable[[dict[str, Any]], Any] | None = None
    # False for capabilities that only wait (util.sleep, waits for input): they
    # hold no server-wide capability slot.
    holds_slot: bool = True
    # The error kinds the capability fails with besides the engine's own
    # (``model.ENGINE_KINDS``): ``retry.on`` is checked against them at load.
    # None: not declared (any kind is accepted), as for a capability that takes
    # its kind from its input.
    error_kinds: frozenset[str] | None = None


def cpu_capability(
    name: str,
    sync_fn: Callable[[dict[str, Any]], Any],
    description: str = "",
    input_schema: dict[str, Any] | None = None,
    output_schema: dict[str, Any] | None = None,
    *,
    gate: bool = False,
    error_kinds: frozenset[str] | None = frozenset(),
) -> Capability:
    """A CPU-bound capability from its synchronous function (see ``Capability.sync_fn``).

    ``fn`` calls it inline; the engine decides per call whether to run it there
    or in a worker process.
    """

    async def fn(args: dict[str, Any]) -> Any:
        return sync_fn(args)

    return Capability(
        name,
        fn,
        description,
        input_schema if input_schema is not None else {"type": "object"},
        output_schema if output_schema is not None else {"type": "object"},
        gate,
        sync_fn,
        error_kinds=error_kinds,
    )


class CapabilityRegistry:
    """Capabilities by name. One instance per app; no module-level registry."""

    def __init__(self, capabilities: Iterable[Capability] = ()) -> None:
        self._by_name: dict[str, Capability] = {}
        for cap in capabilities:
            self.register(cap)

    def register(self, capability: Capability) -> None:
        if capability.name in self._by_name:
            raise ValueError(f"capability {capability.name!r} is registered twice")
        self._by_name[capability.name] = capability

    def get(self, name: str) -> Capability | None:
        return self._by_name.get(name)

    def all(self) -> list[Capability]:
        """Every registered capability, by name."""
        return [self._by_name[n] for n in sorted(self._by_name)]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name
