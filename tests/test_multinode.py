"""Several ``skillrun serve`` processes on one Redis behave as one service: a run
started on one node is followed, resumed, listed, fetched and cancelled on any
other; idempotency keys and rate limits hold across nodes; a killed node's runs
are closed by a survivor; a Redis outage is 503s and heartbeats, then recovery."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import datetime, timezone
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from conftest import API_KEY, Server, require_tool, start_server
from redis_util import RedisServer
from sse_util import check_order, parse_sse

pytestmark = pytest.mark.anyio

TICKER = "/v1/skills/demo.ticker"
HEADERS = {"x-api-key": API_KEY}


def _nodes(tmp_path: Path, redis_url: str, n: int = 3, **env: str) -> list[Server]:
    """``skillrun serve --db redis://…`` n times (the flag, as a user starts a node)."""
    prefix = f"mn{uuid.uuid4().hex[:10]}:"
    base = {"SKILLRUN_REDIS_PREFIX": prefix, "SKILLRUN_NODE_LEASE_S": "3",
            "SKILLRUN_HEARTBEAT_S": "1", "SKILLRUN_WORKER_PROCS": "0", **env}
    return [start_server(tmp_path, base, ["--db", redis_url]) for _ in range(n)]


@pytest.fixture
def nodes(tmp_path: Path, redis_server: RedisServer) -> Iterator[list[Server]]:
    """Three nodes A, B, C on the session's Redis (their own key prefix)."""
    started = _nodes(tmp_path, redis_server.url)
    yield started
    for s in started:
        s.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of the test's own (stopped and restarted by the test, or fresh counters)."""
    server = RedisServer(require_tool("redis-server"), tmp_path / "redis").start()
    yield server
    server.stop()


def _client(node: Server, timeout: float = 30) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=node.url, headers=HEADERS, timeout=timeout)


def _events(text: str) -> list[dict[str, Any]]:
    frames, _ = parse_sse(text)
    return [{**f.json, "_id": int(f.id)} for f in frames if f.id is not None]


async def _follow(node: Server, run_id: str, after: int | None = None) -> list[dict[str, Any]]:
    headers = {"Last-Event-ID": str(after)} if after is not None else {}
    async with _client(node) as c:
        r = await c.get(f"/v1/runs/{run_id}/events", headers=headers)
        assert r.status_code == 200, r.text
        return _events(r.text)


async def _start_async(node: Server, inputs: dict[str, Any], **kw: Any) -> dict[str, Any]:
    async with _client(node) as c:
        r = await c.post(f"{TICKER}/execute/async", json={"inputs": inputs}, **kw)
        assert r.status_code == 202, r.text
        return dict(r.json())


async def _until_finished(node: Server, run_id: str, within_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + within_s
    async with _client(node) as c:
        while time.monotonic() < deadline:
            r = await c.get(f"/v1/runs/{run_id}")
            if r.status_code == 200 and r.json()["finished_at"] is not None:
                return dict(r.json())
            await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} not finished within {within_s} s")


async def test_stream_started_on_a_is_followed_live_on_b_and_resumed_on_c_after_every_event(
    nodes: list[Server],
) -> None:
    """A stream started on node A is followed live on B, and resumed on C with
    Last-Event-ID at every event id: C gives exactly the rest, nothing lost or repeated."""
    a, b, c = nodes
    async with _client(a) as ca:
        async with ca.stream("POST", f"{TICKER}/execute/stream", json={"inputs": {"steps": 20, "delay_ms": 20}}) as r:
            assert r.status_code == 200
            run_id = r.headers["x-run-id"]
            live_b = asyncio.create_task(_follow(b, run_id))
            body = "".join([chunk async for chunk in r.aiter_text()])
    full = _events(body)
    check_order(full)
    assert [e["_id"] for e in full] == list(range(1, len(full) + 1))
    assert await live_b == full
    for cut in range(0, len(full) + 1):
        assert await _follow(c, run_id, cut) == full[cut:], cut


async def test_list_and_get_on_any_node_see_every_run_of_the_key(nodes: list[Server]) -> None:
    """Runs started on A, B and C: GET /v1/runs on each node lists all three, newest
    first, with the same pages and cursors; GET /v1/runs/{id} works on every node."""
    ids = []
    for node in nodes:
        ids.append((await _start_async(node, {"steps": 1}))["run_id"])
        await _until_finished(node, ids[-1], 10)
    pages = []
    for node in nodes:
        async with _client(node) as c:
            first = (await c.get("/v1/runs", params={"limit": 2})).json()
            second = (await c.get("/v1/runs", params={"limit": 2, "cursor": first["next_cursor"]})).json()
            pages.append([r["run_id"] for r in first["runs"] + second["runs"]])
            for run_id in ids:
                assert (await c.get(f"/v1/runs/{run_id}")).json()["status"] == "completed"
    assert pages == [ids[::-1]] * 3


async def test_cancel_via_b_stops_the_engine_task_on_a_within_one_second(nodes: list[Server]) -> None:
    """POST /v1/runs/{id}/cancel on B of a run executing on A: within 1 s the log
    ends skill_completed + done with status cancelled."""
    a, b, _ = nodes
    run = await _start_async(a, {"steps": 200, "delay_ms": 100})
    await asyncio.sleep(0.5)
    async with _client(b) as cb:
        asked = time.monotonic()
        r = await cb.post(f"/v1/runs/{run['run_id']}/cancel")
        assert r.status_code == 202, r.text
    done = await _until_finished(a, run["run_id"], 5)
    took = time.monotonic() - asked
    assert done["status"] == "cancelled"
    assert took < 1.0, took
    events = await _follow(b, run["run_id"])
    assert [e["type"] for e in events[-2:]] == ["skill_completed", "done"]
    assert events[-2]["data"]["status"] == "cancelled" and events[-1]["status"] == "cancelled"


