"""The server-wide capability slots, shared fairly between keys.

Every capability call that does work (``Capability.holds_slot``) takes one of the
engine's ``max_parallel`` slots. Without a per-key share, one key's runs could hold
them all (even with CPU-light async capabilities) and every other key's call would
queue behind them. So a call also takes one of its tenant's ``per_key`` slots
*first*: a key at its share waits in its own queue without holding a server-wide
slot, and ``max_parallel - per_key`` slots stay reachable by the other keys.
Waiting capabilities (``holds_slot=False``: ``util.sleep``) take neither.

A call whose two slots are free and wanted by no one else takes them with
``take_now`` (and ``give_back``), which is ``hold`` without its generator and
coroutines: what a short run's steps mostly find.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass(slots=True)
class _KeyShare:
    slots: asyncio.Semaphore
    users: int = 0  # calls holding or waiting for this key's share (0: forget the key)


@dataclass
class CapabilitySlots:
    max_parallel: int
    per_key: int
    _all: asyncio.Semaphore = field(init=False)
    _keys: dict[str, _KeyShare] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.per_key = max(1, min(self.per_key, self.max_parallel))
        self._all = asyncio.Semaphore(self.max_parallel)

    @contextlib.asynccontextmanager
    async def hold(self, tenant: str) -> AsyncIterator[None]:
        """One slot of ``tenant``'s share, then one server-wide slot, for the block."""
        share = self._keys.get(tenant)
        if share is None:
            share = self._keys[tenant] = _KeyShare(asyncio.Semaphore(self.per_key))
        share.users += 1
        try:
            async with share.slots, self._all:
                yield
        finally:
            share.users -= 1
            if share.users == 0:  # no state kept for keys that are not calling
                del self._keys[tenant]

    def take_now(self, tenant: str) -> bool:
        """``hold``'s two slots taken at once, when both are free and no one waits for
        them (what ``hold`` would do without suspending); False: nothing taken, ``hold``
        (which may wait) it is. Each True needs one ``give_back``. Most calls find their
        slots free: no generator, no context manager, no coroutine per acquire."""
        share = self._keys.get(tenant)
        if self._all.locked() or share is not None and share.slots.locked():
            return False
        if share is None:
            share = self._keys[tenant] = _KeyShare(asyncio.Semaphore(self.per_key))
        share.users += 1
        # ``Semaphore.acquire`` of a semaphore that is not ``locked``, without its coroutine.
        share.slots._value -= 1
        self._all._value -= 1
        return True

    def give_back(self, tenant: str) -> None:
        """The slots ``take_now`` took, released as ``hold``'s exit releases them."""
        share = self._keys[tenant]
        self._all.release()
        share.slots.release()
        share.users -= 1
        if share.users == 0:
            del self._keys[tenant]

    def held_by(self, tenant: str) -> int:
        """Slots of ``tenant``'s share in use now (for tests and metrics)."""
        share = self._keys.get(tenant)
        return 0 if share is None else self.per_key - share.slots._value
