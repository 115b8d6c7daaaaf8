"""What nodes sharing one Redis do for each other.

- **Lease**: each node renews ``P{n:<node>}:lease`` (``SET PX``) every third of
  ``lease_s`` (at most every 2 s) and is listed in ``P{all}:nodes``. A node whose
  lease has expired is dead (killed, partitioned, or its Redis was away longer
  than the lease).
- **Takeover**: every second a node looks for dead nodes (one ``EXISTS`` per
  listed node, never a ``KEYS`` scan). A node it has seen without a lease for
  ``confirm_s`` (3 s; its renewals come more often) is taken over: when Redis
  returns after an outage longer than the lease, every lease has lapsed at once,
  and the live nodes renew theirs before anyone may count them dead. The first
  survivor to ``SET NX`` the dead node's takeover key takes each unfinished run
  in ``P{n:<dead>}:runs``: it resumes it from its log (``RunManager.resume``: the
  run goes on here, ``skill_resumed`` marks the seam), or, where a run cannot go
  on, closes it as ``interrupted`` with the same closing events as a restart's
  recovery (``RunManager.close_log``). Either way every follower on every node
  gets the rest of the log and ``done``; the seam comes within ``lease_s`` + 5 s.
- **Fencing**: a node that has not renewed its lease for so long that the lease may
  lapse before its next try stops its engine tasks at once, writing nothing (a
  survivor may resume those runs: two engines must never run one run), and every
  append carries the sender's node, which the append script compares with the
  run's holder (``adopt``): a late event of a node whose run was taken over is
  refused, and that run's engine stopped there. When its renewals succeed again, the
  node takes back the runs no survivor took (its own takeover key, ``SET NX``, so a
  survivor and the node never both resume one) and resumes them from their logs.
- **Cancel**: a cancel for a run whose engine task runs on another node is
  published on ``P cancel``; every node subscribes, and the node running the task
  cancels it (the engine ends the log ``skill_completed`` + ``done`` cancelled).
  A run whose node is dead is closed by the canceller itself.
- **Answers**: an answer to a step waiting for input, for a run another node runs, is
  checked against the log's ``step_waiting`` by the node that got it, then published
  on the same channel; the node running the run hands it to the waiting step.

Nothing here is module state: a coordinator belongs to one app's services.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from redis.exceptions import RedisError

from ..engine.runner import INTERRUPTED
from .manager import RunManager
from .redis import RedisStore, _text
from .store import UNFINISHED

log = logging.getLogger(__name__)

_TAKEOVER_EVERY_S = 1.0


class NodeCoordinator:
    def __init__(self, store: RedisStore, runs: RunManager, lease_s: float = 15.0) -> None:
        self.store = store
        self.runs = runs
        self.lease_s = lease_s
        self.renew_s = min(lease_s / 3, 2.0)
        self.confirm_s = min(lease_s, 3.0)
        self._tasks: list[asyncio.Task[None]] = []
        self._dead_since: dict[str, float] = {}  # node -> when this node first saw it without a lease
        self._renewed_at: float | None = None  # loop time a renewal that succeeded was sent
        self.fenced = False  # its lease may have lapsed: its runs are stopped until it is renewed

    @property
    def node_id(self) -> str:
        return self.store.node_id

    async def start(self) -> None:
        """Take the lease, listen for cancels, and start watching the other nodes."""
        try:
            await self._renew()
        except (RedisError, OSError, TimeoutError):
            log.exception("node %s: could not take its lease (Redis unreachable); retrying", self.node_id)
        self.store.on_fenced = self.runs.fence
        self.runs.remote_cancel = self.cancel_elsewhere
        self.runs.remote_answer = self.answer_elsewhere
        self._tasks = [
            asyncio.create_task(self._renew_forever(), name="skillrun-node-lease"),
            asyncio.create_task(self._take_over_forever(), name="skillrun-node-takeover"),
            asyncio.create_task(self._listen_forever(), name="skillrun-node-cancels"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.runs.remote_cancel = None
        self.runs.remote_answer = None
        self.store.on_fenced = None
        k, c = self.store.keys, self.store.client
        try:
            # Drained: every run of this node has its log closed, so nothing is left to take over.
            if not await c.scard(k.node(self.node_id, "runs")):
                await c.delete(k.node(self.node_id, "lease"))
                await c.zrem(k.all("nodes"), self.node_id)
        except RedisError:
            log.warning("node %s: could not release its lease; it expires in %g s", self.node_id, self.lease_s)

    # -- lease -----------------------------------------------------------------

    async def _renew(self) -> None:
        k, c = self.store.keys, self.store.client
        sent = asyncio.get_running_loop().time()
        # Bounded: a renewal stuck on a dead connection must not delay the fencing check.
        async with asyncio.timeout(self.renew_s):
            async with c.pipeline(transaction=False) as pipe:
                pipe.set(k.node(self.node_id, "lease"), "1", px=int(self.lease_s * 1000))
                pipe.zadd(k.all("nodes"), {self.node_id: 0})
                await pipe.execute()
        self._renewed_at = sent

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.renew_s)
            await self.renew_or_fence()

    async def renew_or_fence(self) -> None:
        """Renew the lease; if that failed for so long that the lease may lapse before
        the next try, fence this node's runs; once renewed after a fence, take them back."""
        try:
            await self._renew()
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("node %s: lease not renewed (%s)", self.node_id, exc)
            if not self.fenced and self._lapsing():
                self.fenced = True
                stopped = self.runs.fence_all()
                log.error("node %s: lease not renewed for %.1f s (lease %g s): %d run(s) stopped here, "
                          "a surviving node may resume them", self.node_id,
                          asyncio.get_running_loop().time() - (self._renewed_at or 0.0), self.lease_s, len(stopped))
            return
        if self.fenced:
            await self.reclaim()

    def _lapsing(self) -> bool:
        """Whether the lease may expire before the next renewal could land (one wait and
        one bounded try from now): the last moment to stop running runs a survivor may take."""
        if self._renewed_at is None:
            return True
        return asyncio.get_running_loop().time() + 2 * self.renew_s >= self._renewed_at + self.lease_s

    async def reclaim(self) -> int:
        """After a fence, resume this node's runs that no survivor took; how many.

        This node's own takeover key (``SET NX``, as a survivor's) decides: while it is
        held here, no survivor takes this node's runs, and a survivor that holds it is
        taking them (then they are its)."""
        k, c = self.store.keys, self.store.client
        claim = k.node(self.node_id, "takeover")
        if not await c.set(claim, self.node_id, nx=True, px=int(self.lease_s * 1000)):
            log.warning("node %s: back, but a survivor is taking its runs", self.node_id)
            self.fenced = False
            return 0
        resumed = 0
        try:
            # What was kept through the outage goes first: resumes read the log's real end.
            await self.store.flushed(self.lease_s)
            for raw in await c.smembers(k.node(self.node_id, "runs")):
                run_id = _text(raw)
                holder = await c.hget(k.run(run_id), "node")
                run = await self.store.get(run_id)
                if (run is None or run.status not in UNFINISHED or self.runs.running_here(run_id)
                        or (holder is not None and _text(holder) != self.node_id)):
                    continue
                if await self.runs.resume(run):
                    resumed += 1
                elif await self.runs.close_log(run_id, INTERRUPTED):
                    await self.runs.until_finished(run_id)
            self.fenced = False
        finally:
            await c.delete(claim)
        log.warning("node %s: lease renewed again; %d of its run(s) resumed here", self.node_id, resumed)
        return resumed

    async def alive(self, node: str) -> bool:
        return bool(await self.store.client.exists(self.store.keys.node(node, "lease")))

    # -- takeover ----------------------------------------------------------------

    async def _take_over_forever(self) -> None:
        while True:
            try:
                await self.take_over()
            except asyncio.CancelledError:
                raise
            except Exception:  # housekeeping: log, look again (with fresh observations)
                self._dead_since.clear()
                log.exception("node %s: takeover pass failed", self.node_id)
            await asyncio.sleep(_TAKEOVER_EVERY_S)

    async def take_over(self) -> int:
        """Take the unfinished runs of every dead node (resumed here, or closed); how many."""
        k, c = self.store.keys, self.store.client
        closed, now = 0, asyncio.get_running_loop().time()
        for raw in await c.zrange(k.all("nodes"), 0, -1):
            node = _text(raw)
            if node == self.node_id or await self.alive(node):
                self._dead_since.pop(node, None)
                continue
            if now - self._dead_since.setdefault(node, now) < self.confirm_s:
                continue  # not yet: it may be renewing after an outage
            # One survivor per dead node; its claim lapses if it dies too.
            if not await c.set(k.node(node, "takeover"), self.node_id, nx=True, px=int(self.lease_s * 1000)):
                continue
            closed += await self._take_runs_of(node)
            self._dead_since.pop(node, None)
        return closed

    async def _take_runs_of(self, node: str) -> int:
        k, c = self.store.keys, self.store.client
        resumed = closed = 0
        for raw in await c.smembers(k.node(node, "runs")):
            run_id = _text(raw)
            run = await self.store.get(run_id)
            if run is not None and run.status in UNFINISHED:
                await self.store.adopt(run_id)
                if await self.runs.resume(run):
                    resumed += 1
                elif await self.runs.close_log(run_id, INTERRUPTED):
                    closed += 1
                    await self.runs.until_finished(run_id)
            # Its node may have died between closing a log and its bookkeeping.
            await self.store.settle(run_id)
            await c.srem(k.node(node, "runs"), run_id)
        if resumed or closed:
            log.warning("node %s: took %d run(s) of dead node %s: %d resumed, %d closed as interrupted",
                        self.node_id, resumed + closed, node, resumed, closed)
        closed += resumed
        if not await c.scard(k.node(node, "runs")):
            await c.zrem(k.all("nodes"), node)
            await c.delete(k.node(node, "runs"), k.node(node, "takeover"))  # one slot: {n:<node>}
        return closed

    # -- cancel ----------------------------------------------------------------

    async def cancel_elsewhere(self, run_id: str, reason: str) -> bool:
        """Ask the node running ``run_id`` to cancel it; False when that node is dead
        (the caller closes the log itself)."""
        k, c = self.store.keys, self.store.client
        node = await c.hget(k.run(run_id), "node")
        if node is None or _text(node) == self.node_id:
            return False
        if not await self.alive(_text(node)):
            await self.store.adopt(run_id)  # the caller closes its log: the run is held here (fencing)
            return False
        await c.publish(k.cancel_channel, json.dumps({"run_id": run_id, "reason": reason, "node": _text(node)}))
        return True

    async def answer_elsewhere(self, run_id: str, step_id: str, index: int | None, value: Any) -> bool:
        """Send an answer to the node running ``run_id`` (on the cancel channel); False
        when that node is dead (a survivor resumes the run and its step waits again)."""
        k, c = self.store.keys, self.store.client
        node = await c.hget(k.run(run_id), "node")
        if node is None or _text(node) == self.node_id or not await self.alive(_text(node)):
            return False
        answer = {"step_id": step_id, "index": index, "value": value}
        await c.publish(k.cancel_channel, json.dumps({"run_id": run_id, "answer": answer, "node": _text(node)}))
        return True

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("node %s: cancel channel lost (%s); subscribing again", self.node_id, exc)
                await asyncio.sleep(0.5)

    async def _listen(self) -> None:
        pubsub = self.store.pubsub()
        try:
            await pubsub.subscribe(self.store.keys.cancel_channel)
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                order = json.loads(_text(message["data"]))
                if order.get("node") != self.node_id:
                    continue
                answer = order.get("answer")
                if isinstance(answer, dict):
                    self.runs.answer_here(order["run_id"], answer["step_id"], answer.get("index"), answer.get("value"))
                else:
                    self.runs.cancel_here(order["run_id"], order["reason"])
        finally:
            await pubsub.aclose()
