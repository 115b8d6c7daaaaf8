"""A step instance's partial output: its capability's deltas, as ``step_delta`` events.

A capability reports partial output with ``capability.emit_delta(text, progress)``;
the step instance it runs in owns a ``StepDeltas`` that numbers, coalesces and
bounds it, and knows nothing of where the events go (it hands them to the step).

- Numbering: ``attempt`` is the step's attempt (1-based; a fallback is the attempt
  after the last failed one), ``sequence`` counts the events of one attempt from 1,
  without gaps.
- Order: deltas are written only while the instance is open, between its
  ``step_start`` and its terminal event. The step flushes what is pending before
  any other event of its own, and closes the stream before its terminal event's
  successor can exist: a delta that arrives later (a timer, a worker's message
  still in flight) is dropped, never written after the step ended.
- Coalescing: a delta that arrives at least ``window_s`` after the last event was
  written goes out at once; those arriving sooner wait until the window has passed
  and go out as one event (texts joined, the latest progress). So one instance writes
  at most one event per window, however fast its model is: 10,000 chunks a second
  with a 25 ms window are ~40 events. ``window_s`` 0: every delta is its own event.
- Gates: a step with a post gate sends no delta text (only progress): its output is
  what the gate checks, and text sent before it ran would bypass a redaction.
- Bound: an instance's delta text, all attempts together, is at most ``max_chars``
  characters, and a whole run's (every step, item and nested step) at most
  ``max_run_chars``: a ``foreach`` of many items cannot multiply the first bound.
  Text past either is dropped (progress still goes out). The step's output,
  in its terminal event, is whole whatever the deltas were.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Callable

from .. import events as ev
from ..events import Event

DEFAULT_WINDOW_S = 0.025
# The text of one instance's deltas: a long model answer (~250,000 tokens) fits.
DEFAULT_MAX_CHARS = 1_000_000
# The text of one run's deltas, all instances together.
DEFAULT_MAX_RUN_CHARS = 10_000_000


@dataclass(frozen=True, slots=True)
class DeltaPolicy:
    """The server's rules for deltas (``SKILLRUN_DELTA_WINDOW_MS``, ``SKILLRUN_DELTA_MAX_CHARS``,
    ``SKILLRUN_DELTA_MAX_RUN_CHARS``)."""

    window_s: float = DEFAULT_WINDOW_S
    max_chars: int = DEFAULT_MAX_CHARS
    max_run_chars: int = DEFAULT_MAX_RUN_CHARS


class RunDeltaBudget:
    """What is left of one run's delta text (``DeltaPolicy.max_run_chars``), shared by
    all its step instances, nested runs' included."""

    __slots__ = ("left",)

    def __init__(self, chars: int) -> None:
        self.left = chars


def _progress(value: object) -> float | None:
    """A progress value within [0, 1], or None for one that is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return min(1.0, max(0.0, float(value)))


class StepDeltas:
    """The deltas of one step instance (see the module's docstring)."""

    __slots__ = ("policy", "budget", "write", "step_id", "index", "open", "attempt", "sequence",
                 "chars", "text", "progress", "timer", "next_at", "_loop", "texts")

    def __init__(self, policy: DeltaPolicy, write: Callable[[Event], None], step_id: str, index: int | None,
                 *, texts: bool = True, budget: RunDeltaBudget | None = None) -> None:
        self.policy = policy
        self.budget = budget if budget is not None else RunDeltaBudget(policy.max_run_chars)
        # False for a step whose output a post gate checks: text sent before the gate
        # ran would bypass it (a PII gate's redaction), so only progress goes out.
        self.texts = texts
        self.write = write
        self.step_id = step_id
        self.index = index
        self.open = False
        self.attempt = 1
        self.sequence = 0
        self.chars = 0  # delta text written or pending, all attempts
        self.text: list[str] = []
        self.progress: float | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.next_at = 0.0  # loop time before which a new delta waits (the window)
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """The instance's ``step_start`` is written: deltas may follow."""
        self.open = True

    def begin(self, attempt: int) -> None:
        """A new attempt (or the fallback): what the last one left goes out first."""
        self.flush()
        self.attempt = attempt
        self.sequence = 0

    def close(self) -> None:
        """Before the terminal event: nothing pending stays, nothing later is written."""
        self.flush()
        self.open = False

    def drop(self) -> None:
        """The instance has ended: forget what is pending, write nothing more."""
        self.open = False
        self.flush()

    def __call__(self, text: str | None, progress: float | None) -> None:
        if not self.open:
            return
        text = self._bounded(text) if isinstance(text, str) and self.texts else None
        level = _progress(progress) if progress is not None else None
        if not text and level is None:
            return
        if text:
            self.text.append(text)
        if level is not None:
            self.progress = level
        if self.policy.window_s <= 0:
            self.flush()
            return
        if self.timer is not None:
            return  # an event is already due at the window's end
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        now = loop.time()
        if now >= self.next_at:
            self.flush()
        else:
            self.timer = loop.call_at(self.next_at, self.flush)

    def _bounded(self, text: str) -> str | None:
        room = min(self.policy.max_chars - self.chars, self.budget.left)
        if room <= 0:
            return None
        if len(text) > room:
            text = text[:room]
        self.chars += len(text)
        self.budget.left -= len(text)
        return text

    def flush(self) -> None:
        """Write what is pending as one ``step_delta`` (nothing when nothing is)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.text and self.progress is None:
            return
        text = "".join(self.text) if self.text else None
        progress, self.text, self.progress = self.progress, [], None
        if not self.open:
            return
        self.sequence += 1
        self.write(ev.step_delta(self.step_id, self.attempt, self.sequence, text, progress, self.index))
        if self._loop is not None:
            self.next_at = self._loop.time() + self.policy.window_s
