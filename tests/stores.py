"""Every run store, for suites that run once per store (a fixture param, not copies)."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from skillrun.runs import MemoryStore, RedisStore, RunStore, SqliteStore

STORES = ["memory", "sqlite", "redis", "redis-cluster"]


def store_db(request: pytest.FixtureRequest, tmp_path: Path, kind: str | None = None) -> tuple[str, dict[str, object]]:
    """``(SKILLRUN_DB, other settings)`` for the store ``kind`` (default: the fixture's param)."""
    kind = kind or request.param
    if kind == "memory":
        return ":memory:", {}
    if kind == "sqlite":
        return str(tmp_path / "runs.db"), {}
    prefix = f"t{uuid.uuid4().hex[:12]}:"  # one Redis for the session; each test its own keys
    if kind == "redis":
        return request.getfixturevalue("redis_server").url, {"redis_prefix": prefix}
    nodes = request.getfixturevalue("redis_cluster")
    return nodes[0].url, {"redis_prefix": prefix, "redis_cluster": True}


def store_for(request: pytest.FixtureRequest, tmp_path: Path) -> RunStore:
    db, options = store_db(request, tmp_path)
    if db == ":memory:":
        return MemoryStore()
    if not db.startswith("redis://"):
        return SqliteStore(db)
    return RedisStore(db, prefix=str(options["redis_prefix"]), cluster=bool(options.get("redis_cluster")))


@contextlib.asynccontextmanager
async def started(*apps: Any) -> AsyncIterator[None]:
    """In-process apps with their store open and, on Redis, their node (lease, cancel
    listener) running, as ``serve`` starts them; drained and stopped after."""
    for app in apps:
        await app.services.store.open()
        if app.services.nodes is not None:
            await app.services.nodes.start()
    try:
        yield
    finally:
        for app in apps:
            await app.services.runs.drain(5)
            if app.services.nodes is not None:
                await app.services.nodes.stop()
            await app.services.store.close()
