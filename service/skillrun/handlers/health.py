"""Liveness and readiness: no key, no rate limit."""

from __future__ import annotations

from starlette.responses import Response

from .. import __version__
from ..runs import RedisStore, RunStore, SqliteStore
from ._http import json_response, problem, services


async def live() -> Response:
    return json_response({"status": "ok", "version": __version__})


async def ready() -> Response:
    s = services()
    if s.runs.draining:
        raise problem(503, "The server is shutting down.", headers={"Retry-After": "5"})
    store = {"kind": _store_kind(s.store), "reachable": await _reachable(s.store)}
    if not store["reachable"]:
        raise problem(503, f"The run store ({store['kind']}) is unreachable.", {"Retry-After": "2"})
    return json_response({"status": "ok", "version": __version__, "skills": len(s.catalog), "store": store})


def _store_kind(store: RunStore) -> str:
    if isinstance(store, RedisStore):
        return "redis"
    return "sqlite" if isinstance(store, SqliteStore) else "memory"


async def _reachable(store: RunStore) -> bool:
    # Only a networked store can be away; a local one is as reachable as this process.
    return await store.check() if isinstance(store, RedisStore) else True


async def health_legacy() -> Response:
    return await ready()
