"""Cost must not grow with what is stored (issue 12): the stored-runs count a start
asks for is one row the database keeps (schema version 3), a list filtered by skill
or status reads an index range of the matching runs, and one filtered by several
statuses a page of each, not every run of the key.

A database written by the release before (schema version 2: the v1 fixture, see its
header, brought to version 2 by that release's migrations) is migrated at open with
each key's runs counted. Since schema version 5 a run's insert fires no trigger: the
commit that stores runs counts them; the v4 fixture (see its header) is migrated and
served, its runs counted."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import httpx

import pytest

from conftest import Server
from skillrun.runs import EventRecord, RunRecord, RunStore, SqliteStore
from skillrun.runs.sqlite import _MIGRATIONS, SCHEMA_VERSION, migrate
from stores import STORES, store_for
from test_sqlite_schema import old_database, user_version

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parent.parent


def _run(run_id: str, owner: str = "key_a") -> RunRecord:
    return RunRecord(run_id=run_id, owner=owner, skill_id="demo.ticker", trace_id="t", channel="http",
                     inputs={"steps": 1}, created_at="2026-01-01T00:00:00.000Z")


def _ev(seq: int, type_: str, **payload: Any) -> EventRecord:
    return EventRecord(seq, type_, json.dumps({"type": type_, **payload}))


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunStore]:
    s = store_for(request, tmp_path)
    await s.open()
    yield s
    await s.close()


def _version_2_database(path: Path) -> dict[str, int]:
    """The v1 fixture at schema version 2, as the release before this change left it; its runs per owner."""
    old_database(path, "sqlite_v1_e6ef8cc.sql")
    with sqlite3.connect(path, isolation_level=None) as conn:
        migrate(conn, path, _MIGRATIONS[:2])
        return dict(conn.execute("SELECT owner, COUNT(*) FROM runs GROUP BY owner").fetchall())


async def test_a_version_2_database_is_migrated_with_each_keys_stored_runs_counted(tmp_path: Path) -> None:
    """user_version 2 -> 3 at open: every key's count is its stored runs; a new run adds
    one, an idempotent repeat none, a delete and a purge take theirs away."""
    db = tmp_path / "runs.db"
    before = _version_2_database(db)
    assert user_version(db) == 2 and before and SCHEMA_VERSION >= 3
    store = SqliteStore(db)
    await store.open()
    try:
        assert user_version(db) == SCHEMA_VERSION
        assert {owner: await store.count_runs(owner) for owner in before} == before
        owner = next(iter(before))
        assert await store.count_runs("a-key-with-no-runs") == 0
        keyed = replace(_run("new-1", owner), idempotency_key="k", request_hash="h")
        await store.create(keyed)
        await store.create(replace(keyed, run_id="new-2"))  # the same key: the first run, nothing stored
        await store.create(_run("other", "key_new"))
        assert await store.count_runs(owner) == before[owner] + 1
        assert await store.count_runs("key_new") == 1
        store.append("new-1", _ev(1, "done", status="completed", outputs={}))
        assert await store.wait("new-1", 0, 5)
        assert await store.delete("new-1") is True
        assert await store.count_runs(owner) == before[owner]
        # The fixture's finished runs go; the one it left running stays.
        with sqlite3.connect(db) as conn:
            unfinished = Counter(o for (o,) in conn.execute(
                "SELECT owner FROM runs WHERE finished_at IS NULL AND run_id != 'other'"))
        assert await store.purge("2999-01-01T00:00:00.000Z") == sum(before.values()) - sum(unfinished.values()) > 0
        assert {o: await store.count_runs(o) for o in before} == {o: unfinished[o] for o in before}
        assert await store.count_runs("key_new") == 1
    finally:
        await store.close()


async def test_the_runs_one_commit_stores_are_each_counted_without_a_trigger(tmp_path: Path) -> None:
    """Schema 5: a run's insert fires no trigger; the commit adds its new runs to each
    key's count (several keys, an idempotent repeat in the same commit counted once)."""
    store = SqliteStore(tmp_path / "runs.db")
    commits: list[int] = []
    store.on_commit = lambda seconds, count: commits.append(count)
    await store.open()
    try:
        keyed = replace(_run("k1"), idempotency_key="k", request_hash="h")
        await asyncio.gather(
            *(store.create(_run(f"a{i}")) for i in range(5)), *(store.create(_run(f"b{i}", "key_b")) for i in range(3)),
            store.create(keyed), store.create(replace(keyed, run_id="k2")),
        )
        assert commits == [10]  # all in one commit
        assert (await store.count_runs("key_a"), await store.count_runs("key_b")) == (6, 3)
        with sqlite3.connect(tmp_path / "runs.db") as conn:
            assert [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")] == [
                "runs_uncounted"]
            assert dict(conn.execute("SELECT owner, COUNT(*) FROM runs GROUP BY owner").fetchall()) == {
                "key_a": 6, "key_b": 3}
    finally:
        await store.close()


V4 = "sqlite_v4_627e38e.sql"
V4_KEY = "key-a-0123456789"
V4_LEFT_RUNNING = "run_01a235a159ac70abe4513b5f"  # 20 ticks of 200 ms, killed with kill -9 after 1.5 s


