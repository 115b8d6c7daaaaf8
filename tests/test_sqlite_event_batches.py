"""Schema version 4 (issue 12): the SQLite store keeps a run's log one row per commit
batch (``event_batches``: the run's events of one group commit as one text), not one row
per event. A read is cut from those rows at any cursor and limit; a database written by
the release before (``fixtures/sqlite_v3_67206a8.sql``, see its header; and the older
fixtures through every migration) reads the same events after its migration; and an
append under a seq already stored still fails its commit, as the old table's primary
key on ``(run_id, seq)`` made it."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from conftest import Server
from skillrun.runs import EventRecord, RunRecord, SqliteStore, follow
from skillrun.runs.sqlite import SCHEMA_VERSION, _records, _split
from sse_util import check_order, parse_sse
from test_sqlite_schema import old_database, user_version

ROOT = Path(__file__).resolve().parent.parent
KEY = "key-a-0123456789"
HEADERS = {"x-api-key": KEY}
V3 = "sqlite_v3_67206a8.sql"
V3_COMPLETED = "run_01a2325b4bf06d972b76fe9b"  # demo.ticker stream, 50 steps: 103 events
V3_LEFT_RUNNING = "run_01a2325b4bfae545809cedb7"  # 20 ticks of 200 ms, killed with kill -9 after 1.5 s (16 events)


def _run(run_id: str) -> RunRecord:
    return RunRecord(run_id=run_id, owner="key_a", skill_id="demo.ticker", trace_id="t", channel="http",
                     inputs={"steps": 1}, created_at="2026-01-01T00:00:00.000Z")


def _ev(seq: int, type_: str = "step_start", **payload: Any) -> EventRecord:
    return EventRecord(seq, type_, json.dumps({"type": type_, "seq": seq, **payload}))


def _batches(db: Path, run_id: str) -> list[tuple[int, int]]:
    with sqlite3.connect(db) as conn:
        return [(int(first), int(last)) for first, last in conn.execute(
            "SELECT first_seq, last_seq FROM event_batches WHERE run_id = ? ORDER BY last_seq", (run_id,))]


def test_a_batch_text_splits_back_into_its_events_at_any_cursor_bound_and_count() -> None:
    """The encoding is lengths, not a separator: types and data with newlines, spaces,
    digits, non-ASCII (one and two UTF-16 units), empty strings come back as written."""
    datas = ['{"a":"x\\ny"}', "line\nbreak\n", " 12 34\n", "", "é ü 中文 😀", '{"deep":{"list":[1,2,3]}}', "\n"]
    types = ["step_start", "odd type", "", "t\nt", "step_completed", "😀", "done"]
    events = [EventRecord(40 + i, t, d) for i, (t, d) in enumerate(zip(types, datas))]
    text = _records(tuple(types), tuple(datas))
    for after in range(35, 50):
        for upto in (39, 40, 42, 46, 47, 100):
            for want in (1, 2, 5, 100):
                expected = [e for e in events if after < e.seq <= upto][:want]
                assert _split(text, 40, after, upto, want) == expected, (after, upto, want)


@pytest.mark.anyio
async def test_reads_cut_batches_at_the_cursor_and_the_limit(tmp_path: Path) -> None:
    """Three commits of one run are three rows (1-10, 11-25, 26-30); a read from every
    cursor with every limit gives exactly the events after it, in order, across rows:
    from the database (a reopened store) and, for a run written here whose tail no
    longer holds them, from the database with the live run's bound."""
    db = tmp_path / "runs.db"
    store = SqliteStore(db, tail_events=2)
    await store.open()
    try:
        await store.create(_run("r1"))
        events = [_ev(seq, data="é" * seq) for seq in range(1, 30)] + [_ev(30, "done", status="completed", outputs={})]
        for lo, hi in ((1, 10), (11, 25), (26, 30)):
            for ev in events[lo - 1 : hi]:
                store.append("r1", ev)
            assert await store.wait("r1", hi - 1, 5)
        assert _batches(db, "r1") == [(1, 10), (11, 25), (26, 30)]
        for after in range(0, 26):  # the tail holds the last few: these come from the database
            for limit in (1, 3, 7, 15, 16, 1000):
                assert await store.read("r1", after, limit) == events[after : after + limit], (after, limit)
    finally:
        await store.close()
    reopened = SqliteStore(db)
    await reopened.open()
    try:
        for after in range(-1, 32):
            for limit in (1, 3, 7, 15, 16, 1000):
                assert await reopened.read("r1", after, limit) == events[max(after, 0) : max(after, 0) + limit]
        assert [e async for page in follow(reopened, "r1", 4) for e in page] == events[4:]
    finally:
        await reopened.close()


