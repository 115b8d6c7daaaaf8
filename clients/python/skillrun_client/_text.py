"""A step's text as it is made, from its ``step_delta`` events (sans-IO).

:class:`StepTexts` watches every event a stream delivers and keeps, per step (and
``foreach`` item), the text of the attempt that is running. What it turns into
:class:`TextChunk` values is what ``stream.text()`` yields:

- each ``delta.text`` of a ``step_delta``, as it arrives (chunk boundaries mean nothing:
  the server coalesces deltas, so join them, never count them);
- a **restart** marker (``restart=True``, ``text=""``) when text already yielded for a
  step stops counting: the attempt failed and a retry or fallback follows
  (``step_retrying``, ``step_fallback``), or the step starts over (a second
  ``step_start``, after a server restart). A UI clears what it showed for that step;
  the chunks that follow are the new attempt's. Without text yielded there is no marker.

When the step ends, the text of the attempt that produced its output is its final text
(:meth:`StepTexts.final`): ``""`` when it completed without text, ``None`` when it
failed or was skipped (a failed attempt's text is never part of the output).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._types import StreamEvent

StepKey = tuple[str, int | None]
"""A step's ``step_id`` and, for a ``foreach`` item, its ``index``."""

# Events that end the attempt running for a step: what it yielded is void.
_VOIDING = frozenset({"step_start", "step_retrying", "step_fallback"})
# Terminal events with an output (the last attempt's text is the step's text) and without.
_PRODUCED = frozenset({"step_completed", "step_degraded"})
_NOTHING = frozenset({"step_failed", "step_skipped"})
_WATCHED = _VOIDING | _PRODUCED | _NOTHING | {"step_delta"}


@dataclass(frozen=True)
class TextChunk:
    """A piece of a step's text, or (``restart=True``) the signal that the text so far is void.

    ``str(chunk)`` is its text, so ``print(chunk, end="")`` works.
    """

    step_id: str
    index: int | None
    attempt: int
    text: str
    restart: bool = False

    def __str__(self) -> str:
        return self.text


@dataclass
class _Attempt:
    number: int = 1
    parts: list[str] = field(default_factory=list)


class StepTexts:
    """Per-step text of the running attempt, and the final text of each ended step."""

    def __init__(self) -> None:
        self._live: dict[StepKey, _Attempt] = {}
        self._final: dict[StepKey, str | None] = {}

    def observe(self, event: StreamEvent) -> list[TextChunk]:
        """The chunks ``event`` means (most events: none)."""
        kind, step_id = event.type, getattr(event, "step_id", None)
        if step_id is None or kind not in _WATCHED:
            return []
        data = getattr(event, "data")
        key: StepKey = (step_id, getattr(data, "index", None))
        if kind == "step_delta":
            return self._delta(key, data.attempt, data.delta.text)
        if kind in _VOIDING:
            if kind == "step_start":
                self._final.pop(key, None)  # the step runs again (a run resumed after a restart)
            return self._void(key)
        attempt = self._live.pop(key, _Attempt())
        self._final[key] = "".join(attempt.parts) if kind in _PRODUCED else None
        return []

    def ended(self, key: StepKey) -> bool:
        """True once the step (item) has had its terminal event."""
        return key in self._final

    def final(self, key: StepKey) -> str | None:
        """The ended step's text (``""``: none made; ``None``: it failed, was skipped, or has not ended)."""
        return self._final.get(key)

    def _delta(self, key: StepKey, number: int, text: str | None) -> list[TextChunk]:
        attempt = self._live.setdefault(key, _Attempt(number))
        out: list[TextChunk] = []
        if number != attempt.number:  # a new attempt without a voiding event before it
            out = self._void(key)
            attempt = self._live[key] = _Attempt(number)
        if text:
            attempt.parts.append(text)
            out.append(TextChunk(key[0], key[1], number, text))
        return out

    def _void(self, key: StepKey) -> list[TextChunk]:
        """Drop the running attempt's text; a restart marker if any of it was yielded."""
        attempt = self._live.pop(key, None)
        if attempt is None or not attempt.parts:
            return []
        return [TextChunk(key[0], key[1], attempt.number, "", restart=True)]
