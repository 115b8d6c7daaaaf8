"""Admission: how many runs one key, and the server as a whole, may have running.

A run holds memory, a task and a follower or two for as long as it runs, even when it
only waits; so running runs are counted per key (``max_running_per_key``: one key
cannot fill the server) and in all (``max_running``: the server refuses work it could
not serve). Counts are of this node's runs: runs execute on the node that started them.

A refusal is ``QuotaExceeded``: the HTTP layer answers it as a problem (429 for a key
over its own limit, 503 when the server is saturated) with ``Retry-After``, before a
run exists, so nothing is stored for it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

# Running runs end on their own time; this is when a client may usefully try again.
RETRY_AFTER_S = 1


class QuotaExceeded(Exception):
    """A run was refused: ``status`` 429 (the key's limit) or 503 (the server's)."""

    def __init__(self, status: int, detail: str, retry_after_s: int = RETRY_AFTER_S) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry_after_s = retry_after_s


@dataclass
class RunQuotas:
    """Running-run limits, and the per-run event cap the run manager applies."""

    max_running_per_key: int = 10_000
    max_running: int = 20_000
    max_events_per_run: int | None = 100_000
    _running: Counter[str] = field(default_factory=Counter, init=False)
    _total: int = field(default=0, init=False)

    def admit(self, owner: str) -> None:
        """Raise ``QuotaExceeded`` if ``owner`` may not start a run now."""
        if self._running[owner] >= self.max_running_per_key:
            raise QuotaExceeded(
                429,
                f"This key already has {self._running[owner]} runs running, its limit "
                f"(SKILLRUN_MAX_RUNNING_PER_KEY = {self.max_running_per_key}); "
                f"retry when one has ended.",
            )
        if self._total >= self.max_running:
            raise QuotaExceeded(
                503,
                f"The server is running {self._total} runs, its limit (SKILLRUN_MAX_RUNNING = "
                f"{self.max_running}); retry shortly.",
            )

    def started(self, owner: str) -> None:
        self._running[owner] += 1
        self._total += 1

    def ended(self, owner: str) -> None:
        self._running[owner] -= 1
        if self._running[owner] <= 0:
            del self._running[owner]  # no state kept for keys with nothing running
        self._total -= 1

    def running(self, owner: str) -> int:
        return self._running[owner]
