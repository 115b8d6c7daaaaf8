"""Admission: how many runs one key, and the server as a whole, may have running.

A run holds memory, a task and a follower or two for as long as it runs, even when it
only waits; so running runs are counted per key (``max_running_per_key``: one key
cannot fill the server) and in all (``max_running``: the server refuses work it could
not serve). Counts are of this node's runs: runs execute on the node that started them.
With a store several nodes share (Redis), ``reserve`` takes the run's place among the
running runs of every node as well, atomically (the store counts and takes it in one
step), so two nodes admitting the last place at the same instant cannot both get it.
A run waiting for input holds no running place, here or in the shared count.

Stored runs are counted per key too (``max_stored_runs_per_key``): a key cannot fill
the store faster than retention empties it. The count is asked of the store once per
key and kept up to date here (every new run adds one; a purge forgets every count),
so a start costs no query. With ``max_events_per_run``, this also bounds the events a
key can have stored: at most the product of the two.

A refusal is ``QuotaExceeded``: the HTTP layer answers it as a problem (429 for a key
over its own limit, 503 when the server is saturated) with ``Retry-After``, before a
run exists, so nothing is stored for it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
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
    max_stored_runs_per_key: int = 100_000
    # When a refused key may find room again: the purge interval (runs age out).
    stored_retry_after_s: int = 60
    # With a shared store: (unfinished runs of an owner, of all owners), on every node.
    shared: Callable[[str], Awaitable[tuple[int, int]]] | None = field(default=None, repr=False)
    # With a shared store: take a running place on every node at once, (run_id, owner,
    # max of the key, max in all) -> None when taken, else the counts that refused it;
    # and give back a place taken for a run that was not stored (run_id, owner).
    reserve: Callable[[str, str, int, int], Awaitable[tuple[int, int] | None]] | None = field(
        default=None, repr=False)
    release: Callable[[str, str], Awaitable[None]] | None = field(default=None, repr=False)
    _running: Counter[str] = field(default_factory=Counter, init=False)
    _stored: dict[str, int] = field(default_factory=dict, init=False)
    _total: int = field(default=0, init=False)

    def admit(self, owner: str) -> None:
        """Raise ``QuotaExceeded`` if ``owner`` may not start a run now."""
        self._check_running(self._running[owner], self._total)

    async def admit_everywhere(self, owner: str, run_id: str) -> None:
        """``admit`` against the counts of every node (with a shared store only); with
        ``reserve``, the place of ``run_id`` is taken as well (``release_everywhere``
        gives it back if the run is not stored)."""
        if self.reserve is not None:
            refused = await self.reserve(run_id, owner, self.max_running_per_key, self.max_running)
            if refused is not None:  # the refusing count is at its limit (the other: 0, not asked)
                self._check_running(*refused)
        elif self.shared is not None:
            self._check_running(*await self.shared(owner))

    async def release_everywhere(self, owner: str, run_id: str) -> None:
        if self.release is not None:
            await self.release(run_id, owner)

    def _check_running(self, of_key: int, total: int) -> None:
        if of_key >= self.max_running_per_key:
            raise QuotaExceeded(
                429,
                f"This key already has {of_key} runs running, its limit "
                f"(SKILLRUN_MAX_RUNNING_PER_KEY = {self.max_running_per_key}); "
                f"retry when one has ended.",
            )
        if total >= self.max_running:
            raise QuotaExceeded(
                503,
                f"The server is running {total} runs, its limit (SKILLRUN_MAX_RUNNING = "
                f"{self.max_running}); retry shortly.",
            )

    async def admit_stored(self, owner: str, count: Callable[[], Awaitable[int]]) -> None:
        """Raise ``QuotaExceeded`` if ``owner`` has ``max_stored_runs_per_key`` runs stored;
        ``count`` asks the store (once per key until ``purged``)."""
        if self.shared is not None:
            self._stored[owner] = await count()  # other nodes store runs too: ask every time
        elif owner not in self._stored:
            stored = await count()
            self._stored.setdefault(owner, stored)  # a concurrent start may have set it
        if self._stored[owner] >= self.max_stored_runs_per_key:
            raise QuotaExceeded(
                429,
                f"This key has {self._stored[owner]} runs stored, its limit (SKILLRUN_MAX_STORED_RUNS_PER_KEY = "
                f"{self.max_stored_runs_per_key}); finished runs are purged after the retention period.",
                self.stored_retry_after_s,
            )

    def stored(self, owner: str) -> None:
        """A new run of ``owner`` was stored."""
        if owner in self._stored:
            self._stored[owner] += 1

    def purged(self) -> None:
        """Runs were deleted: every count is asked of the store again."""
        self._stored.clear()

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
