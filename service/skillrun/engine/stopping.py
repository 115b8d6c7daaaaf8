"""Stopping: every stop is a cancellation whose message says why.

The message is ``"<kind>\\n<message>"``: the caller's ``task.cancel(CANCELLED)``, the
run's or a step's time limit (``Deadline``), or a sibling step that failed with
``on_error: fail``. Each open step instance catches it, emits ``step_failed`` with
that kind and re-raises; each scheduler cancels its running steps with the same
message and waits for them (``drain``), so no task outlives the run.
"""

from __future__ import annotations

import asyncio
from typing import Any

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


class StepFailure(Exception):
    def __init__(self, kind: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after_s = retry_after_s  # the least wait before a retry (``Retry-After``)
        self.step_id: str | None = None  # the step that failed (set when it is emitted)

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message}


class TimedOut(Exception):
    """A ``Deadline`` expired (its own cancellation, turned back into an exception)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def stop_reason(exc: BaseException, default: str = CANCELLED) -> dict[str, str]:
    """The ``{kind, message}`` a cancellation carries (see the module docstring)."""
    msg = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
    kind, _, message = msg.partition("\n")
    kind = kind or default
    return {"kind": kind, "message": message or _DEFAULT_MESSAGES.get(kind, f"the run was {kind}")}


def stopped_status(reason: dict[str, str]) -> str:
    """A run's status from what stopped it: a limit fails it; cancels keep their kind."""
    if reason["kind"] == LIMIT_EXCEEDED:
        return "failed"
    return reason["kind"] if reason["kind"] in (CANCELLED, INTERRUPTED) else CANCELLED


def reason_msg(kind: str, message: str) -> str:
    """The cancellation message for a stop of ``kind`` (what ``stop_reason`` reads)."""
    return f"{kind}\n{message}"


def passed_on(exc: BaseException) -> str:
    """The message that stops the children of a task stopped by ``exc`` for the same reason."""
    reason = stop_reason(exc)
    return reason_msg(reason["kind"], reason["message"])


class Deadline:
    """``asyncio.timeout``, but the cancellation it causes says why (its message).

    Nested runs and open steps read the message to report kind ``timeout``; the
    exit turns our own cancellation into ``TimedOut``. Seconds None: no limit.
    """

    __slots__ = ("seconds", "message", "_task", "_handle", "_fired", "_cancelling")

    def __init__(self, seconds: float | None, message: str) -> None:
        self.seconds = seconds
        self.message = message
        self._handle: asyncio.TimerHandle | None = None
        self._fired = False

    async def __aenter__(self) -> "Deadline":
        if self.seconds is not None:
            task = asyncio.current_task()
            assert task is not None
            self._task = task
            self._cancelling = task.cancelling()
            self._handle = asyncio.get_running_loop().call_later(self.seconds, self._fire)
        return self

    def _fire(self) -> None:
        self._fired = True
        self._task.cancel(reason_msg(TIMEOUT, self.message))

    async def __aexit__(self, et: Any, exc: Any, tb: Any) -> bool:
        if self._handle is not None:
            self._handle.cancel()
        if self._fired and self._task.uncancel() <= self._cancelling and et is asyncio.CancelledError:
            raise TimedOut(self.message)
        return False


async def drain(tasks: set[asyncio.Task[Any]], msg: str) -> None:
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