async def test_concurrent_idempotent_creates_on_a_and_b_give_one_run(nodes: list[Server]) -> None:
    """The same Idempotency-Key sent to A and B at the same moment gives one run;
    the key with another body is a 409 (was 422; schemathesis from outside, issue 13,
    reads a 422 for a valid request as a failure: the request is valid, the key conflicts)."""
    a, b, _ = nodes
    for _ in range(5):
        key = uuid.uuid4().hex
        runs = await asyncio.gather(*(
            _start_async(node, {"steps": 1}, headers={"Idempotency-Key": key}) for node in (a, b, a, b)
        ))
        assert len({r["run_id"] for r in runs}) == 1, runs
    async with _client(b) as cb:
        r = await cb.post(f"{TICKER}/execute/async", json={"inputs": {"steps": 2}}, headers={"Idempotency-Key": key})
        assert r.status_code == 409, r.text
        assert "Idempotency-Key" in r.text


async def test_rate_limit_of_ten_a_minute_lets_exactly_ten_through_across_nodes(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    """SKILLRUN_RATE_LIMIT=10/minute with --db redis://: 30 requests spread over three
    nodes, exactly 10 pass; the rest are 429 with Retry-After."""
    servers = _nodes(tmp_path, own_redis.url, SKILLRUN_RATE_LIMIT="10/minute")
    try:
        async def ask(node: Server) -> httpx.Response:
            async with _client(node) as c:
                return await c.get("/v1/runs")

        answers = await asyncio.gather(*(ask(servers[i % 3]) for i in range(30)))
        assert sum(r.status_code == 200 for r in answers) == 10
        refused = [r for r in answers if r.status_code != 200]
        assert all(r.status_code == 429 and int(r.headers["retry-after"]) >= 1 for r in refused)
    finally:
        for s in servers:
            s.stop()


@pytest.mark.slow
async def test_kill_9_of_a_mid_run_b_resumes_its_runs_and_followers_on_c_get_the_rest(nodes: list[Server]) -> None:
    """kill -9 of node A mid-run: within the lease (3 s) + 5 s a survivor resumes A's
    runs from their logs (issue 15), and a follower on C gets every event once, the
    seam, the rest of the run and done; no item that had ended before the kill runs again."""
    a, _, c = nodes
    runs = [await _start_async(a, {"steps": 30, "delay_ms": 100}) for _ in range(3)]
    followers = [asyncio.create_task(_follow(c, r["run_id"])) for r in runs]
    await asyncio.sleep(1.0)
    a.terminate(signal.SIGKILL)
    killed = datetime.now(timezone.utc)
    for follower in followers:
        events = await asyncio.wait_for(follower, 3 + 5 + 10)
        assert events[-1]["type"] == "done" and events[-1]["status"] == "completed"
        assert events[-1]["outputs"] == {"ticks": 30}
        assert [e["_id"] for e in events] == list(range(1, len(events) + 1))
        check_order(events)
        seam = next(n for n, e in enumerate(events) if e["type"] == "skill_resumed")
        resumed_at = datetime.fromisoformat(events[seam]["timestamp"].replace("Z", "+00:00"))
        assert (resumed_at - killed).total_seconds() < 3 + 5
        ended = {e["data"]["index"] for e in events[:seam] if e["type"] == "step_completed"}
        again = [e["data"]["index"] for e in events[seam:] if e["type"] == "step_start"]
        assert ended and not ended & set(again), (sorted(ended), again)


@pytest.mark.slow
async def test_redis_stopped_mid_run_gives_503_with_retry_after_then_recovers_losing_nothing(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    """Redis stopped mid-run: readiness and new executions answer 503 problem+json with
    Retry-After, an open stream keeps heartbeating; Redis started again (same AOF): the
    run finishes, every event is in the log once, in order, and the follower gets done."""
    a, b = _nodes(tmp_path, own_redis.url, n=2)
    try:
        run = await _start_async(a, {"steps": 40, "delay_ms": 100})
        follower = asyncio.create_task(_follow(b, run["run_id"]))
        await asyncio.sleep(1.0)
        own_redis.stop()
        await asyncio.sleep(0.5)
        async with _client(a) as ca:
            ready = await ca.get("/v1/health/ready")
            assert ready.status_code == 503 and ready.headers["retry-after"]
            assert ready.headers["content-type"].startswith("application/problem+json")
            refused = await ca.post(f"{TICKER}/execute", json={"inputs": {"steps": 1}})
            assert refused.status_code == 503, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert int(refused.headers["retry-after"]) >= 1
        await asyncio.sleep(1.5)
        own_redis.start()
        events = await asyncio.wait_for(follower, 30)
        check_order(events)
        assert [e["_id"] for e in events] == list(range(1, len(events) + 1))
        assert events[-1]["status"] == "completed"
        assert events[-1]["outputs"] == {"ticks": 40}
        async with _client(a) as ca:
            assert (await ca.get("/v1/health/ready")).json()["store"] == {"kind": "redis", "reachable": True}
            assert (await ca.post(f"{TICKER}/execute", json={"inputs": {"steps": 1}})).status_code == 200
    finally:
        a.stop()
        b.stop()

