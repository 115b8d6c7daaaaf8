"""The Redis run store: runs shared by every node on one Redis (or Redis Cluster).

Keys (``P`` is the configurable prefix, ``SKILLRUN_REDIS_PREFIX``). Every key of
one run carries the run's hash tag, so it lives in one Cluster slot, and no
command ever names keys of two slots:

- ``P{<run_id>}:log``: the run's log, a Stream whose entry ids are ``<seq>-0``
  (``Last-Event-ID: n`` is ``XREAD ... n-0``). ``XADD`` with an explicit id
  refuses an id at or below the last one, and the append script refuses anything
  after ``done``, so two nodes racing to close one log cannot both write. A
  ``MAXLEN ~`` guard bounds a log beyond the per-run event cap.
- ``P{<run_id>}:run``: the run record, a hash (the log's projection, see ``store``).
- ``P{i:<digest>}:idem``: an idempotency key (owner, key) -> run id, set with
  ``SET NX`` (atomic across nodes). It is looked up before any run id exists, so
  it has its own tag (a digest of owner and key): one key, one slot.
- ``P{o:<owner>}:runs``: the owner's runs, a sorted set ordered by member text
  ``<created, 17 digits>-<run number, 12 digits>-<run_id>`` (all scores 0, read
  with ``ZREVRANGEBYLEX``): newest first, created order then creation order
  within a millisecond, as SQLite's row number orders them. A list cursor
  (``ListCursor``) is resumed from its run's member when that run is still the
  caller's, else from its time alone (nothing of other keys shows through).
- ``P{o:<owner>}:active``: the owner's unfinished runs, and ``P{o:<owner>}:waiting``
  those of them waiting for input: the running-runs quota counts active runs that do
  not wait, across nodes. A place is taken atomically (``_RESERVE``: count and add in
  one script) before the run is stored, so two nodes admitting at the same instant
  cannot pass the limit.
- ``P{all}:n`` (the run counter), ``P{all}:runs``, ``P{all}:finished`` (finished
  runs by time, for purge), ``P{all}:active``, ``P{all}:waiting``, ``P{all}:nodes``: the
  few global indexes.
- ``P{n:<node>}:runs``: the unfinished runs a node executes; ``P{n:<node>}:lease``
  its lease (see ``runs.nodes``).

``append`` queues; one writer task sends everything queued in one pipeline
(group commit) of one script call per run (see ``_send``), so the engine never
waits on the network. While Redis is unreachable the queue is kept and sent again
when it returns: an event the script finds already there is compared with what was
sent (the same: it went through before the connection broke; another: a survivor
closed the log, and Redis has the truth). Finished runs expire after the retention
(``EXPIRE``), and ``purge`` removes them from the indexes.

Followers read a bounded tail kept per run on each node: fed by the node's own
sends for a run it writes, else by one watcher task per run blocked on
``XREAD BLOCK`` (push, never polling) while followers wait on that node. A
follower behind the tail reads the stream (``XRANGE``), a page at a time.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from calendar import timegm
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Collection, Concatenate, Coroutine, Mapping, ParamSpec, TypeVar, cast

import redis as sync_redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ClusterDownError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..events import DONE, projection
from .sqlite import SchemaTooNew
from .store import Changed, EventRecord, ListCursor, RunPage, RunRecord, StoreUnavailable, utc_now, wait_changed

log = logging.getLogger(__name__)

Client = aioredis.Redis | RedisCluster

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode

# XREAD BLOCK waits at most this long per call: below the client's socket timeout.
_BLOCK_S = 4.0
# Between sends to a Redis that is unreachable.
_RETRY_S = (0.05, 0.1, 0.25, 0.5, 1.0)
_SCAN_BATCH = 100


# What an unreachable (or failing over) Redis raises, as against a refused command.
OUTAGE = (RedisConnectionError, RedisTimeoutError, ClusterDownError, OSError)

_P = ParamSpec("_P")
_T = TypeVar("_T")


def _outage_is_unavailable(
    method: Callable[Concatenate["RedisStore", _P], Coroutine[Any, Any, _T]],
) -> Callable[Concatenate["RedisStore", _P], Coroutine[Any, Any, _T]]:
    """An outage surfaces as ``StoreUnavailable`` (503 + Retry-After), never a 500."""

    async def call(self: "RedisStore", /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return await method(self, *args, **kwargs)
        except OUTAGE as exc:
            self.reachable = False
            raise StoreUnavailable(f"Redis is unreachable: {exc}") from exc

    call.__name__, call.__doc__, call.__qualname__ = method.__name__, method.__doc__, method.__qualname__
    return call


def is_redis_url(db: str) -> bool:
    return db.startswith(("redis://", "rediss://", "unix://"))


def _epoch_ms(stamp: str) -> int:
    """Milliseconds since the epoch of an RFC 3339 UTC time as ``utc_now`` writes it."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    return timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S")) * 1000 + int((frac + "000")[:3])


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _run_fields(run: RunRecord) -> dict[str, str]:
    fields = {
        "run_id": run.run_id, "owner": run.owner, "skill_id": run.skill_id, "trace_id": run.trace_id,
        "channel": run.channel, "status": run.status, "inputs": _dumps(run.inputs), "created_at": run.created_at,
    }
    optional = {
        "started_at": run.started_at, "finished_at": run.finished_at,
        "result": _dumps(run.result) if run.result is not None else None,
        "idempotency_key": run.idempotency_key, "request_hash": run.request_hash,
    }
    fields.update({k: v for k, v in optional.items() if v is not None})
    return fields


