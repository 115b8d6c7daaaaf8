"""The SQLite run store: one file, WAL, group commit, followers woken by notification.

How it keeps the stream fast and memory bounded:

- ``append`` only queues the event and wakes the writer task. The writer takes
  everything queued so far and commits it in one transaction (group commit), so
  storage never paces the engine, however fast it emits. A run's queued events
  are one list, and one operation of the queue: the commit and what follows it
  (``_publish``) handle a run's events a list at a time, with no Python step per
  event (a step per event in both cost ~2 µs an event of bench/inproc.py's
  ``long`` case: ~14.5 against ~12.5 µs of CPU an event in all). The commit runs on the
  event loop: in WAL mode with ``synchronous=NORMAL`` a commit is an append to
  the WAL in the page cache, no fsync, under 1 µs an event (the batch's events of
  one run are one row: see the next point); on a worker thread the
  same commit waited for the GIL behind the engine and paced the stream (55k
  against 62k events/s in bench/runs.py). The disk work, checkpointing the WAL
  into the database, is taken off the commit (``wal_autocheckpoint = 0``) and
  done every ``checkpoint_s`` in two parts, both on worker threads. The copy
  (``_copy_wal``: the WAL's frames into the database, and the syncs, 100-150 ms
  for a second's commits at full speed here) runs while commits go on: a
  stream's events do not wait for it. Then, with no commit running (appends keep
  queueing), the frames committed meanwhile are copied and the WAL is started
  over (``_checkpoint``: the first write after a complete checkpoint rewrites
  the WAL's header and fsyncs it, done by a write of its own there, so every
  group commit runs on the loop and no fsync ever does). Only the pause can
  start the WAL over: a checkpoint racing the commits never catches up with
  its end, and the WAL grew without bound under steady load (1 GB in 8 s at
  full speed). It is skipped while commits are waiting, unless the WAL has
  grown past ``restart_frames`` (32 MiB, ~1 s of commits at full speed): a
  quiet store pauses when idle. The pause's work is 9-37 ms here; back-to-back
  10,000-step streams stop for 65-100 ms at a pause (72-280 ms at Python's 5 ms
  switch interval, at which the pause's thread waited 16-126 ms for the GIL
  behind the busy loop: ``skillrun serve`` sets 1 ms, ``cli._prompt_thread_handoffs``),
  against 140-280 ms when every commit waited out the whole checkpoint
  (bench/checkpoint.py).
- A run's log is stored a row per commit batch (``event_batches``, schema 4), not a
  row per event: the run's events of one group commit as one text (``_records``:
  their lengths, then their types and data run together). A row an event cost the
  loop ~2.5-3 µs an event, most of a busy run's commit; a row a batch costs ~0.6 µs
  an event with the text's making (2.1 against 0.6 µs for batches of 90 of a real
  run's events; bench/inproc.py's ``long`` case, ~90 events a batch: ~15 against
  ~12-13.5 µs of CPU an event in all). A read seeks the first row whose ``last_seq``
  is past the cursor and cuts rows at both ends (``_split``); events stored before
  schema 4 stay a row each in ``events``, read first (see ``_MIGRATIONS``).
- An event becomes visible to followers once its transaction has committed, so
  what a client has seen is always on disk (a resume after a crash never finds
  a different event under an id it already has). ``synchronous=NORMAL`` in WAL
  mode survives a killed process; only a power cut can lose the last commits.
- Each run written by this process keeps a bounded tail of its committed events
  in memory, and a change notification (``store.Changed``) every commit that touches it fires:
  live followers read from the tail and are woken by notification. A follower
  further behind than the tail reads from the database, a page at a time, so
  memory per stream is one page, not a queue of everything it has not read.
  A run quiet for ``tail_quiet_s`` (waiting for a slow call or for input) lets
  its tail go: its followers have read it, and one that comes later reads the
  database (10,000 waiting runs held ~2 KB of delivered events each).
- The run record is a projection of the log, updated in the same transaction
  as the events (see ``store``), so status and log never disagree after a crash.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any, Awaitable, Callable, Collection

from ..events import DONE, projections
from .filelock import FileLock
from .store import (
    TERMINAL, Changed, EventRecord, ListCursor, RunPage, RunRecord, apply_change, at_once, utc_now, wait_changed,
)

log = logging.getLogger(__name__)

# The schema's history. ``_MIGRATIONS[i]`` takes a database from version ``i`` to
# ``i + 1``; the version is SQLite's ``PRAGMA user_version`` (0 in a new file). Version
# 0 is also every database written before the schema had a version (0.1.0 as first
# released, e.g. at commit 7acb512): migration 1 is that release's schema, written ``IF NOT EXISTS``, so it creates a new
# file's tables and leaves an old file's as they are, then stamps version 1.
#
# How a change to what is stored ships (see also README, "Running more than one
# process"): append one migration here (statements, run in one transaction with the
# version stamp, so a crash leaves the old version whole); never edit a released
# one; and add a database written by the release before the change to the tests
# (``tests/fixtures/``), which open every such fixture and serve its runs. The Redis
# store follows the same convention: its keyspace's version is the integer at
# ``<prefix>schema_version``, migrated forward at start by its own list.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS runs (
          n               INTEGER PRIMARY KEY AUTOINCREMENT,
          run_id          TEXT NOT NULL UNIQUE,
          owner           TEXT NOT NULL,
          skill_id        TEXT NOT NULL,
          trace_id        TEXT NOT NULL,
          channel         TEXT NOT NULL,
          status          TEXT NOT NULL,
          inputs          TEXT NOT NULL,
          result          TEXT,
          created_at      TEXT NOT NULL,
          started_at      TEXT,
          finished_at     TEXT,
          idempotency_key TEXT,
          request_hash    TEXT,
          UNIQUE (owner, idempotency_key)
        )""",
        "CREATE INDEX IF NOT EXISTS runs_by_owner ON runs (owner, n)",
        "CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status)",
        "CREATE INDEX IF NOT EXISTS runs_by_finished ON runs (finished_at)",
        """CREATE TABLE IF NOT EXISTS events (
          run_id TEXT NOT NULL,
          seq    INTEGER NOT NULL,
          type   TEXT NOT NULL,
          data   TEXT NOT NULL,
          PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID""",
    ),
    # 2: steps that wait for input. ``waits`` counts a run's open waits (``step_waiting``
    # without the event that ends it): the run is ``waiting`` while it is above 0.
    ("ALTER TABLE runs ADD COLUMN waits INTEGER NOT NULL DEFAULT 0",),
    # 3: nothing a request does may cost more as runs are stored (bench/stored.py).
    # ``run_counts`` holds each key's stored runs, kept by triggers in the transaction
    # that inserts or deletes a run: the stored-runs quota reads one row where it
    # counted the key's runs (an index scan of every one: ~50 ms at 1,000,000 runs,
    # asked again after every purge or delete that removed a run). ``runs_by_owner_status``
    # and ``runs_by_owner_skill`` serve a list filtered by status or by skill from the
    # matching runs only, newest first; before, such a filter read the key's runs (or
    # all runs of that status, every key's) until a page was found: the whole key when
    # the status or skill is rare.
    (
        "CREATE TABLE run_counts (owner TEXT PRIMARY KEY, runs INTEGER NOT NULL) WITHOUT ROWID",
        "INSERT INTO run_counts (owner, runs) SELECT owner, COUNT(*) FROM runs GROUP BY owner",
        """CREATE TRIGGER runs_counted AFTER INSERT ON runs BEGIN
          INSERT INTO run_counts (owner, runs) VALUES (NEW.owner, 1)
          ON CONFLICT (owner) DO UPDATE SET runs = runs + 1;
        END""",
        """CREATE TRIGGER runs_uncounted AFTER DELETE ON runs BEGIN
          UPDATE run_counts SET runs = runs - 1 WHERE owner = OLD.owner;
        END""",
        "CREATE INDEX runs_by_owner_status ON runs (owner, status, n)",
        "CREATE INDEX runs_by_owner_skill ON runs (owner, skill_id, n)",
    ),
    # 4: a run's log is stored one row per commit batch, not one row per event (issue 12).
    # A group commit holds tens to hundreds of a busy run's events; a row for each cost
    # ~2.5-3 us of the loop's time an event. ``event_batches`` holds, for each run and
    # commit, that commit's events of the run (``first_seq`` to ``last_seq``, consecutive)
    # as one text (``_records``); a read is a range of the key from the first row whose
    # ``last_seq`` is past the cursor. A rowid table, not WITHOUT ROWID as ``events`` was:
    # its rows are kilobytes (an index b-tree keeps at most ~1 KB of a row on its page and
    # spills the rest to overflow pages it fills badly): bench/stored.py's 1,000,000 runs
    # take 9.9 GiB (12.8 WITHOUT ROWID, 11.8 a row an event), and its inserts were ~20%
    # cheaper in a micro-benchmark of a real run's batches. The old rows stay in
    # ``events``, where reads find them first (``_old_rows``), deletes and purges remove
    # them, and retention empties the table in its time: moving them at the first start
    # took ~6 minutes for 9,000,000 events (bench/stored.py's 1,000,000 runs, 11.8 GiB)
    # on the 2-core test machine, the server not ready meanwhile, and grew the file to
    # 19.8 GiB. A run from before the upgrade that goes on after it (recovery) has its
    # first events there and the rest here.
    (
        """CREATE TABLE event_batches (
          run_id    TEXT NOT NULL,
          last_seq  INTEGER NOT NULL,
          first_seq INTEGER NOT NULL,
          records   TEXT NOT NULL,
          PRIMARY KEY (run_id, last_seq)
        )""",
    ),
    # 5: a run's insert no longer fires a trigger (issue 12): ``_commit`` adds a commit's
    # new runs to ``run_counts`` itself, one upsert for each key with runs in the commit,
    # in the same transaction (the trigger's statement cost ~6 us of each run's ~20 us
    # insert, measured on the 2-core test machine). A delete still fires
    # ``runs_uncounted``: deletes and purges are rare, and they remove runs in more ways.
    ("DROP TRIGGER runs_counted",),
)

