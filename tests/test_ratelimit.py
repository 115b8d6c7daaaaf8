"""Rate limits: one budget per API key (per client address without a known key),
shared by ``/execute`` and the stream, announced on every answer, 429 with Retry-After."""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Callable

import anyio
import httpx
import pytest

from conftest import API_KEY, OTHER_KEY, Server

pytestmark = pytest.mark.anyio

SUMMARIZE = "/v1/skills/text.summarize"
BODY = {"inputs": {"text": "One sentence. Another one."}}


def client_for(app: Any, address: str = "10.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(address, 40000)),
        base_url="http://testserver",
    )


@pytest.fixture
async def limited(app_factory: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app_factory(rate_limit="3/minute")) as c:
        yield c


def assert_rate_headers(r: httpx.Response, limit: int, remaining: int) -> None:
    assert r.headers["RateLimit-Limit"] == str(limit)
    assert r.headers["RateLimit-Remaining"] == str(remaining)
    reset = int(r.headers["RateLimit-Reset"])
    assert 0 < reset <= 60


def assert_429(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = json.loads(r.content)
    assert problem["status"] == 429 and problem["detail"]
    retry = int(r.headers["Retry-After"])
    assert 1 <= retry <= 60
    assert_rate_headers(r, 3, 0)


async def test_every_answer_counts_down_and_the_fourth_is_429(limited: httpx.AsyncClient) -> None:
    key = {"x-api-key": API_KEY}
    for remaining in (2, 1, 0):
        r = await limited.post(SUMMARIZE + "/execute", json=BODY, headers=key)
        assert r.status_code == 200, r.text
        assert_rate_headers(r, 3, remaining)
        assert "Retry-After" not in r.headers
    assert_429(await limited.post(SUMMARIZE + "/execute", json=BODY, headers=key))
    # The stream is refused with the same problem, before any event.
    r = await limited.post(SUMMARIZE + "/execute/stream", json=BODY, headers=key)
    assert_429(r)
    assert "event:" not in r.text


async def test_execute_and_stream_share_one_budget(limited: httpx.AsyncClient) -> None:
    key = {"x-api-key": API_KEY}
    r1 = await limited.post(SUMMARIZE + "/execute/stream", json=BODY, headers=key)
    assert r1.status_code == 200 and r1.headers["content-type"].startswith("text/event-stream")
    assert_rate_headers(r1, 3, 2)
    r2 = await limited.post(SUMMARIZE + "/execute", json=BODY, headers=key)
    assert_rate_headers(r2, 3, 1)
    r3 = await limited.post(SUMMARIZE + "/execute/stream", json=BODY, headers=key)
    assert_rate_headers(r3, 3, 0)
    assert_429(await limited.post(SUMMARIZE + "/execute", json=BODY, headers=key))
    assert_429(await limited.post(SUMMARIZE + "/execute/stream", json=BODY, headers=key))


async def test_budget_is_per_key(limited: httpx.AsyncClient) -> None:
    for _ in range(3):
        await limited.post(SUMMARIZE + "/execute", json=BODY, headers={"x-api-key": API_KEY})
    assert_429(await limited.post(SUMMARIZE + "/execute", json=BODY, headers={"x-api-key": API_KEY}))
    # Same address, another key: a budget of its own.
    r = await limited.post(SUMMARIZE + "/execute", json=BODY, headers={"x-api-key": OTHER_KEY})
    assert r.status_code == 200
    assert_rate_headers(r, 3, 2)


async def test_a_key_keeps_its_budget_across_addresses(app_factory: Callable[..., Any]) -> None:
    app = app_factory(rate_limit="3/minute")
    for i in range(3):
        async with client_for(app, f"10.0.1.{i}") as c:
            r = await c.post(SUMMARIZE + "/execute", json=BODY, headers={"x-api-key": API_KEY})
            assert_rate_headers(r, 3, 2 - i)
    async with client_for(app, "10.0.1.9") as c:
        assert_429(await c.post(SUMMARIZE + "/execute", json=BODY, headers={"x-api-key": API_KEY}))


async def test_without_a_key_the_budget_is_per_client_address(app_factory: Callable[..., Any]) -> None:
    """Requests without a known key draw on their address's budget: key guessing is limited."""
    app = app_factory(rate_limit="3/minute")
    async with client_for(app, "10.0.2.1") as guesser, client_for(app, "10.0.2.2") as neighbour:
        for remaining, key in zip((2, 1, 0), (None, "guess-1", "guess-2")):
            headers = {} if key is None else {"x-api-key": key}
            r = await guesser.post(SUMMARIZE + "/execute", json=BODY, headers=headers)
            assert r.status_code == 401
            assert_rate_headers(r, 3, remaining)
        assert_429(await guesser.post(SUMMARIZE + "/execute/stream", json=BODY, headers={"x-api-key": "guess-3"}))
        # Another address is untouched, and so is every key's own budget.
        r = await neighbour.post(SUMMARIZE + "/execute", json=BODY)
        assert r.status_code == 401
        assert_rate_headers(r, 3, 2)
        r = await guesser.post(SUMMARIZE + "/execute", json=BODY, headers={"x-api-key": API_KEY})
        assert r.status_code == 200
        assert_rate_headers(r, 3, 2)


async def test_errors_draw_on_the_budget_and_carry_the_headers(limited: httpx.AsyncClient) -> None:
    key = {"x-api-key": API_KEY}
    r = await limited.post(SUMMARIZE + "/execute", json={"inputs": {}}, headers=key)
    assert r.status_code == 422
    assert_rate_headers(r, 3, 2)
    r = await limited.post("/v1/skills/nope/execute/stream", json=BODY, headers=key)
    assert r.status_code == 404
    assert_rate_headers(r, 3, 1)
    r = await limited.get("/v1/skills", headers=key)
    assert r.status_code == 200
    assert_rate_headers(r, 3, 0)


async def test_health_and_docs_are_not_limited(limited: httpx.AsyncClient) -> None:
    for _ in range(4):  # one more than the limit
        for path in ("/v1/health/live", "/v1/health/ready", "/v1/health", "/openapi.json"):
            r = await limited.get(path)
            assert r.status_code == 200, path
            assert "RateLimit-Limit" not in r.headers
    r = await limited.post(SUMMARIZE + "/execute", json=BODY, headers={"x-api-key": API_KEY})
    assert_rate_headers(r, 3, 2)


def test_rate_limit_on_real_server_from_env(server_factory: Callable[..., Server]) -> None:
    """SKILLRUN_RATE_LIMIT reaches the served app; the stream's 429 is a problem, not a stream."""
    s = server_factory(env={"SKILLRUN_RATE_LIMIT": "2/minute"})
    with httpx.Client(base_url=s.url, headers={"x-api-key": API_KEY}, timeout=10) as c:
        assert c.post(SUMMARIZE + "/execute/stream", json=BODY).status_code == 200
        r = c.post(SUMMARIZE + "/execute", json=BODY)
        assert r.status_code == 200
        assert r.headers["RateLimit-Limit"] == "2" and r.headers["RateLimit-Remaining"] == "0"
        with c.stream("POST", SUMMARIZE + "/execute/stream", json=BODY) as r:
            r.read()
        assert r.status_code == 429
        assert r.headers["content-type"].startswith("application/problem+json")
        assert int(r.headers["Retry-After"]) >= 1


async def test_retry_after_is_honest(app_factory: Callable[..., Any]) -> None:
    """Waiting Retry-After seconds is enough to be served again."""
    async with client_for(app_factory(rate_limit="2/second")) as c:
        key = {"x-api-key": API_KEY}
        for _ in range(2):
            assert (await c.post(SUMMARIZE + "/execute", json=BODY, headers=key)).status_code == 200
        r = await c.post(SUMMARIZE + "/execute/stream", json=BODY, headers=key)
        assert r.status_code == 429
        retry = int(r.headers["Retry-After"])
        assert retry == 1
        await anyio.sleep(retry + 0.05)
        r = await c.post(SUMMARIZE + "/execute/stream", json=BODY, headers=key)
        assert r.status_code == 200
