"""The engine's one observability hook: a context around each run and each capability call.

The engine knows nothing of what observes it; ``skillrun.observe.tracing`` puts
spans here (a run's span, a child span per attempt and one for a fallback's call,
nested skills under their parent step's). The default does nothing and costs one attribute read.
"""

from __future__ import annotations

import contextlib
from typing import AsyncContextManager, Protocol


class Tracer(Protocol):
    def run(self, skill_id: str, channel: str) -> AsyncContextManager[None]:
        """Around a whole run (``Engine.run``); exceptions that end it pass through."""
        ...

    def attempt(self, step_id: str, uses: str) -> AsyncContextManager[None]:
        """Around one capability call (or one nested skill's run) of a step attempt."""
        ...

    def fallback(self, step_id: str, uses: str) -> AsyncContextManager[None]:
        """Around the call of a step's ``on_error`` fallback: not one of its attempts
        (it is no retry: attempts count the step's own capability calls)."""
        ...


# The empty context a tracer hands out when it records nothing: the engine enters no
# context at all for it (a call then costs no context manager).
NOTHING: AsyncContextManager[None] = contextlib.nullcontext()


class NoTracer:
    """Does nothing: the same reusable empty context every time."""

    _NONE: AsyncContextManager[None] = NOTHING

    def run(self, skill_id: str, channel: str) -> AsyncContextManager[None]:
        return self._NONE

    def attempt(self, step_id: str, uses: str) -> AsyncContextManager[None]:
        return self._NONE

    def fallback(self, step_id: str, uses: str) -> AsyncContextManager[None]:
        return self._NONE


NO_TRACER = NoTracer()
