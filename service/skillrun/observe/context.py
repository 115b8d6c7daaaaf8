"""What the current task is working on, for log lines, spans and outgoing ``traceparent``.

Context variables, so each run's task (and each step's task, which inherits a copy)
sees its own: the run manager binds a run when its task starts; the run's writer
marks the step instance whose ``step_start`` it appends (that append runs in the
step's own context, so the step's later log lines and its capability call see it).
Never a key: ``owner`` is the key's identity as the security check gave it.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True, slots=True)
class RunContext:
    run_id: str
    trace_id: str
    skill_id: str
    owner: str
    # Trace context headers for the run's outgoing requests (``tracing.Propagation``).
    propagate: Callable[[], dict[str, str]] | None = None


@dataclass(slots=True)
class StepInstance:
    """One step (or foreach item) of the current run; ``attempts`` its capability calls so far."""

    step_id: str
    index: int | None
    attempts: int = 0


RUN: ContextVar[RunContext | None] = ContextVar("skillrun_run", default=None)
STEP: ContextVar[StepInstance | None] = ContextVar("skillrun_step", default=None)


def bind_run(
    run_id: str, trace_id: str, skill_id: str, owner: str, propagate: Callable[[], dict[str, str]] | None = None
) -> None:
    """Called at the start of the run's own task: the binding ends with the task."""
    RUN.set(RunContext(run_id, trace_id, skill_id, owner, propagate))


def outgoing_trace_headers() -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) for a request the current run makes, if any."""
    run = RUN.get()
    return run.propagate() if run is not None and run.propagate is not None else {}


def step_started(step_id: str, index: int | None) -> None:
    STEP.set(StepInstance(step_id, index))