@pytest.mark.anyio
async def test_a_batch_larger_than_a_row_holds_is_cut_into_rows(tmp_path: Path) -> None:
    """2,500 events in one commit are rows of 1,000, 1,000 and 500 (a read parses the whole
    header of a row it cuts, so a row stays small enough for a page), read back whole."""
    db = tmp_path / "runs.db"
    store = SqliteStore(db)
    await store.open()
    try:
        await store.create(_run("r1"))
        events = [_ev(seq) for seq in range(1, 2501)]
        for ev in events:
            store.append("r1", ev)
        assert await store.wait("r1", 2499, 5)
        assert _batches(db, "r1") == [(1, 1000), (1001, 2000), (2001, 2500)]
    finally:
        await store.close()
    reopened = SqliteStore(db)
    await reopened.open()
    try:
        for after in (0, 999, 1000, 1500, 2499, 2500):
            assert await reopened.read("r1", after) == events[after : after + 1000]
    finally:
        await reopened.close()


@pytest.mark.anyio
@pytest.mark.parametrize("fixture", ["sqlite_v0_7acb512.sql", "sqlite_v1_e6ef8cc.sql", V3])
async def test_an_old_database_reads_the_same_events_after_its_migration(tmp_path: Path, fixture: str) -> None:
    """Every run of each fixture, read from every cursor (limits 1, 7 and 1000) through the
    migrated store, is exactly the old table's rows, read where they are: the migration
    moves none (a large store's first start would wait for it), and a finished run's
    delete takes its old rows too."""
    db = old_database(tmp_path / "runs.db", fixture)
    with sqlite3.connect(db) as conn:
        before: dict[str, list[EventRecord]] = {}
        for run_id, seq, type_, data in conn.execute("SELECT run_id, seq, type, data FROM events ORDER BY run_id, seq"):
            before.setdefault(run_id, []).append(EventRecord(seq, type_, data))
    assert before and user_version(db) < SCHEMA_VERSION
    store = SqliteStore(db)
    await store.open()
    try:
        assert user_version(db) == SCHEMA_VERSION
        for run_id, events in before.items():
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            for after in range(0, len(events) + 1):
                for limit in (1, 7, 1000):
                    assert await store.read(run_id, after, limit) == events[after : after + limit]
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == sum(map(len, before.values()))
            assert conn.execute("SELECT COUNT(*) FROM event_batches").fetchone()[0] == 0
        finished = [r for r in before if (await store.get(r)) is not None and (await store.get(r)).finished_at]
        assert finished
        assert await store.delete(finished[0])
        assert await store.read(finished[0], 0) == []
    finally:
        await store.close()
    with sqlite3.connect(db) as conn:
        left = {r for (r,) in conn.execute("SELECT DISTINCT run_id FROM events")}
    assert left == set(before) - {finished[0]}


@pytest.mark.anyio
async def test_an_append_under_a_stored_seq_fails_its_commit_and_writes_nothing(tmp_path: Path) -> None:
    """A run from before this process (what recovery appends to): an event under a seq
    its stored log already has, the last or one before it, fails the whole commit (a
    create in the same batch gets the error) and nothing of it is stored, as the
    primary key on (run_id, seq) did when a row was an event; the next seq is taken.
    The same for the migrated run the v3 fixture's server left running."""
    db = tmp_path / "runs.db"
    store = SqliteStore(db)
    await store.open()
    await store.create(_run("r1"))
    events = [_ev(seq) for seq in range(1, 11)]
    for ev in events:
        store.append("r1", ev)
    await store.close()

    for stored in (10, 5):
        store = SqliteStore(db)
        await store.open()
        try:
            store.append("r1", _ev(stored, note="again"))
            store.append("r1", _ev(stored + 1, note="again"))
            with pytest.raises(sqlite3.IntegrityError, match=f"run r1: event {stored} appended"):
                await store.create(_run(f"other-{stored}"))
            assert await store.get(f"other-{stored}") is None
        finally:
            await store.close()
        store = SqliteStore(db)
        await store.open()
        try:
            assert await store.read("r1", 0) == events
        finally:
            await store.close()

    store = SqliteStore(db)
    await store.open()
    try:
        store.append("r1", _ev(11))
        store.append("r1", _ev(12))
        assert await store.wait("r1", 11, 5)
        assert await store.read("r1", 9) == [events[9], _ev(11), _ev(12)]
    finally:
        await store.close()

    v3 = old_database(tmp_path / "v3.db", V3)
    store = SqliteStore(v3)
    await store.open()
    try:
        store.append(V3_LEFT_RUNNING, _ev(16))
        with pytest.raises(sqlite3.IntegrityError, match=f"event 16 appended, but its stored log already goes to 16"):
            await store.create(_run("other"))
    finally:
        await store.close()
    store = SqliteStore(v3)
    await store.open()
    try:
        assert [e.seq for e in await store.read(V3_LEFT_RUNNING, 0)] == list(range(1, 17))
    finally:
        await store.close()


