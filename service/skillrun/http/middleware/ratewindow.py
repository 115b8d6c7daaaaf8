"""An in-process moving-window rate limit: the ``memory://`` storage of ``ratelimit``.

``limits``' own async memory storage prepends every hit to a list as long as the
limit (O(limit) a hit) and starts an expiry task per hit that hops to a thread
while holding the key's lock, which other hits then queue on: under a burst of
stream starts that was ~0.4 ms of CPU a request (bench/profiler.py). Here a hit is
O(1) amortized: one deque of hit times per identity, oldest first, trimmed as the
window slides. Same answers as ``limits``' moving window: at most ``amount`` hits
in any ``expiry``-second window; the window's start is its oldest hit.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable


class MovingWindow:
    """Hit times per identity; idle identities are swept once a window."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._swept_at = clock()

    def hit(self, key: str, amount: int, expiry: float) -> tuple[bool, float, int]:
        """Takes one hit if ``key`` has fewer than ``amount`` in the last ``expiry`` s.

        Returns (allowed, the window's reset time, hits left in it) after the hit."""
        now = self._clock()
        self._sweep(now, expiry)
        hits = self._hits.get(key)
        if hits is None:
            hits = self._hits[key] = deque()
        cutoff = now - expiry
        while hits and hits[0] <= cutoff:
            hits.popleft()
        allowed = len(hits) < amount
        if allowed:
            hits.append(now)
        reset = (hits[0] if hits else now) + expiry
        return allowed, reset, max(0, amount - len(hits))

    def _sweep(self, now: float, expiry: float) -> None:
        """Forget identities with no hit in the last window (memory stays bounded by
        the identities seen in one window, not by every address ever seen)."""
        if now - self._swept_at < expiry:
            return
        self._swept_at = now
        cutoff = now - expiry
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= cutoff]:
            del self._hits[key]
