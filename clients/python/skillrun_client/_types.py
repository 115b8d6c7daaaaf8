"""Hand-written additions to the generated models: the event union as one type, results."""

from __future__ import annotations

from typing import TypeAlias

from pydantic import TypeAdapter

from ._exceptions import RunFailedError
from ._generated import models
from ._generated.models import DoneEvent, ExecuteResult

Event: TypeAlias = models.SkillEvent
"""Any event of a run; ``event.type`` tells which class it is (a discriminated union)."""

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(models.SkillEvent)


class RunResult(ExecuteResult):
    """A run's result (``/execute``'s body, the ``done`` event's payload)."""

    def raise_for_status(self) -> RunResult:
        """Return self if the run completed, else raise :class:`RunFailedError`."""
        if self.status != "completed":
            raise RunFailedError(self)
        return self

    @classmethod
    def from_done(cls, done: DoneEvent) -> RunResult:
        return cls.model_validate(done.model_dump(exclude={"type", "message"}))
