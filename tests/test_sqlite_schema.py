"""Stored data has a schema version (issue 11): a SQLite run store written by an earlier
release opens and is migrated forward at start, one written by a newer release is
refused with a message naming both versions, and a migration is all or nothing.

The earlier release's database is ``fixtures/sqlite_v0_7acb512.sql``: made by the
release before schema versions (commit 7acb512) through its own API (see its header).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from conftest import Server
from sse_util import check_order, parse_sse
from skillrun.runs.sqlite import SCHEMA_VERSION, SchemaTooNew, migrate
from test_sqlite_ownership import serve_expecting_exit

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The keys the fixture's runs were made with (their owners are these keys' hashes).
KEY_A = "key-a-0123456789"
KEY_B = "key-b-0123456789"
FIXTURE_RUNS = {
    KEY_A: {
        "run_4064c22dcd8a81e1e510537b": ("text.summarize", "completed"),
        "run_933fa60b6bd5a39b82e22813": ("demo.showcase", "failed"),
        "run_46fd59d0ca70df1550f4e94b": ("demo.ticker", "completed"),
        "run_d96db74519826c2091fb934d": ("demo.ticker", "cancelled"),
    },
    KEY_B: {
        "run_21ca0eecb3fb477bc5e607a5": ("demo.ticker", "completed"),
        # Left running by kill -9: this release's start closes it as interrupted.
        "run_669bdb5668937f0a20f2e7c9": ("demo.ticker", "interrupted"),
    },
}


def old_database(path: Path, name: str = "sqlite_v0_7acb512.sql", replace: dict[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    dump = (FIXTURES / name).read_text()
    for old, new in (replace or {}).items():
        dump = dump.replace(old, new)
    with sqlite3.connect(path) as conn:
        conn.executescript(dump)
    return path


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _get(server: Server, key: str, path: str) -> httpx.Response:
    r = httpx.get(server.url + path, headers={"x-api-key": key}, timeout=30)
    assert r.status_code == 200, r.text
    return r


def test_a_database_from_the_release_before_versions_is_migrated_and_its_runs_served(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """The 7acb512 database (user_version 0) under `skillrun serve`: it starts, stamps the
    current version, lists each key's runs with their status, serves their logs from id 1
    (and after a Last-Event-ID) to one `done`, closes the run the old process left
    running as interrupted, keeps the old Idempotency-Key, and takes new runs."""
    db = old_database(tmp_path / ".skillrun" / "skillrun.db")
    assert user_version(db) == 0
    # Retention far away: the fixture's runs finished on 2026-12-01 and must not be purged.
    server = server_factory(env={"SKILLRUN_API_KEYS": f"{KEY_A},{KEY_B}", "SKILLRUN_RUN_RETENTION": "36500d"})
    assert user_version(db) == SCHEMA_VERSION
    assert "schema migrated from version 0 to" in server.log()

    for key, runs in FIXTURE_RUNS.items():
        listed = _get(server, key, "/v1/runs?limit=100").json()["runs"]
        assert {r["run_id"]: (r["skill_id"], r["status"]) for r in listed} == runs
        for run_id, (_skill, status) in runs.items():
            run = _get(server, key, f"/v1/runs/{run_id}").json()
            assert run["status"] == status and run["result"]["status"] == status
            frames = parse_sse(_get(server, key, f"/v1/runs/{run_id}/events").text)[0]
            events = [f.json for f in frames]
            check_order(events)
            assert [int(f.id or 0) for f in frames] == list(range(1, len(frames) + 1))
            assert events[-1]["type"] == "done" and events[-1]["status"] == status
            resumed = httpx.get(
                f"{server.url}/v1/runs/{run_id}/events", headers={"x-api-key": key, "Last-Event-ID": "2"}, timeout=30
            )
            assert [f.data for f in parse_sse(resumed.text)[0]] == [f.data for f in frames[2:]]

    again = httpx.post(
        server.url + "/v1/skills/text.summarize/execute",
        headers={"x-api-key": KEY_A, "Idempotency-Key": "idem-1"},
        json={"inputs": {"text": "Skills run step by step. Each step is an event. Streams end with done.",
                         "max_sentences": 1}},
        timeout=30,
    )
    assert again.status_code == 200 and again.headers["x-run-id"] == "run_4064c22dcd8a81e1e510537b"
    new = httpx.post(
        server.url + "/v1/skills/demo.ticker/execute", headers={"x-api-key": KEY_B},
        json={"inputs": {"steps": 2}}, timeout=30,
    )
    assert new.status_code == 200 and new.json()["status"] == "completed"
    assert len(_get(server, KEY_B, "/v1/runs?limit=100").json()["runs"]) == 3


def test_a_database_from_a_newer_release_is_refused_naming_both_versions(tmp_path: Path) -> None:
    """A store stamped `PRAGMA user_version = 99` (a release this one does not know):
    `skillrun serve` exits non-zero saying the file, version 99 and the version it knows,
    and leaves the file as it was."""
    db = old_database(tmp_path / "runs.db")
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    done = serve_expecting_exit(tmp_path, ["--db", str(db)])
    assert done.returncode != 0
    assert (
        f"the run store {db.resolve()} has schema version 99, but this release of Skillrun knows "
        f"versions up to {SCHEMA_VERSION}" in done.stderr
    )
    assert user_version(db) == 99


def _migrate(db: Path, migrations: tuple[tuple[str, ...], ...]) -> int:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        return migrate(conn, db, migrations)
    finally:
        conn.close()


def test_a_later_migration_runs_once_and_a_failing_one_changes_nothing(tmp_path: Path) -> None:
    """How a future change ships: one more entry in the migration list. Applied to a
    current database it runs once (version + 1, then nothing to do); one whose second
    statement fails leaves the schema and the version as they were."""
    from skillrun.runs.sqlite import _MIGRATIONS

    db = old_database(tmp_path / "runs.db")
    assert _migrate(db, _MIGRATIONS) == 0
    later = (*_MIGRATIONS, ("ALTER TABLE runs ADD COLUMN note TEXT", "UPDATE runs SET note = 'migrated'"))
    assert _migrate(db, later) == SCHEMA_VERSION
    assert _migrate(db, later) == SCHEMA_VERSION + 1
    with sqlite3.connect(db) as conn:
        assert {n for (n,) in conn.execute("SELECT DISTINCT note FROM runs")} == {"migrated"}

    broken = (*later, ("ALTER TABLE runs ADD COLUMN other TEXT", "UPDATE no_such_table SET x = 1"))
    with pytest.raises(sqlite3.OperationalError):
        _migrate(db, broken)
    assert user_version(db) == SCHEMA_VERSION + 1
    with sqlite3.connect(db) as conn:
        columns: list[Any] = [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
    assert "other" not in columns
    with pytest.raises(SchemaTooNew):
        _migrate(db, _MIGRATIONS)
