"""``/v1/health/ready`` reports the run store and its reachability (issue 11)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable

import httpx
import pytest

from conftest import Server


@pytest.mark.anyio
async def test_ready_names_the_memory_store(client: httpx.AsyncClient) -> None:
    """`SKILLRUN_DB=:memory:`: ready says `store: {kind: memory, reachable: true}`;
    liveness says nothing about the store (it never touches it)."""
    ready = await client.get("/v1/health/ready")
    assert ready.status_code == 200
    assert ready.json()["store"] == {"kind": "memory", "reachable": True}
    assert "store" not in (await client.get("/v1/health/live")).json()


def test_ready_names_the_sqlite_store_and_is_503_while_it_cannot_be_read(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """A real server on its SQLite file: ready reports `sqlite`, reachable. Another program
    then renames the `runs` table under it (the file no longer serves runs): ready is a 503
    problem naming the store, with Retry-After, while liveness stays 200; once the table is
    back, ready is 200 again without a restart."""
    server = server_factory(env={"SKILLRUN_VALIDATE_RESPONSES": "1"})
    ready = httpx.get(server.url + "/v1/health/ready")
    assert ready.status_code == 200 and ready.json()["store"] == {"kind": "sqlite", "reachable": True}

    db = tmp_path / ".skillrun" / "skillrun.db"
    with sqlite3.connect(db, isolation_level=None) as conn:
        conn.execute("ALTER TABLE runs RENAME TO runs_elsewhere")
    broken = httpx.get(server.url + "/v1/health/ready")
    assert broken.status_code == 503 and broken.headers["retry-after"] == "5"
    assert broken.headers["content-type"].startswith("application/problem+json")
    assert broken.json()["detail"] == "The run store (sqlite) is unreachable."
    assert httpx.get(server.url + "/v1/health/live").status_code == 200

    with sqlite3.connect(db, isolation_level=None) as conn:
        conn.execute("ALTER TABLE runs_elsewhere RENAME TO runs")
    assert httpx.get(server.url + "/v1/health/ready").status_code == 200