# The schema version this release writes.
SCHEMA_VERSION = len(_MIGRATIONS)


class SchemaTooNew(RuntimeError):
    """The database was written by a newer release, whose schema this one does not know."""

    def __init__(self, db: Path | str, found: int, known: int) -> None:
        self.db, self.found, self.known = db, found, known
        super().__init__(
            f"the run store {db} has schema version {found}, but this release of Skillrun knows "
            f"versions up to {known}: it was written by a newer release. Run that release (or a "
            "newer one) on it, or give this one another --db"
        )


def migrate(conn: sqlite3.Connection, db: Path, migrations: tuple[tuple[str, ...], ...] = _MIGRATIONS) -> int:
    """Bring the schema to ``len(migrations)``; returns the version found.

    The caller holds the store's lock, so no other process migrates meanwhile.
    """
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found > len(migrations):
        raise SchemaTooNew(db, found, len(migrations))
    for version in range(found, len(migrations)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in migrations[version]:
                conn.execute(statement)
            # PRAGMA user_version takes no parameters; the version is an int we made.
            conn.execute(f"PRAGMA user_version = {version + 1:d}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    if found < len(migrations):
        log.info("run store %s: schema migrated from version %d to %d", db, found, len(migrations))
    return found


_RUN_COLUMNS = (
    "run_id, owner, skill_id, trace_id, channel, status, inputs, result, created_at, "
    "started_at, finished_at, idempotency_key, request_hash"
)

# The status as ``events.project_waits`` makes it from the open waits.
_WAITING_STATUS = (
    "UPDATE runs SET status = CASE WHEN status = 'running' AND waits > 0 THEN 'waiting' "
    "WHEN status = 'waiting' AND waits = 0 THEN 'running' ELSE status END WHERE run_id = ?"
)

# A commit's new runs of one key, into its stored-runs count (schema 5: ``_commit``).
_COUNT_CREATED = (
    "INSERT INTO run_counts (owner, runs) VALUES (?, ?) ON CONFLICT (owner) DO UPDATE SET runs = runs + excluded.runs"
)

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _records(types: tuple[str, ...], datas: tuple[str, ...]) -> str:
    """One ``event_batches`` row's text: consecutive events of one run (their seqs are the
    row's ``first_seq`` on), as ``"<type lengths> <data lengths>\\n<types><datas>"``: the
    lengths (characters) space separated, then every type and every data run together.

    Lengths, not a separator: the data is any JSON text. Built by one ``%`` format and a
    few joins over the batch (no Python step per event but the lists' own; a ``str``
    call a length cost ~0.1 µs an event more), so it costs the commit far less than the
    SQLite row an event it replaces; ``_split`` takes it apart."""
    lengths = ("%d " * (2 * len(types)))[:-1] % (*map(len, types), *map(len, datas))
    return f"{lengths}\n{''.join(types)}{''.join(datas)}"


def _split(records: str, first: int, after: int, upto: int, want: int) -> list[EventRecord]:
    """The events of a ``_records`` text (whose first event is ``first``) past ``after``
    and up to ``upto``, at most ``want`` of them."""
    head = records.index("\n")
    lens = list(map(int, records[:head].split(" ")))
    count = len(lens) // 2
    start = max(after + 1 - first, 0)
    stop = min(count, upto + 1 - first, start + want)
    if start >= stop:
        return []
    at = list(accumulate(lens, initial=head + 1))  # where each type, then each data, begins
    types = [records[a:b] for a, b in zip(at[start:stop], at[start + 1 : stop + 1])]
    datas = [records[a:b] for a, b in zip(at[count + start : count + stop], at[count + start + 1 : count + stop + 1])]
    return list(map(EventRecord, range(first + start, first + stop), types, datas))


def _row_to_run(row: tuple[Any, ...]) -> RunRecord:
    (run_id, owner, skill_id, trace_id, channel, status, inputs, result, created_at,
     started_at, finished_at, key, request_hash) = row
    return RunRecord(
        run_id=run_id,
        owner=owner,
        skill_id=skill_id,
        trace_id=trace_id,
        channel=channel,
        inputs=json.loads(inputs),
        created_at=created_at,
        status=status,
        started_at=started_at,
        finished_at=finished_at,
        result=json.loads(result) if result is not None else None,
        idempotency_key=key,
        request_hash=request_hash,
    )


@dataclass(slots=True)
class _Live:
    """A run this process writes: its record, its committed tail, its wake-up."""

    run: RunRecord | None  # None for a run from before this process (see append)
    appended: int = 0  # last seq handed to append
    last: int = 0  # last committed seq
    # The stored log is known to end before the next seq committed: true for a run
    # created here; for a run from before this process, once ``_commit`` has looked.
    checked: bool = True
    closed: bool = False  # ``done`` committed
    tail: list[EventRecord] = field(default_factory=list)
    changed: Changed = field(default_factory=Changed)
    # Appended, not yet taken by the writer (None: none); also in ``_pending``, as the run's op.
    queued: list[EventRecord] | None = None


@dataclass(slots=True)
class _Create:
    run: RunRecord
    future: asyncio.Future[RunRecord]


@dataclass(slots=True)
class _Purge:
    before: str
    future: asyncio.Future[int]


@dataclass(slots=True)
class _Delete:
    run_id: str
    future: asyncio.Future[bool]


# A run's events in the queue: ``(run_id, live, events)``, one op a run a batch (``append``).
_Events = tuple[str, _Live, list[EventRecord]]
_Op = _Events | _Create | _Purge | _Delete

_ROW_EVENTS = 1000  # the most events in one ``event_batches`` row (see ``_batch_rows``)
_NO_END = 2**63 - 1  # ``read``'s bound for a run not written here: every stored event


class SqliteStore:
    kind = "sqlite"
    shared = False  # one process owns the file

    def __init__(
        self, path: str | Path, *, tail_events: int = 2048, keep_live_s: float = 30.0, checkpoint_s: float = 1.0,
        tail_quiet_s: float = 2.0, restart_frames: int = 8192,
    ) -> None:
        self.path = Path(path)
        self.checkpoint_s = checkpoint_s
        # The WAL's length (frames, a page each: 32 MiB of 4 KiB pages) past which a
        # checkpoint starts it over even while commits wait (``_end_checkpoint``).
        self.restart_frames = restart_frames
        self.tail_events = tail_events
        self.tail_quiet_s = tail_quiet_s
        self.keep_live_s = keep_live_s
        self._live: dict[str, _Live] = {}
        # Runs whose tail holds events, by the loop time of their last commit, oldest first.
        self._tailed: dict[str, float] = {}
        self._pending: list[_Op] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._writer: asyncio.Task[None] | None = None
        self._conn: sqlite3.Connection | None = None
        self._readers = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._file_lock = FileLock(self.path)
        # The ``events`` table holds rows stored before schema 4 (see ``_MIGRATIONS``): read
        # first, deleted with their runs. Looked at when opened; a database begun at
        # schema 4, or whose old rows retention has purged, never asks it again.
        self._old_rows = False
        # Told each group commit's duration (s) and operation count (the metrics).
        self.on_commit: Callable[[float, int], None] | None = None
        # The database's and the WAL's descriptors that ``_copy_wal`` syncs, open until
        # ``close``: see there.
        self._sync_fds: tuple[int, int] | None = None

    # -- connections -------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._readers, "conn", None)
        if conn is None:
            conn = self._connect()
            self._readers.conn = conn
            with self._lock:
                self._reader_conns.append(conn)
        return conn

    async def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            return self._reader().execute(sql, params).fetchall()

        return await asyncio.to_thread(run)

    def claim(self) -> None:
        """Own the file: take its lock (``StoreInUse`` if another process has it), then
        bring its schema to this release's (``SchemaTooNew`` if it is newer).

        ``open`` claims too; ``skillrun serve`` claims first, so either refusal is one
        line on stderr before the server starts. Idempotent while held.
        """
        if self._file_lock.held:
            return
        self._file_lock.acquire()
        try:
            conn = self._connect()
            try:
                migrate(conn, self._file_lock.db)
            finally:
                conn.close()
        except BaseException:
            self._file_lock.release()
            raise

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._closing = False  # a store may be opened again after close (a second lifespan)

        def setup() -> sqlite3.Connection:
            self.claim()
            conn = self._connect()
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # see the module docstring
            # The WAL file is reused from its start after a checkpoint; past this, shrink it.
            conn.execute("PRAGMA journal_size_limit = 67108864")
            self._old_rows = conn.execute("SELECT 1 FROM events LIMIT 1").fetchone() is not None
            return conn

        self._conn = await asyncio.to_thread(setup)
        self._writer = asyncio.create_task(self._write_loop(), name="skillrun-sqlite-writer")

    def _checkpoint(self, mode: str = "PASSIVE") -> None:
        """Called by the writer task only, with no commit running (see the module docstring).

        When the checkpoint copied the whole WAL, the WAL is also started over here, on
        this worker thread, by a write that changes nothing (the schema version set to
        itself): the first write after a complete checkpoint is the one that rewrites
        the WAL's header and fsyncs it. Done by the next group commit instead, that
        commit had to run on a thread too, and there every statement waited for the
        GIL behind the busy event loop (up to 5 ms each): a commit of a few hundred
        creates took seconds, and every request waiting on it with it."""
        assert self._conn is not None
        conn = self._conn
        busy, frames, copied = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        if busy or frames <= 0 or copied != frames:
            return  # readers still need the WAL: it goes on growing until the next one
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(f"PRAGMA user_version = {version:d}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        if self._writer is None:
            return
        self._closing = True
        self._wake.set()
        await self._writer  # commits everything queued
        self._writer = None
        assert self._conn is not None
        conn, self._conn = self._conn, None

        def finish() -> None:
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                conn.close()

        await asyncio.to_thread(finish)
        with self._lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        if self._sync_fds is not None:  # every connection closed: no lock of SQLite's left to drop
            for fd in self._sync_fds:
                os.close(fd)
            self._sync_fds = None
        self._file_lock.release()

    # -- writes: everything goes through one queue and one connection -------

    async def create(self, run: RunRecord) -> RunRecord:
        future: asyncio.Future[RunRecord] = asyncio.get_running_loop().create_future()
        self._enqueue(_Create(run.copy(), future))
        stored = await future
        if stored.run_id == run.run_id:
            self._live[run.run_id] = _Live(stored.copy())
        return stored

    def append(self, run_id: str, event: EventRecord) -> None:
        live = self._live.get(run_id)
        if live is None:
            # A run from before this process (recovery closing its log): the
            # caller knows its last seq; ``_commit`` checks it against the stored
            # log (``_check_after``) before the first batch it writes.
            live = self._live[run_id] = _Live(None, event.seq - 1, event.seq - 1, checked=False)
        if event.seq != live.appended + 1:
            raise ValueError(f"run {run_id}: event {event.seq} out of order")
        if self._writer is None or self._closing:
            raise RuntimeError("the run store is closed")
        live.appended = event.seq
        # Every event comes here: it joins its run's queued events, and only a run's first
        # event of a batch is an op (``_commit`` and ``_publish`` take a run's events
        # together, with no Python step per event but the lists' own).
        queued = live.queued
        if queued is not None:
            queued.append(event)
            return
        live.queued = queued = [event]
        # ``_enqueue`` inline: the writer is woken by the first op of a batch; while ops
        # are pending, it has been woken and not yet taken them.
        pending = self._pending
        if not pending:
            self._wake.set()
        pending.append((run_id, live, queued))

    async def purge(self, finished_before: str) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._enqueue(_Purge(finished_before, future))
        return await future

    async def delete(self, run_id: str) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._enqueue(_Delete(run_id, future))
        return await future

    async def count_runs(self, owner: str) -> int:
        # One row, kept in each transaction that stores or deletes runs (migrations 3 and
        # 5): the same cost however many runs are stored.
        rows = await self._query("SELECT runs FROM run_counts WHERE owner = ?", (owner,))
        return int(rows[0][0]) if rows else 0

    async def check(self) -> bool:
        """The writer is alive and the file answers a read (a disk gone bad fails here)."""
        if self._writer is None or self._writer.done():
            return False
        try:
            await self._query("SELECT 1 FROM runs LIMIT 1", ())
        except sqlite3.Error as exc:
            # Probes come every few seconds: one line each, no traceback.
            log.warning("run store %s: the readiness read failed: %s", self.path, exc)
            return False
        return True

    def _enqueue(self, op: _Op) -> None:
        if self._writer is None or self._closing:
            raise RuntimeError("the run store is closed")
        self._pending.append(op)
        self._wake.set()

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        dirty = False  # commits in the WAL since the last checkpoint
        checkpoint_at = 0.0
        # A checkpoint's copy of the WAL, on a worker thread while commits go on (see
        # ``_copy_wal``); its end (with commits paused) comes before the next commit.
        copying: asyncio.Future[int] | None = None
        commits = copy_from = 0  # group commits so far; when the copy began
        while True:
            due = checkpoint_at if dirty and copying is None else math.inf
            if self._tailed:
                due = min(due, next(iter(self._tailed.values())) + self.tail_quiet_s)
            if due < math.inf:
                await wait_changed(self._wake, max(0.0, due - loop.time()))
            else:
                await self._wake.wait()
            self._wake.clear()
            if copying is not None and (copying.done() or self._closing):
                if await self._end_checkpoint(copying, commits != copy_from):
                    dirty = False
                else:
                    checkpoint_at = loop.time() + self.checkpoint_s
                copying = None
            ops, self._pending = self._pending, []
            count = len(ops)  # operations, every event one (``on_commit``)
            for op in ops:  # a run's events, taken now: its next append opens its next op
                if type(op) is tuple:
                    op[1].queued = None
                    count += len(op[2]) - 1
            if ops:
                now = utc_now()
                began = time.perf_counter()
                try:
                    outcome = self._commit(ops, now)
                except Exception as exc:  # a broken disk must not hang every follower
                    log.exception("run store: commit of %d operation(s) failed", len(ops))
                    self._fail(ops, exc)
                else:
                    if self.on_commit is not None:
                        self.on_commit(time.perf_counter() - began, count)
                    self._publish(ops, outcome, now)
                    commits += 1
                    if not dirty:
                        checkpoint_at = loop.time() + self.checkpoint_s
                    dirty = True
            if self._tailed:
                self._let_quiet_tails_go(loop.time())
            if self._closing and not self._pending:
                return
            if dirty and copying is None and loop.time() >= checkpoint_at:
                copying = asyncio.ensure_future(asyncio.to_thread(self._copy_wal))
                copy_from = commits
                copying.add_done_callback(lambda _: self._wake.set())

    async def _end_checkpoint(self, copying: asyncio.Future[int], committed: bool) -> bool:
        """After a checkpoint's copy (``_copy_wal``; ``committed``: commits went on
        meanwhile), the WAL started over (``_checkpoint``, with commits paused: the frames
        committed meanwhile copied, the WAL's header rewritten and synced) unless commits
        are waiting, and went on during the copy, and the WAL is shorter than
        ``restart_frames``: then the pause is left to a later checkpoint (False)."""
        try:
            frames = await copying
        except (sqlite3.Error, OSError):
            log.exception("run store: checkpoint failed (the WAL keeps the data)")
            frames = self.restart_frames
        if committed and self._pending and not self._closing and frames < self.restart_frames:
            return False
        try:
            await asyncio.to_thread(self._checkpoint)
        except sqlite3.Error:
            log.exception("run store: checkpoint failed (the WAL keeps the data)")
        return True

    def _copy_wal(self) -> int:
        """A checkpoint's bulk, on a worker thread's own connection while the writer goes
        on committing: the WAL's frames copied into the database (a second's commits at
        full speed: ~7,000 frames), then both files synced. SQLite syncs the database
        only after a checkpoint that reached the WAL's end, which the commits meanwhile
        moved, and the pause would sync the WAL's frames committed meanwhile: synced
        here, the pause has only what came after to sync and copy (measured: 9-37 ms
        of work, against 100-120 ms for the whole checkpoint, and 40-50 ms without
        these syncs). Returns the WAL's length in frames when the copy began.

        The files are synced through descriptors opened once and kept until ``close``:
        closing any descriptor of a file drops every POSIX lock this process holds on
        it, SQLite's own. Another process that then read the database and closed it
        found no other connection and deleted the WAL, while the writer went on
        committing into the deleted file: unseen by other readers until the next
        checkpoint, lost if the server died before it (the regression test:
        ``test_sqlite_another_process_sees_every_commit_after_a_checkpoint``)."""
        frames = int(self._reader().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
        if self._sync_fds is None:
            wal = os.open(f"{self.path}-wal", os.O_RDONLY)  # first: the one that could be missing
            self._sync_fds = (os.open(self.path, os.O_RDONLY), wal)
        for fd in self._sync_fds:
            os.fsync(fd)
        return frames

    def _commit(self, ops: list[Any], now: str) -> dict[int, Any]:
        """One transaction for the whole batch; returns what creates and purges found,
        and, for a run's events (an op each run), the changes to its run record in log
        order, if any (by the op's index)."""
        assert self._conn is not None
        conn = self._conn
        outcome: dict[int, Any] = {}
        rows: list[tuple[str, int, int, str]] = []  # ``event_batches``: one a run (see ``_batch_rows``)
        started: list[tuple[str, str]] = []
        finished: list[tuple[str, str | None, str, str]] = []
        waits: list[tuple[int, int, str]] = []  # (resumed, delta, run) in log order
        created: dict[str, int] = {}  # key -> runs this commit stored (``run_counts``)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for i, op in enumerate(ops):
                if type(op) is tuple:
                    run_id, live, batch = op
                    seqs, types, datas = zip(*batch)
                    rows += self._batch_rows(conn, run_id, live, seqs, types, datas)
                    changes = projections(seqs[0], types, datas)
                    if not changes:  # most batches: nothing more to do here
                        continue
                    outcome[i] = changes  # for ``_publish``: computed once
                    for change in changes:
                        if change.starts:
                            started.append((now, run_id))
                        if change.waits or change.resumed:
                            waits.append((int(change.resumed), change.waits, run_id))
                        if change.result is not None:
                            finished.append((change.status, _dumps(change.result), now, run_id))
                elif isinstance(op, _Create):
                    stored = outcome[i] = self._insert_run(conn, op.run)
                    if stored is op.run:  # new, not the earlier run of its idempotency key
                        created[stored.owner] = created.get(stored.owner, 0) + 1
                elif isinstance(op, _Delete):
                    outcome[i] = self._delete_run(conn, op.run_id)
                else:
                    gone = [r for (r,) in conn.execute("SELECT run_id FROM runs WHERE finished_at < ?", (op.before,))]
                    conn.executemany("DELETE FROM event_batches WHERE run_id = ?", [(r,) for r in gone])
                    if self._old_rows:
                        conn.executemany("DELETE FROM events WHERE run_id = ?", [(r,) for r in gone])
                    conn.executemany("DELETE FROM runs WHERE run_id = ?", [(r,) for r in gone])
                    outcome[i] = gone
            if created:
                conn.executemany(_COUNT_CREATED, created.items())
            conn.executemany(
                "INSERT INTO event_batches (run_id, last_seq, first_seq, records) VALUES (?, ?, ?, ?)", rows
            )
            conn.executemany(
                "UPDATE runs SET status = 'running', started_at = ? WHERE run_id = ? AND status = 'queued'", started
            )
            for resumed, delta, run_id in waits:  # rare: a statement each, in order
                conn.execute("UPDATE runs SET waits = MAX(0, (CASE WHEN ? THEN 0 ELSE waits END) + ?) WHERE run_id = ?",
                             (resumed, delta, run_id))
                conn.execute(_WAITING_STATUS, (run_id,))
            conn.executemany(
                "UPDATE runs SET status = ?, result = ?, finished_at = ? WHERE run_id = ?", finished
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return outcome

    def _batch_rows(
        self, conn: sqlite3.Connection, run_id: str, live: _Live,
        seqs: tuple[int, ...], types: tuple[str, ...], datas: tuple[str, ...],
    ) -> list[tuple[str, int, int, str]]:
        """The ``event_batches`` rows of one run's events in this commit (their fields,
        a tuple each): one, or one for each ``_ROW_EVENTS`` of a batch larger than that
        (a read parses the whole header of each row it cuts: bounded, a page of a huge
        batch stays cheap)."""
        first, last = seqs[0], seqs[-1]
        if last - first + 1 != len(seqs):  # ``append`` keeps them consecutive
            raise ValueError(f"run {run_id}: events {first} to {last} are not consecutive")
        if not live.checked:
            self._check_after(conn, run_id, first)
            live.checked = True
        if len(seqs) <= _ROW_EVENTS:
            return [(run_id, last, first, _records(types, datas))]
        return [
            (run_id, seqs[min(i + _ROW_EVENTS, len(seqs)) - 1], seqs[i],
             _records(types[i : i + _ROW_EVENTS], datas[i : i + _ROW_EVENTS]))
            for i in range(0, len(seqs), _ROW_EVENTS)
        ]

    @staticmethod
    def _check_after(conn: sqlite3.Connection, run_id: str, first: int) -> None:
        """A run from before this process gets events only after its stored log's last.

        What the primary key on ``(run_id, seq)`` guarded when a row was an event: an
        append under a seq already stored fails the commit (as that key's violation
        did) instead of writing a second event with that id. The key on ``(run_id,
        last_seq)`` only catches a batch ending where another ended, so this looks: one
        seek. A run created here needs no look: its log began in this process, and
        ``append`` keeps its seqs consecutive from 1."""
        row = conn.execute("SELECT MAX(last_seq) FROM event_batches WHERE run_id = ?", (run_id,)).fetchone()
        stored = row[0]
        if stored is None:  # none written since schema 4: its log may be in the old rows
            stored = conn.execute("SELECT MAX(seq) FROM events WHERE run_id = ?", (run_id,)).fetchone()[0]
        if stored is not None and stored >= first:
            raise sqlite3.IntegrityError(
                f"run {run_id}: event {first} appended, but its stored log already goes to {stored}"
            )

    def _delete_run(self, conn: sqlite3.Connection, run_id: str) -> bool:
        """Only a finished run: its ``done`` was committed by an earlier batch (a
        caller saw the run end before asking), so the status here is current."""
        terminal = sorted(TERMINAL)
        cur = conn.execute(
            f"DELETE FROM runs WHERE run_id = ? AND status IN ({', '.join('?' * len(terminal))})",
            (run_id, *terminal),
        )
        if cur.rowcount != 1:
            return False
        conn.execute("DELETE FROM event_batches WHERE run_id = ?", (run_id,))
        if self._old_rows:
            conn.execute("DELETE FROM events WHERE run_id = ?", (run_id,))
        return True

    def _insert_run(self, conn: sqlite3.Connection, run: RunRecord) -> RunRecord:
        cur = conn.execute(
            f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (owner, idempotency_key) DO NOTHING",
            (
                run.run_id, run.owner, run.skill_id, run.trace_id, run.channel, run.status,
                _dumps(run.inputs), _dumps(run.result) if run.result is not None else None,
                run.created_at, run.started_at, run.finished_at, run.idempotency_key, run.request_hash,
            ),
        )
        if cur.rowcount == 1:
            return run
        row = conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE owner = ? AND idempotency_key = ?",
            (run.owner, run.idempotency_key),
        ).fetchone()
        return _row_to_run(row)

    def _publish(self, ops: list[Any], outcome: dict[int, Any], now: str) -> None:
        """After a commit: extend tails, update live records, wake followers, settle futures."""
        touched: list[tuple[str, _Live]] = []  # a run's events are one op: each run once
        for i, op in enumerate(ops):
            if type(op) is tuple:
                run_id, live, batch = op
                if run_id not in self._live or self._live[run_id] is not live:
                    continue  # deleted or purged meanwhile: nobody reads this one
                tail = live.tail
                tail += batch
                if len(tail) > 2 * self.tail_events:
                    del tail[: len(tail) - self.tail_events]
                ev = batch[-1]
                live.last = ev.seq
                changes = outcome.get(i)
                if live.run is not None and changes is not None:
                    for change in changes:
                        apply_change(live.run, change, now)
                if ev.type == DONE:  # a log's last event
                    live.closed = True
                    # Late followers still find the tail for a while, then the database.
                    asyncio.get_running_loop().call_later(self.keep_live_s, self._forget, run_id, live)
                touched.append((run_id, live))
            elif isinstance(op, _Purge):
                for run_id in outcome[i]:
                    self._live.pop(run_id, None)
                if not op.future.done():
                    op.future.set_result(len(outcome[i]))
            elif isinstance(op, _Delete):
                if outcome[i]:
                    self._live.pop(op.run_id, None)
                if not op.future.done():
                    op.future.set_result(outcome[i])
            elif not op.future.done():
                op.future.set_result(outcome[i])
        at = asyncio.get_running_loop().time()
        tailed = self._tailed
        for run_id, live in touched:
            live.changed.notify()
            tailed.pop(run_id, None)  # to the end: the order is of last commits
            tailed[run_id] = at

    def _let_quiet_tails_go(self, now: float) -> None:
        """Empty the tails of runs with no commit for ``tail_quiet_s`` (module docstring)."""
        cutoff = now - self.tail_quiet_s
        tailed = self._tailed
        while tailed:
            run_id, at = next(iter(tailed.items()))
            if at > cutoff:
                return
            del tailed[run_id]
            live = self._live.get(run_id)
            if live is not None:
                live.tail = []

    def _fail(self, ops: list[Any], exc: Exception) -> None:
        for op in ops:
            if not isinstance(op, tuple) and not op.future.done():
                op.future.set_exception(exc)

    def _forget(self, run_id: str, live: _Live) -> None:
        if self._live.get(run_id) is live:
            del self._live[run_id]
            live.changed.notify()  # nobody should be waiting; never strand one who is

    # -- reads ---------------------------------------------------------------

    async def get(self, run_id: str) -> RunRecord | None:
        live = self._live.get(run_id)
        if live is not None and live.run is not None:
            return live.run.copy()
        rows = await self._query(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,))
        return _row_to_run(rows[0]) if rows else None

    async def read(self, run_id: str, after: int, limit: int = 1000) -> list[EventRecord]:
        after = max(after, 0)
        live = self._live.get(run_id)
        if live is not None:
            if after >= live.last:
                return []
            if live.tail and after >= live.tail[0].seq - 1:
                start = after - (live.tail[0].seq - 1)
                return live.tail[start : start + limit]
        # Only what was committed when the caller asked; later events come by notification.
        upto = live.last if live is not None else _NO_END

        def run() -> list[EventRecord]:
            reader = self._reader()
            out: list[EventRecord] = []
            cursor = after
            if self._old_rows:  # events stored before schema 4, a row each: they come first
                out = [EventRecord(*r) for r in reader.execute(
                    "SELECT seq, type, data FROM events WHERE run_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                    (run_id, after, upto, limit),
                )]
                if len(out) >= limit:
                    return out
                if out:
                    cursor = out[-1].seq
            # The rows from the one holding ``cursor + 1`` on, as many as ``limit`` needs:
            # a row holds a whole batch, so it is cut at both ends.
            cur = reader.execute(
                "SELECT first_seq, records FROM event_batches WHERE run_id = ? AND last_seq > ? ORDER BY last_seq",
                (run_id, cursor),
            )
            try:
                for first, records in cur:
                    if first > upto:
                        break
                    out += _split(records, first, cursor, upto, limit - len(out))
                    if len(out) >= limit:
                        break
            finally:
                cur.close()  # ends the statement (and its read snapshot) now
            return out

        return await asyncio.to_thread(run)

    def wait(self, run_id: str, after: int, timeout: float | None) -> Awaitable[bool]:
        live = self._live.get(run_id)
        if live is None:
            return self._wait_unwritten(run_id, timeout)
        if live.last > after or live.closed:
            return at_once(True)
        # The change's own wait, with no coroutine of this method around it: an idle
        # stream waits here as long as its run is quiet (bench/stream.py (d)).
        return live.changed.wait_for(timeout)

    async def _wait_unwritten(self, run_id: str, timeout: float | None) -> bool:
        run = await self.get(run_id)
        if run is not None and run.finished_at is not None:
            return True  # closed: read finds the rest, or nothing
        # Not written here and not finished: no notification can come, so
        # look again after the timeout (the caller heartbeats meanwhile).
        await asyncio.sleep(timeout if timeout is not None else 1.0)
        return False

    async def list_runs(
        self,
        owner: str | None,
        *,
        statuses: Collection[str] | None = None,
        skill_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> RunPage:
        after = ListCursor.decode(cursor)
        where: list[str] = []
        params: list[str | int] = []
        if owner is not None:
            where.append("owner = ?")
            params.append(owner)
        if skill_id is not None:
            where.append("skill_id = ?")
            params.append(skill_id)
        if after is not None:
            before = await self._cursor_n(after, owner)
            if before is not None:
                where.append("n < ?")
                params.append(before)
            else:  # that run is gone (or never was the caller's): resume by time
                where.append("created_at < ?")
                params.append(after.created_at)
        sql, args = self._list_sql(where, params, None if statuses is None else sorted(set(statuses)), limit + 1)
        rows = await self._query(sql, args)
        page = rows[:limit]
        runs = []
        for row in page:
            run = _row_to_run(row[1:])
            live = self._live.get(run.run_id)
            runs.append(live.run.copy() if live is not None and live.run is not None else run)
        last = runs[-1] if len(rows) > limit else None
        return RunPage(runs, ListCursor(last.created_at, last.run_id).encode() if last else None)

    @staticmethod
    def _list_sql(
        where: list[str], params: list[str | int], statuses: list[str] | None, limit: int
    ) -> tuple[str, tuple[str | int, ...]]:
        """The newest ``limit`` runs matching ``where``, in one of ``statuses`` if given.

        One status is one range of ``runs_by_owner_status`` (or ``runs_by_status``),
        already newest first. Several are a page from each range, merged: ``status IN
        (...)`` would read every run of those statuses to sort them (or scan the key's
        runs for them), a cost that grows with what is stored.
        """

        def select(extra: list[str]) -> str:
            clauses = where + extra
            sql = f"SELECT n, {_RUN_COLUMNS} FROM runs"
            if clauses:
                sql += " WHERE " + " AND ".join(clauses)
            return sql + " ORDER BY n DESC LIMIT ?"

        if statuses is None:
            return select([]), (*params, limit)
        if not statuses:
            return select(["0"]), (*params, limit)  # no status asked for: nothing matches
        if len(statuses) == 1:
            return select(["status = ?"]), (*params, statuses[0], limit)
        parts = " UNION ALL ".join(f"SELECT * FROM ({select(['status = ?'])})" for _ in statuses)
        args: list[str | int] = []
        for status in statuses:
            args += [*params, status, limit]
        return f"{parts} ORDER BY n DESC LIMIT ?", (*args, limit)

    async def _cursor_n(self, after: ListCursor, owner: str | None) -> int | None:
        """The row number of the cursor's run, if it is still there and the caller's."""
        sql, params = "SELECT n FROM runs WHERE run_id = ?", [after.run_id]
        if owner is not None:
            sql += " AND owner = ?"
            params.append(owner)
        rows = await self._query(sql, tuple(params))
        return int(rows[0][0]) if rows else None