def test_a_version_4_database_is_migrated_and_served_with_its_runs_counted(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """The v4 fixture (see its header) under `skillrun serve`: user_version 4 -> 5 at
    start, the insert trigger dropped; its key's count is its 3 runs, the run the killed
    server left running completes, and each new run adds one."""
    # As in the v3 test: the left running run resumes under today's demo.ticker (its
    # skill_start's digest, 98b1804511c0f66e at 627e38e, made today's).
    ticker = (ROOT / "service" / "skillrun" / "skills" / "demo.ticker.yaml").read_text()
    digest = hashlib.sha256(ticker.encode()).hexdigest()[:16]
    db = old_database(tmp_path / ".skillrun" / "skillrun.db", V4, {"98b1804511c0f66e": digest})
    assert user_version(db) == 4
    server = server_factory(env={"SKILLRUN_API_KEYS": V4_KEY, "SKILLRUN_RUN_RETENTION": "36500d",
                                 "SKILLRUN_MAX_STORED_RUNS_PER_KEY": "5"})
    assert user_version(db) == SCHEMA_VERSION >= 5
    assert f"schema migrated from version 4 to {SCHEMA_VERSION}" in server.log()
    headers = {"x-api-key": V4_KEY}
    run = httpx.get(f"{server.url}/v1/runs/{V4_LEFT_RUNNING}", params={"wait": 30}, headers=headers, timeout=60).json()
    assert run["status"] == "completed" and run["result"]["outputs"] == {"ticks": 20}
    # 3 stored: two more fit under the limit of 5, the next is refused.
    for status in (200, 200, 429):
        r = httpx.post(f"{server.url}/v1/skills/demo.ticker/execute", json={"inputs": {"steps": 1}},
                       headers=headers, timeout=30)
        assert r.status_code == status, r.text
    with sqlite3.connect(db) as conn:
        assert [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")] == [
            "runs_uncounted"]
        assert conn.execute("SELECT owner, runs FROM run_counts").fetchall() == conn.execute(
            "SELECT owner, COUNT(*) FROM runs GROUP BY owner").fetchall() == [(run["owner"], 5)]


async def test_a_list_filtered_by_several_statuses_is_newest_first_and_paged_across_them(store: RunStore) -> None:
    """`GET /v1/runs?status=running&status=completed&status=queued` on every store: the
    runs of any of those statuses, newest first across statuses, paged without a gap or
    a repeat; another key's runs and other statuses are not listed."""
    statuses = ["queued", "running", "completed", "failed", "running", "completed", "queued", "completed"]
    for i, status in enumerate(statuses):
        run_id = f"r{i}"
        await store.create(_run(run_id))
        await store.create(_run(f"b{i}", owner="key_b"))
        if status != "queued":
            store.append(run_id, _ev(1, "skill_start"))
        if status in ("completed", "failed"):
            store.append(run_id, _ev(2, "done", status=status, outputs={}))
        assert await store.wait(run_id, 0 if status != "queued" else -1, 5) or status == "queued"
    for i, status in enumerate(statuses):
        while (run := await store.get(f"r{i}")) is None or run.status != status:
            await store.wait(f"r{i}", 0, 0.05)
    wanted = {"running", "completed", "queued"}
    expected = [f"r{i}" for i in reversed(range(len(statuses))) if statuses[i] in wanted]
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list_runs("key_a", statuses=wanted, limit=2, cursor=cursor)
        seen += [r.run_id for r in page.runs]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected
    assert (await store.list_runs("key_a", statuses=[], limit=10)).runs == []


def test_list_and_count_queries_read_an_index_range_however_many_runs_are_stored(tmp_path: Path) -> None:
    """EXPLAIN QUERY PLAN of the stored-runs count and of lists by skill, by one status,
    by several statuses (with a skill and a cursor): each is an index search, no table
    scan and no sort of the matching runs (only of each status's page, when merged)."""
    db = tmp_path / "runs.db"
    conn = sqlite3.connect(db, isolation_level=None)
    migrate(conn, db)

    def plan(sql: str, args: tuple[Any, ...]) -> list[str]:
        return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args)]

    count = plan("SELECT runs FROM run_counts WHERE owner = ?", ("k",))
    assert count == ["SEARCH run_counts USING PRIMARY KEY (owner=?)"], count
    cases = [
        (["owner = ?"], ["k"], ["running"]),
        (["owner = ?"], ["k"], ["queued", "running", "waiting"]),
        (["owner = ?", "skill_id = ?", "n < ?"], ["k", "demo.ticker", 10], ["completed", "failed"]),
        ([], [], ["queued", "running", "waiting"]),  # recovery at start: every key's unfinished runs
    ]
    by_skill = plan(*SqliteStore._list_sql(["owner = ?", "skill_id = ?"], ["k", "demo.ticker"], None, 21))
    assert by_skill == ["SEARCH runs USING INDEX runs_by_owner_skill (owner=? AND skill_id=?)"], by_skill
    for where, params, statuses in cases:
        sql, args = SqliteStore._list_sql(where, params, statuses, 21)
        steps = plan(sql, args)
        searches = [s for s in steps if s.startswith("SEARCH runs USING")]
        assert len(searches) == len(statuses), steps
        # A status (or, with a skill too, that skill's) range of the key's runs, never all of them.
        assert all("status=?" in s or "skill_id=?" in s for s in searches), steps
        assert not [s for s in steps if s.startswith("SCAN runs")], steps
        if len(statuses) == 1:
            assert not [s for s in steps if "TEMP B-TREE" in s], steps
    conn.close()