def _record(raw: Mapping[Any, Any]) -> RunRecord | None:
    h = {_text(k): _text(v) for k, v in raw.items()}
    if "owner" not in h:  # missing, expired, or a projection write that outlived its run
        return None
    return RunRecord(
        run_id=h["run_id"], owner=h["owner"], skill_id=h["skill_id"], trace_id=h["trace_id"], channel=h["channel"],
        inputs=json.loads(h["inputs"]), created_at=h["created_at"], status=h["status"],
        started_at=h.get("started_at"), finished_at=h.get("finished_at"),
        result=json.loads(h["result"]) if "result" in h else None,
        idempotency_key=h.get("idempotency_key"), request_hash=h.get("request_hash"),
    )


@dataclass(slots=True)
class _Tail:
    """What this node knows of a run's log: the last seq known to be in Redis, a
    bounded tail of the events before it (contiguous), and a wake-up for followers.

    Fed by this node's own sends (a run it writes) or by one watcher task per run
    doing ``XREAD BLOCK`` (a run another node writes): however many followers a run
    has on this node, it costs Redis one blocked read, and followers read the tail.

    At most ``2 * tail_events`` events a run (default 8,192, four times SQLite's): a
    follower that falls behind the tail reads Redis a page at a time, ~5 µs an event
    in redis-py against ~0.3 in SQLite, and the stream's own response falls behind a
    fast engine. Measured (bench/scale.py, 20,003 events): 0.40 of the SQLite store's
    events/s with 2,048, 0.84 with 8,192."""

    last: int
    events: list[EventRecord] = field(default_factory=list)
    closed: bool = False
    changed: Changed = field(default_factory=Changed)  # ~1 KB less than an Event a run (store.Changed)
    local: bool = False  # written here: no watcher needed
    waiters: int = 0
    watcher: "asyncio.Task[None] | None" = None


