"""Hand-written additions to the generated models: the event union as one type, the
event this client cannot read (:class:`UnknownEvent`), results."""

from __future__ import annotations

from typing import Any, Iterator, Literal, TypeAlias

from pydantic import BaseModel, TypeAdapter

from ._exceptions import RunFailedError
from ._generated import models
from ._generated.models import DoneEvent, ExecuteResult

Event: TypeAlias = models.SkillEvent
"""Any event of a run; ``event.type`` tells which class it is (a discriminated union)."""

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(models.SkillEvent)


class UnknownEvent(BaseModel):
    """An event the models of this client cannot read: a type newer than them, or a known
    type whose fields they do not accept (a newer server's shape). It is delivered in its
    place, in order, so an older client keeps working against a newer server; pass
    ``strict=True`` to the client to make it a :class:`StreamError` instead (for tests).

    ``type`` is always ``"unknown"`` (so ``match event.type`` still tells every class
    apart); the server's own type is ``event_type``, the whole event as sent ``raw``.
    """

    type: Literal["unknown"] = "unknown"
    event_type: str
    """The event's ``type`` as the server sent it, e.g. ``step_paused``."""
    message: str
    """The event's human-readable ``message`` (empty when it had none)."""
    data: Any = None
    """The event's ``data`` member as plain JSON (None when it had none)."""
    run_id: str | None = None
    raw: dict[str, Any]
    """The whole event object as sent."""

    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> UnknownEvent:
        message, run_id = raw.get("message"), raw.get("run_id")
        return cls(
            event_type=str(raw["type"]),
            message=message if isinstance(message, str) else "",
            data=raw.get("data"),
            run_id=run_id if isinstance(run_id, str) else None,
            raw=raw,
        )


StreamEvent: TypeAlias = Event | UnknownEvent
"""What a stream yields: a typed event of the contract, or an :class:`UnknownEvent`."""


def unknown_fields(value: object, raw: object, path: str = "") -> Iterator[str]:
    """Dotted paths of the members of ``raw`` that the parsed model ``value`` has no field
    for (pydantic ignores them; strict mode reports them). Free-form ``dict`` fields, such
    as ``outputs``, have no unknown members."""
    if isinstance(value, BaseModel) and isinstance(raw, dict):
        known = {field.alias or name: name for name, field in type(value).model_fields.items()}
        for key, item in raw.items():
            if key not in known:
                yield f"{path}{key}"
            else:
                yield from unknown_fields(getattr(value, known[key]), item, f"{path}{key}.")
    elif isinstance(value, list) and isinstance(raw, list):
        for i, (v, r) in enumerate(zip(value, raw)):
            yield from unknown_fields(v, r, f"{path}{i}.")


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