def test_a_version_3_database_is_migrated_and_served_and_its_left_running_run_resumed(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """The v3 fixture under `skillrun serve`: user_version 3 -> 4 at start; the 50-step
    stream's log is served whole and after a Last-Event-ID; the run the killed server
    left running goes on from its log (appends after its stored events, which stay in
    the old rows) and completes with every id once, in order."""
    # The run left running was started by demo.ticker as this release bundles it: its
    # skill_start carries today's digest, or the resume would rightly refuse a
    # definition that changed since (98b1804511c0f66e at 67206a8).
    ticker = (ROOT / "service" / "skillrun" / "skills" / "demo.ticker.yaml").read_text()
    digest = hashlib.sha256(ticker.encode()).hexdigest()[:16]
    db = old_database(tmp_path / ".skillrun" / "skillrun.db", V3, {"98b1804511c0f66e": digest})
    assert user_version(db) == 3
    server = server_factory(env={"SKILLRUN_API_KEYS": KEY, "SKILLRUN_RUN_RETENTION": "36500d"})
    assert user_version(db) == SCHEMA_VERSION >= 4
    assert f"schema migrated from version 3 to {SCHEMA_VERSION}" in server.log()

    def get(path: str, **kw: Any) -> httpx.Response:
        r = httpx.get(server.url + path, headers={**HEADERS, **kw.pop("headers", {})}, timeout=60, **kw)
        assert r.status_code == 200, r.text
        return r

    frames = parse_sse(get(f"/v1/runs/{V3_COMPLETED}/events").text)[0]
    assert [int(f.id or 0) for f in frames] == list(range(1, 104))
    check_order([f.json for f in frames])
    resumed = parse_sse(get(f"/v1/runs/{V3_COMPLETED}/events", headers={"Last-Event-ID": "40"}).text)[0]
    assert [f.data for f in resumed] == [f.data for f in frames[40:]]

    run = get(f"/v1/runs/{V3_LEFT_RUNNING}", params={"wait": 30}).json()
    assert run["status"] == "completed" and run["result"]["outputs"] == {"ticks": 20}
    frames = parse_sse(get(f"/v1/runs/{V3_LEFT_RUNNING}/events").text)[0]
    ids = [int(f.id or 0) for f in frames]
    assert ids == list(range(1, len(ids) + 1)) and len(ids) > 16
    assert frames[-1].json["type"] == "done"
    # Its first 16 events stay in the old rows; what it wrote after the upgrade is in batches.
    with sqlite3.connect(db) as conn:
        old = [seq for (seq,) in conn.execute("SELECT seq FROM events WHERE run_id = ? ORDER BY seq", (V3_LEFT_RUNNING,))]
    assert old == list(range(1, 17)) and _batches(db, V3_LEFT_RUNNING)[0][0] == 17


def test_a_read_the_guards_look_and_a_delete_are_index_searches(tmp_path: Path) -> None:
    """EXPLAIN QUERY PLAN: each is a search of the (run_id, last_seq) key, never a scan."""
    from skillrun.runs.sqlite import migrate

    db = tmp_path / "runs.db"
    conn = sqlite3.connect(db, isolation_level=None)
    migrate(conn, db)
    key = "sqlite_autoindex_event_batches_1"
    for sql, args, plan in [
        ("SELECT first_seq, records FROM event_batches WHERE run_id = ? AND last_seq > ? ORDER BY last_seq",
         ("r", 1), f"SEARCH event_batches USING INDEX {key} (run_id=? AND last_seq>?)"),
        ("SELECT MAX(last_seq) FROM event_batches WHERE run_id = ?", ("r",),
         f"SEARCH event_batches USING COVERING INDEX {key} (run_id=?)"),
        ("DELETE FROM event_batches WHERE run_id = ?", ("r",), f"SEARCH event_batches USING INDEX {key} (run_id=?)"),
    ]:
        assert [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args)] == [plan], sql
    conn.close()