class Keys:
    """Key names under one prefix (see the module docstring)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def run(self, run_id: str) -> str:
        return f"{self.prefix}{{{run_id}}}:run"

    def log(self, run_id: str) -> str:
        return f"{self.prefix}{{{run_id}}}:log"

    def idem(self, owner: str, key: str) -> str:
        digest = hashlib.sha256(f"{owner}\0{key}".encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return f"{self.prefix}{{i:{digest}}}:idem"

    def owner(self, owner: str, what: str) -> str:
        return f"{self.prefix}{{o:{owner}}}:{what}"

    def all(self, what: str) -> str:
        return f"{self.prefix}{{all}}:{what}"

    def node(self, node: str, what: str) -> str:
        return f"{self.prefix}{{n:{node}}}:{what}"

    @property
    def cancel_channel(self) -> str:
        return f"{self.prefix}cancel"


# Appends one run's events (KEYS: its log, its record; one hash tag) and projects each
# taken event onto the record; returns the seqs refused: an id at or below the last
# (sent before, or another node closed the log), or anything after the log's ``done``
# (two nodes closing one log never leave events after it). ARGV: maxlen, now, ttl, N,
# then N events as "seq US type US data" (US = \x1f, which JSON text never holds raw:
# one argument an event, as redis-py's packing costs per argument), then per event that
# changes the record: seq, starts (0/1), done's status and result ('' unless done), and
# the open waits' change ('' none, 'r' reset by a resume, else +1/-1; see ``events``).
# Fencing: the last ARGV is the sending node, compared with the record's ``node`` (who
# holds the run now): a run a survivor adopted (``adopt``) takes
# nothing more from the node it was taken from, so a zombie's late events (a node cut
# from Redis longer than its lease, whose engine went on) are refused whole. Returns
# {refused seqs, 1 if fenced else 0}.
_APPEND = """
local refused, changes = {}, {}
local n = tonumber(ARGV[4])
local sender = ARGV[#ARGV]
for j = 5 + n, #ARGV - 1, 5 do
  changes[ARGV[j]] = j
end
local holder = redis.call('HGET', KEYS[2], 'node')
local closed = redis.call('HEXISTS', KEYS[2], 'finished_at') == 1
if holder and holder ~= sender then
  for i = 5, 4 + n do
    local ev = ARGV[i]
    refused[#refused + 1] = string.sub(ev, 1, string.find(ev, '\\31', 1, true) - 1)
  end
  return {refused, 1}
end
for i = 5, 4 + n do
  local ev = ARGV[i]
  local a = string.find(ev, '\\31', 1, true)
  local b = string.find(ev, '\\31', a + 1, true)
  local seq = string.sub(ev, 1, a - 1)
  local r = nil
  if not closed then
    r = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], seq .. '-0',
                    't', string.sub(ev, a + 1, b - 1), 'd', string.sub(ev, b + 1))
  end
  if closed or (type(r) == 'table' and r.err) then
    refused[#refused + 1] = seq
  elseif changes[seq] then
    local j = changes[seq]
    if ARGV[j + 1] == '1' then
      redis.call('HSET', KEYS[2], 'status', 'running', 'started_at', ARGV[2])
    end
    local w = ARGV[j + 4]
    if w ~= '' then
      local waits = 0
      if w ~= 'r' then
        waits = redis.call('HINCRBY', KEYS[2], 'waits', tonumber(w))
      end
      if waits <= 0 then
        redis.call('HSET', KEYS[2], 'waits', 0)
        waits = 0
      end
      local st = redis.call('HGET', KEYS[2], 'status')
      if st == 'running' and waits > 0 then
        redis.call('HSET', KEYS[2], 'status', 'waiting')
      elseif st == 'waiting' and waits == 0 then
        redis.call('HSET', KEYS[2], 'status', 'running')
      end
    end
    if ARGV[j + 2] ~= '' then
      redis.call('HSET', KEYS[2], 'status', ARGV[j + 2], 'result', ARGV[j + 3], 'finished_at', ARGV[2])
      redis.call('EXPIRE', KEYS[1], ARGV[3])
      redis.call('EXPIRE', KEYS[2], ARGV[3])
      closed = true
    end
  end
end
return {refused, 0}
"""

# Takes a running place for a run (KEYS: an active set and its waiting set, one hash
# tag: the owner's, or the global ones): counts the active runs that do not wait and,
# under ARGV[2], adds ARGV[1]; returns -1 when taken, else the count that refused it.
# A script so that the count and the add are one step on every node (no overshoot).
_RESERVE = """
local running = redis.call('SCARD', KEYS[1]) - redis.call('SINTERCARD', 2, KEYS[1], KEYS[2])
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  return -1
end
if running >= tonumber(ARGV[2]) then
  return running
end
redis.call('SADD', KEYS[1], ARGV[1])
return -1
"""

# Commands at once on one node's command pool: past it a command waits for a free
# connection (up to _POOL_WAIT_S, then the store is "unavailable"), instead of failing.
_COMMAND_CONNECTIONS = 128
_POOL_WAIT_S = 5.0
# Blocked reads (one per run followed here but written elsewhere) and Pub/Sub hold a
# connection each for long: their own pool, so they never starve the commands.
_BLOCKING_CONNECTIONS = 100_000


# The keyspace's history, as SQLite's ``_MIGRATIONS`` (runs/sqlite.py): version 1 is the
# first Redis layout. A change to what is stored adds a version here and its migration
# in ``_migrate``; a keyspace written by a newer release is refused at start.
SCHEMA_VERSION = 1


async def versioned(client: Client, url: str, prefix: str) -> None:
    """Stamp a new keyspace with ``SCHEMA_VERSION``; refuse one a newer release wrote
    (``SchemaTooNew``, naming both versions). One key, so any Cluster slot will do."""
    key = f"{prefix}schema_version"
    await cast(Awaitable[Any], client.set(key, SCHEMA_VERSION, nx=True))
    found = int(_text(await cast(Awaitable[Any], client.get(key))) or SCHEMA_VERSION)
    if found > SCHEMA_VERSION:
        raise SchemaTooNew(f"{public_url(url)} (keys {prefix}*)", found, SCHEMA_VERSION)


def cluster_enabled(url: str, timeout_s: float = 3.0) -> bool | None:
    """Whether the Redis at ``url`` is a node of a Redis Cluster (``INFO cluster``:
    ``cluster_enabled:1``); None when it cannot be asked now. Synchronous, once at
    start: the store and the rate limiter's storage are built before any loop runs."""
    client = sync_redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        info = client.info("cluster")
    except (RedisError, OSError) as exc:
        log.warning("run store: could not ask %s whether it is a Redis Cluster (%s); "
                    "set SKILLRUN_REDIS_CLUSTER to say", public_url(url), exc)
        return None
    finally:
        client.close()
    return bool(int(info.get("cluster_enabled", 0)))


def public_url(url: str) -> str:
    """``url`` without its credentials (``redis://user:password@host`` -> ``redis://host``)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rsplit('@', 1)[-1]}"


def connect(url: str, *, cluster: bool = False, blocking: bool = False) -> Client:
    if cluster:
        return RedisCluster.from_url(url, max_connections=_BLOCKING_CONNECTIONS if blocking else _COMMAND_CONNECTIONS)
    if blocking:
        pool = aioredis.ConnectionPool.from_url(url, max_connections=_BLOCKING_CONNECTIONS)
    else:
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=_COMMAND_CONNECTIONS,
                                                        timeout=_POOL_WAIT_S)
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


class RedisStore:
    """Runs on Redis, shared by every node (see the module docstring)."""

    kind = "redis"
    shared = True

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "skillrun:",
        node_id: str = "",
        retention_s: float = 7 * 86400.0,
        max_events: int | None = 100_000,
        cluster: bool = False,
        tail_events: int = 8192,
    ) -> None:
        self.url = url
        # Told each appended batch's duration (s) and event count (the metrics, as SQLite's).
        self.on_commit: Callable[[float, int], None] | None = None
        # Told the run whose events were refused because another node holds it now
        # (fencing, see ``_APPEND``): the run manager stops its engine task here.
        self.on_fenced: Callable[[str], None] | None = None
        self.cluster = cluster
        self.keys = Keys(prefix)
        self.node_id = node_id or "node-" + hashlib.sha256(f"{time.time_ns()}{id(self)}".encode()).hexdigest()[:12]
        self.retention_s = retention_s
        # The guard sits above the per-run cap plus the events that close a run.
        self.maxlen = (max_events or 1_000_000) + 10_000
        self._client: Client | None = None
        self._blocking: Client | None = None
        self.tail_events = tail_events
        self._tails: dict[str, _Tail] = {}
        self._appended: dict[str, int] = {}  # last seq handed to append, per run written here
        self._pending: list[tuple[str, EventRecord]] = []
        self._sending = False  # a batch is on its way (see ``flushed``)
        # Runs that began (True) or stopped (False) waiting for input, to send in order
        # with the writer's batches: (run_id, owner, waiting).
        self._marks: list[tuple[str, str, bool]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._writer: asyncio.Task[None] | None = None
        self._finishing: set[asyncio.Future[None]] = set()
        self.reachable = True  # as of the last command sent; see ``check``

    @property
    def client(self) -> Any:
        # Any: redis-py types each command as "result | Awaitable[result]" (one class
        # for sync and async), so every call site would need a cast anyway.
        if self._client is None:
            raise RuntimeError("the run store is closed")
        return self._client

    async def open(self) -> None:
        # The client belongs to the running loop: made here, never in __init__.
        self._client = connect(self.url, cluster=self.cluster)
        self._blocking = connect(self.url, cluster=self.cluster, blocking=True)
        if isinstance(self._blocking, RedisCluster):
            try:  # its slot map, which Pub/Sub needs before any command has run
                await self._blocking.initialize()
            except Exception:  # an outage at start is not fatal: requests get 503 until it ends
                log.exception("run store: Redis Cluster unreachable at start")
        self._closing = False
        try:
            await versioned(self.client, self.url, self.keys.prefix)
        except (RedisError, OSError) as exc:  # an outage at start is not fatal (see above)
            log.warning("run store: the keyspace's schema version was not checked (Redis unreachable): %s", exc)
        except SchemaTooNew:
            await self._client.aclose()
            await self._blocking.aclose()
            self._client = self._blocking = None
            raise
        self._writer = asyncio.create_task(self._write_loop(), name="skillrun-redis-writer")
        await self.check()

    async def check_keyspace(self) -> None:
        """The keyspace's schema version, checked on a client of its own (``skillrun serve``
        before its server starts: this store is opened later, on the server's loop)."""
        client = connect(self.url, cluster=self.cluster)
        try:
            await versioned(client, self.url, self.keys.prefix)
        finally:
            await client.aclose()

    @property
    def blocking(self) -> Any:
        """The client for blocked reads and Pub/Sub (see ``connect``)."""
        if self._blocking is None:
            raise RuntimeError("the run store is closed")
        return self._blocking

    def pubsub(self) -> Any:
        """A Pub/Sub connection (cancels between nodes; see ``runs.nodes``)."""
        return self.blocking.pubsub()

    async def check(self) -> bool:
        """Whether Redis answers now (readiness)."""
        try:
            await cast(Awaitable[Any], self.client.ping())
        except (RedisError, OSError):
            self.reachable = False
        else:
            self.reachable = True
        return self.reachable

    async def close(self) -> None:
        if self._writer is None:
            return
        self._closing = True
        self._wake.set()
        try:
            if not self._writer.done():
                await asyncio.wait_for(asyncio.shield(self._writer), 10)
        except TimeoutError:
            log.error("run store: Redis unreachable at close; %d event(s) not sent", len(self._pending))
            self._writer.cancel()
        self._writer = None
        if self._finishing:
            await asyncio.wait(self._finishing, timeout=5)
        for watch in [t.watcher for t in self._tails.values() if t.watcher is not None]:
            watch.cancel()
        client, self._client = self._client, None
        blocking, self._blocking = self._blocking, None
        for c in (client, blocking):
            if c is not None:
                await c.aclose()

    # -- create ----------------------------------------------------------------

    @_outage_is_unavailable
    async def create(self, run: RunRecord) -> RunRecord:
        c, k = self.client, self.keys
        idem = k.idem(run.owner, run.idempotency_key) if run.idempotency_key is not None else None
        if idem is not None:
            earlier = await self._idempotent(idem)
            if earlier is not None:
                return earlier
        async with c.pipeline(transaction=False) as pipe:
            pipe.incr(k.all("n"))
            pipe.hsetnx(k.run(run.run_id), "run_id", run.run_id)
            n, fresh = await pipe.execute()
        if not fresh:
            raise ValueError(f"run {run.run_id} exists")
        order = f"{ListCursor(run.created_at, run.run_id).encode()[:17]}-{int(n):012d}-{run.run_id}"
        record = {**_run_fields(run), "order": order, "node": self.node_id}
        if idem is not None:
            # The record is complete before the idempotency key names it: a loser of
            # the SET NX race always finds the winner's record.
            await c.hset(k.run(run.run_id), mapping=record)
            if not await c.set(idem, run.run_id, nx=True):
                await c.delete(k.run(run.run_id))
                earlier = await self._idempotent(idem)
                if earlier is None:
                    raise RuntimeError("idempotency key lost its run while being created")
                return earlier
        self._appended[run.run_id] = 0
        self._tails[run.run_id] = _Tail(0, local=True)
        async with c.pipeline(transaction=False) as pipe:
            if idem is None:
                pipe.hset(k.run(run.run_id), mapping=record)
            pipe.zadd(k.owner(run.owner, "runs"), {order: 0})
            pipe.zadd(k.all("runs"), {order: 0})
            pipe.sadd(k.owner(run.owner, "active"), run.run_id)
            pipe.sadd(k.all("active"), run.run_id)
            pipe.sadd(k.node(self.node_id, "runs"), run.run_id)
            await pipe.execute()
        return run.copy()

    async def _idempotent(self, idem: str) -> RunRecord | None:
        run_id = await self.client.get(idem)
        return await self.get(_text(run_id)) if run_id is not None else None

    # -- append: queued, sent by one writer task --------------------------------

    def append(self, run_id: str, event: EventRecord) -> None:
        if self._writer is None or self._closing:
            raise RuntimeError("the run store is closed")
        appended = self._appended.get(run_id)
        if appended is None:
            # A run from another node or an earlier process (its log being closed
            # here): the caller knows its last seq; XADD's id order guards the rest.
            appended = event.seq - 1
        if event.seq != appended + 1:
            raise ValueError(f"run {run_id}: event {event.seq} out of order")
        self._appended[run_id] = event.seq
        self._pending.append((run_id, event))
        self._wake.set()

    def note_waiting(self, run_id: str, owner: str, waiting: bool) -> None:
        """A run began (or stopped) waiting for input: it holds no running place
        meanwhile, on any node (sent by the writer task, never blocking the engine)."""
        self._marks.append((run_id, owner, waiting))
        self._wake.set()

    async def _send_marks(self) -> None:
        marks, self._marks = self._marks, []
        k = self.keys
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for run_id, owner, waiting in marks:
                    for key in (k.owner(owner, "waiting"), k.all("waiting")):
                        (pipe.sadd if waiting else pipe.srem)(key, run_id)
                await pipe.execute()
        except OUTAGE:
            self._marks = marks + self._marks  # kept, in order, for the next try
            raise

    @_outage_is_unavailable
    async def reserve_running(self, run_id: str, owner: str, max_of_key: int, max_total: int) -> tuple[int, int] | None:
        """Take a running place for ``run_id`` of ``owner`` on every node at once: None
        when taken, else (the owner's, all) running counts that refused it. Each limit is
        checked and taken in one script; a place taken of the owner's is given back when
        the global one is refused."""
        k = self.keys
        of_key = int(await self.client.eval(_RESERVE, 2, k.owner(owner, "active"), k.owner(owner, "waiting"),
                                            run_id, max_of_key))
        if of_key >= 0:
            return of_key, 0
        total = int(await self.client.eval(_RESERVE, 2, k.all("active"), k.all("waiting"), run_id, max_total))
        if total >= 0:
            await self.client.srem(k.owner(owner, "active"), run_id)
            return 0, total
        return None

    @_outage_is_unavailable
    async def release_running(self, run_id: str, owner: str) -> None:
        """Give back the place ``reserve_running`` took for a run that was not stored."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.srem(self.keys.owner(owner, "active"), run_id)
            pipe.srem(self.keys.all("active"), run_id)
            await pipe.execute()

    async def flushed(self, timeout: float) -> bool:
        """Wait until every appended event has been sent (or refused); False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._pending or self._sending:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def _write_loop(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if batch:
                began = time.perf_counter()
                self._sending = True
                try:
                    refused = await self._send(batch)
                except OUTAGE as exc:
                    # Kept, in order, ahead of anything appended meanwhile; sent again.
                    self._pending = batch + self._pending
                    self.reachable = False
                    if failures == 0:
                        log.error("run store: Redis unreachable (%s); %d event(s) kept to send again", exc, len(batch))
                    await asyncio.sleep(_RETRY_S[min(failures, len(_RETRY_S) - 1)])
                    failures += 1
                    self._wake.set()
                    continue
                finally:
                    self._sending = False
                if failures:
                    log.warning("run store: Redis reachable again; kept events sent")
                failures, self.reachable = 0, True
                if self.on_commit is not None:  # the metrics: one batch, its time and size
                    self.on_commit(time.perf_counter() - began, len(batch))
                self._publish(batch, refused)
            if self._marks:
                try:
                    await self._send_marks()
                except OUTAGE:
                    self.reachable = False
                    await asyncio.sleep(_RETRY_S[min(failures, len(_RETRY_S) - 1)])
                    failures += 1
                    self._wake.set()
                    continue
            if self._closing and not self._pending and not self._marks:
                return

    async def _send(self, batch: list[tuple[str, EventRecord]]) -> set[tuple[str, int]]:
        """Send a batch: one script call per run (all its keys share the run's hash tag,
        so this is Cluster-safe), all of them in one pipeline. Returns the events Redis
        refused.

        A script, not a pipeline of XADD and HSET: per event, redis-py spends ~40 µs
        packing a command and reading its reply, which capped a stream at a third of
        the SQLite store's events/s; one call per run and batch costs that once. And
        the record's projection is then written exactly when its event is taken."""
        k, now, ttl = self.keys, utc_now(), str(int(self.retention_s) + 1)
        runs: dict[str, list[EventRecord]] = {}
        for run_id, ev in batch:
            runs.setdefault(run_id, []).append(ev)
        async with self.client.pipeline(transaction=False) as pipe:
            for run_id, events in runs.items():
                args: list[str | int] = [self.maxlen, now, ttl, len(events)]
                args += [f"{ev.seq}\x1f{ev.type}\x1f{ev.data}" for ev in events]
                for ev in events:
                    change = projection(ev.seq, ev.type, ev.data)
                    if change.starts or change.result is not None or change.waits or change.resumed:
                        done = change.result is not None
                        waits = "r" if change.resumed else str(change.waits) if change.waits else ""
                        args += [ev.seq, int(change.starts), change.status if done else "",
                                 _dumps(change.result) if done else "", waits]
                args.append(self.node_id)  # fencing: refused if another node holds the run now
                pipe.eval(_APPEND, 2, k.log(run_id), k.run(run_id), *args)
            results = await pipe.execute(raise_on_error=False)
        refused: set[tuple[str, int]] = set()
        for (run_id, events), result in zip(runs.items(), results):
            if isinstance(result, OUTAGE):
                raise result
            if isinstance(result, Exception):
                log.error("run store: %d event(s) of run %s refused: %s", len(events), run_id, result)
                refused.update((run_id, ev.seq) for ev in events)
                continue
            bounced, fenced = {int(_text(seq)) for seq in result[0]}, bool(result[1])
            theirs = False  # once one is not ours, none after it can be (a log has no gaps)
            for ev in events:
                if ev.seq in bounced and (theirs or not await self._ours(run_id, ev)):
                    refused.add((run_id, ev.seq))
                    theirs = True
            if fenced and any((run_id, ev.seq) in refused for ev in events):
                self._fenced(run_id)
        return refused

    def _fenced(self, run_id: str) -> None:
        """Another node holds ``run_id`` now (it took the run over while this node's
        lease had lapsed): nothing more is sent for it, and its engine here is stopped."""
        log.warning("run store: run %s is held by another node now; this node's events for it are refused",
                    run_id)
        self._appended.pop(run_id, None)
        self._pending = [(r, ev) for r, ev in self._pending if r != run_id]
        if self.on_fenced is not None:
            self.on_fenced(run_id)

    async def _ours(self, run_id: str, ev: EventRecord) -> bool:
        """Whether a refused XADD's entry is this very event: sent before a connection
        broke, so it is there (with its projection: the script wrote both). Else another
        node wrote that id (it closed the log: a takeover) and Redis has the truth."""
        there = await self.client.xrange(self.keys.log(run_id), min=f"{ev.seq}-0", max=f"{ev.seq}-0")
        if there and self._event(*there[0]).data == ev.data:
            return True
        log.warning("run store: event %d of run %s refused: another node wrote the log", ev.seq, run_id)
        return False

    def _publish(self, batch: list[tuple[str, EventRecord]], refused: set[tuple[str, int]]) -> None:
        touched: dict[str, _Tail] = {}
        for run_id, ev in batch:
            if (run_id, ev.seq) in refused:
                tail = self._tails.get(run_id)
                if tail is not None and tail.local:
                    tail.local = False  # its followers here now read what Redis has (a watcher)
                    touched[run_id] = tail
                continue
            if ev.type == DONE:
                self._appended.pop(run_id, None)
                self._finish_soon(run_id)
            tail = self._known(run_id, ev)
            if tail is not None:
                touched[run_id] = tail
        for tail in touched.values():
            self._wake_followers(tail)

    def _known(self, run_id: str, ev: EventRecord) -> _Tail | None:
        """Event ``ev`` is in Redis: extend the run's tail, if this node keeps one."""
        tail = self._tails.get(run_id)
        if tail is None or ev.seq <= tail.last:
            return None  # nobody follows it here, or known already (sent here and read back)
        if ev.seq != tail.last + 1:
            tail.events.clear()  # a gap: the tail starts over (older events come from XRANGE)
        tail.events.append(ev)
        tail.last = ev.seq
        if len(tail.events) > 2 * self.tail_events:
            del tail.events[: len(tail.events) - self.tail_events]
        if ev.type == DONE:
            tail.closed = True
            # Late followers still find the tail for a while, then Redis.
            asyncio.get_running_loop().call_later(30.0, self._forget, run_id, tail)
        return tail

    @staticmethod
    def _wake_followers(tail: _Tail) -> None:
        tail.changed.notify()

    def _forget(self, run_id: str, tail: _Tail) -> None:
        if self._tails.get(run_id) is tail and tail.waiters == 0:
            del self._tails[run_id]
            tail.changed.notify()

    def _finish_soon(self, run_id: str) -> None:
        task = asyncio.ensure_future(self._finished(run_id))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _finished(self, run_id: str) -> None:
        """``settle`` until Redis takes it (a closed log left on the running indexes
        would hold a place of its owner's running-runs limit)."""
        attempt = 0
        while True:
            try:
                await self.settle(run_id)
                return
            except OUTAGE:
                await asyncio.sleep(_RETRY_S[min(attempt, len(_RETRY_S) - 1)])
                attempt += 1

    async def settle(self, run_id: str) -> None:
        """A closed log's bookkeeping: off the running indexes, onto the purge index.
        Idempotent; a survivor calls it too for a dead node's runs that had ended."""
        k = self.keys
        raw = await cast(Awaitable[list[Any]], self.client.hmget(
            k.run(run_id), ["owner", "order", "idempotency_key", "finished_at", "node"]))
        owner, order, key, finished_at, node = (_text(v) if v is not None else None for v in raw)
        if owner is not None and finished_at is None:
            return  # not closed (yet): it still holds its places
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.srem(k.all("active"), run_id)
            pipe.srem(k.all("waiting"), run_id)
            if owner is not None:
                pipe.srem(k.owner(owner, "active"), run_id)
                pipe.srem(k.owner(owner, "waiting"), run_id)
            if node is not None:
                pipe.srem(k.node(node, "runs"), run_id)
            if owner is not None and order is not None and finished_at is not None:
                entry = _dumps([run_id, owner, order, key])
                pipe.zadd(k.all("finished"), {entry: _epoch_ms(finished_at)})
                if key is not None:
                    pipe.expire(k.idem(owner, key), int(self.retention_s) + 1)
            await pipe.execute()

    # -- reads -----------------------------------------------------------------

    @_outage_is_unavailable
    async def get(self, run_id: str) -> RunRecord | None:
        raw = await cast(Awaitable[dict[Any, Any]], self.client.hgetall(self.keys.run(run_id)))
        return _record(raw)

    @_outage_is_unavailable
    async def read(self, run_id: str, after: int, limit: int = 1000) -> list[EventRecord]:
        after = max(after, 0)
        tail = self._tails.get(run_id)
        if tail is not None and tail.events and after >= tail.events[0].seq - 1:
            start = after - (tail.events[0].seq - 1)
            if start < len(tail.events) or tail.closed or tail.local:
                return tail.events[start : start + limit]
            if start == len(tail.events) and tail.watcher is not None and not tail.watcher.done():
                # Caught up with a tail its watcher keeps (XREAD BLOCK): what comes next
                # reaches the tail first and wakes the follower. No XRANGE per follower
                # and event: with 100 followers that was 100 round trips an event
                # (bench/scale.py (b), 2 busy cores: cross-node p50 9.2-9.7 -> 6.3-6.9 ms).
                return []
        # Older than the tail, or past what this node knows: Redis has the truth
        # (another node's XADD, a takeover's closing events, is there before any wake-up).
        entries = await cast(Awaitable[list[Any]], self.client.xrange(
            self.keys.log(run_id), min=f"({after}-0", max="+", count=limit))
        return [self._event(eid, fields) for eid, fields in entries]

    @staticmethod
    def _event(eid: Any, fields: Mapping[Any, Any]) -> EventRecord:
        f = {_text(k): v for k, v in fields.items()}
        return EventRecord(int(_text(eid).split("-", 1)[0]), _text(f["t"]), _text(f["d"]))

    async def wait(self, run_id: str, after: int, timeout: float | None) -> bool:
        tail = self._tails.get(run_id)
        if tail is None:
            # Anchored by its watcher at the log's real end: a follower's cursor is no
            # proof of what exists (Last-Event-ID may name an id not written yet).
            tail = self._tails[run_id] = _Tail(0)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        tail.waiters += 1
        try:
            while not (tail.last > after or tail.closed):
                if not tail.local and (tail.watcher is None or tail.watcher.done()):
                    tail.watcher = asyncio.create_task(self._watch(run_id, tail), name=f"skillrun-watch-{run_id}")
                left = None if deadline is None else deadline - loop.time()
                if (left is not None and left <= 0) or not await wait_changed(tail.changed, left):
                    return False
            return True
        finally:
            tail.waiters -= 1

    async def _watch(self, run_id: str, tail: _Tail) -> None:
        """One ``XREAD BLOCK`` loop per run another node writes, while followers wait here."""
        failures, first = 0, True
        try:
            while not tail.closed and (first or tail.waiters > 0):
                try:
                    if first:
                        await self._anchor(run_id, tail)
                        if await self._finished_past(run_id, tail):
                            break
                    first = False
                    got = await self.blocking.xread({self.keys.log(run_id): f"{tail.last}-0"},
                                                    count=self.tail_events, block=int(_BLOCK_S * 1000))
                    if not got and await self._finished_past(run_id, tail):
                        break
                except OUTAGE:
                    # Redis is away: followers heartbeat meanwhile; read again when it is back.
                    self.reachable, failures = False, failures + 1
                    await asyncio.sleep(_RETRY_S[min(failures, len(_RETRY_S) - 1)])
                    continue
                failures = 0
                for _stream, entries in got or ():
                    for eid, fields in entries:
                        self._known(run_id, self._event(eid, fields))
                if got:
                    self._wake_followers(tail)
        finally:
            if tail.waiters == 0 and not tail.local and self._tails.get(run_id) is tail and not tail.closed:
                del self._tails[run_id]

    async def _anchor(self, run_id: str, tail: _Tail) -> None:
        """Start a new tail at the log's last entry (one XREVRANGE), not at its first."""
        top = await self.client.xrevrange(self.keys.log(run_id), max="+", min="-", count=1)
        if top:
            seq = self._event(*top[0]).seq
            if seq > tail.last:
                tail.events.clear()
                tail.last = seq
                self._wake_followers(tail)

    async def _finished_past(self, run_id: str, tail: _Tail) -> bool:
        """Whether the run is finished with nothing after what the tail knows (then: closed)."""
        if await self.client.hget(self.keys.run(run_id), "finished_at") is None:
            return False
        if await self.client.xread({self.keys.log(run_id): f"{tail.last}-0"}, count=1):
            return False  # finished, but the watcher has events to catch up on first
        tail.closed = True
        self._wake_followers(tail)
        return True

    @_outage_is_unavailable
    async def list_runs(
        self,
        owner: str | None,
        *,
        statuses: Collection[str] | None = None,
        skill_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> RunPage:
        index = self.keys.all("runs") if owner is None else self.keys.owner(owner, "runs")
        bound = await self._bound(ListCursor.decode(cursor), owner)
        found: list[RunRecord] = []
        while len(found) <= limit:
            members = await cast(Awaitable[list[Any]], self.client.zrevrangebylex(
                index, bound, "-", start=0, num=max(_SCAN_BATCH, limit + 1)))
            if not members:
                break
            orders = [_text(m) for m in members]
            runs = await self._get_many([o.rsplit("-", 1)[-1] for o in orders])
            gone = [o for o, r in zip(orders, runs) if r is None]
            if gone:
                await cast(Awaitable[int], self.client.zrem(index, *gone))  # expired: drop from the index
            for run in runs:
                if run is None or (statuses is not None and run.status not in statuses):
                    continue
                if skill_id is not None and run.skill_id != skill_id:
                    continue
                found.append(run)
            bound = "(" + orders[-1]
        page = found[:limit]
        last = page[-1] if len(found) > limit else None
        return RunPage(page, ListCursor(last.created_at, last.run_id).encode() if last else None)

    async def _bound(self, after: ListCursor | None, owner: str | None) -> str:
        """Where a page starts: below the cursor's run if it is still the caller's, else
        below its time (the run is gone, or never was the caller's)."""
        if after is None:
            return "+"
        raw = await cast(Awaitable[list[Any]], self.client.hmget(self.keys.run(after.run_id), ["owner", "order"]))
        run_owner, order = (_text(v) if v is not None else None for v in raw)
        if order is not None and (owner is None or run_owner == owner):
            return "(" + order
        return "(" + ListCursor(after.created_at, after.run_id).encode()[:17] + "-"

    async def _get_many(self, run_ids: list[str]) -> list[RunRecord | None]:
        async with self.client.pipeline(transaction=False) as pipe:
            for run_id in run_ids:
                pipe.hgetall(self.keys.run(run_id))
            raws = await pipe.execute()
        return [_record(raw) for raw in raws]

    async def adopt(self, run_id: str) -> None:
        """This node runs ``run_id`` from now on (a dead node's run it resumes): cancels
        are routed here, and this node's death is what a survivor looks for."""
        k = self.keys
        await cast(Awaitable[Any], self.client.hset(k.run(run_id), "node", self.node_id))
        await cast(Awaitable[Any], self.client.sadd(k.node(self.node_id, "runs"), run_id))

    @_outage_is_unavailable
    async def delete(self, run_id: str) -> bool:
        """A finished run, its log and its idempotency key (``DELETE /v1/runs/{id}``), as
        ``purge`` removes one; False when it is unknown. The caller checked it ended."""
        k = self.keys
        raw = await cast(Awaitable[list[Any]], self.client.hmget(
            k.run(run_id), ["owner", "order", "idempotency_key", "finished_at"]))
        owner, order, key, finished_at = (_text(v) if v is not None else None for v in raw)
        if owner is None:
            return False
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.delete(k.run(run_id))
            pipe.delete(k.log(run_id))
            if key is not None:
                pipe.delete(k.idem(owner, key))
            if order is not None:
                pipe.zrem(k.owner(owner, "runs"), order)
                pipe.zrem(k.all("runs"), order)
                if finished_at is not None:
                    pipe.zrem(k.all("finished"), _dumps([run_id, owner, order, key]))
            await pipe.execute()
        self._tails.pop(run_id, None)
        return True

    @_outage_is_unavailable
    async def count_runs(self, owner: str) -> int:
        return int(await cast(Awaitable[int], self.client.zcard(self.keys.owner(owner, "runs"))))

    @_outage_is_unavailable
    async def count_running(self, owner: str) -> tuple[int, int]:
        """Running runs of ``owner`` and of all owners, on every node (one round trip):
        unfinished, and not waiting for input (as this node's own counts, ``quotas``)."""
        k = self.keys
        async with self.client.pipeline(transaction=False) as pipe:
            for active, waiting in ((k.owner(owner, "active"), k.owner(owner, "waiting")),
                                    (k.all("active"), k.all("waiting"))):
                pipe.scard(active)
                pipe.sintercard(2, [active, waiting])
            of_owner, of_owner_waiting, total, total_waiting = await pipe.execute()
        return int(of_owner) - int(of_owner_waiting), int(total) - int(total_waiting)

    @_outage_is_unavailable
    async def purge(self, finished_before: str) -> int:
        k, cutoff, gone = self.keys, _epoch_ms(finished_before), 0
        if self._finishing:  # runs this node just closed go onto the purge index first
            await asyncio.wait(list(self._finishing), timeout=5)
        while True:
            entries = await cast(Awaitable[list[Any]], self.client.zrangebyscore(
                k.all("finished"), "-inf", f"({cutoff}", start=0, num=_SCAN_BATCH))
            if not entries:
                return gone
            async with self.client.pipeline(transaction=False) as pipe:
                for entry in entries:
                    run_id, owner, order, key = json.loads(_text(entry))
                    pipe.delete(k.run(run_id))
                    pipe.delete(k.log(run_id))
                    if key is not None:
                        pipe.delete(k.idem(owner, key))
                    pipe.zrem(k.owner(owner, "runs"), order)
                    pipe.zrem(k.all("runs"), order)
                    pipe.zrem(k.all("finished"), entry)
                    self._tails.pop(run_id, None)
                await pipe.execute()
            gone += len(entries)
