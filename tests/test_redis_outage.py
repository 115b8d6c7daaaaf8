"""A Redis outage is an error, not a crash: with the run store's Redis stopped, every
endpoint that needs the store answers 503 problem+json with Retry-After (never a 500),
readiness says which store is unreachable, and all is well again once Redis is back."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import asgi_client, require_tool
from redis_util import RedisServer

pytestmark = pytest.mark.anyio

TICKER = "/v1/skills/demo.ticker"


async def test_store_outage_is_503_with_retry_after_on_every_store_endpoint_then_recovers(
    tmp_path: Path, app_factory: Callable[..., Any]
) -> None:
    """redis-server stopped under a running app (rate limits in memory, so the store is
    what fails): GET /v1/runs, GET /v1/runs/{id}, POST .../execute and /v1/health/ready
    are 503 application/problem+json with Retry-After; started again, the same requests
    succeed without restarting the app."""
    redis = RedisServer(require_tool("redis-server"), tmp_path / "redis").start()
    app = app_factory(db=redis.url, rate_limit_storage="memory://", redis_prefix="outage:")
    await app.services.store.open()
    try:
        async with asgi_client(app) as client:
            run_id = (await client.post(f"{TICKER}/execute", json={"inputs": {"steps": 1}})).headers["x-run-id"]
            ready = await client.get("/v1/health/ready")
            assert ready.json()["store"] == {"kind": "redis", "reachable": True}
            redis.stop()
            for method, path, body in (
                ("GET", "/v1/runs", None),
                ("GET", f"/v1/runs/{run_id}", None),
                ("POST", f"{TICKER}/execute", {"inputs": {"steps": 1}}),
                ("GET", "/v1/health/ready", None),
            ):
                r = await client.request(method, path, json=body)
                assert r.status_code == 503, (path, r.status_code, r.text)
                assert r.headers["content-type"].startswith("application/problem+json"), path
                assert int(r.headers["retry-after"]) >= 1, path
            redis.start()
            assert (await client.get(f"/v1/runs/{run_id}")).json()["status"] == "completed"
            assert (await client.post(f"{TICKER}/execute", json={"inputs": {"steps": 1}})).status_code == 200
            assert (await client.get("/v1/health/ready")).status_code == 200
    finally:
        await app.services.runs.drain(5)
        await app.services.store.close()
        redis.stop()
