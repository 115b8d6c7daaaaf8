"""Requests before a run exists are retried (connection errors, 429, 502/503/504) with
backoff and Retry-After; starting a run carries one Idempotency-Key for all attempts."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

import pytest

from skillrun_client import Backoff, BadRequestError, InternalServerError, RateLimitError
from skillrun_client._retry import RequestRetry

from .conftest import API_KEY, Request, ScriptServer, Server, answer, call, collect, frames, run_events, sse_stream

pytestmark = pytest.mark.anyio

SKILLS = {"skills": [{"id": "a", "version": "1", "description": "d"}]}
RESULT = {"skill_id": "s", "status": "completed", "outputs": {}, "trace_id": "t", "run_id": "r", "duration_ms": 1, "steps": []}


async def hang_up(req: Request, w: asyncio.StreamWriter) -> None:
    w.close()  # no answer at all: a connection error


@pytest.mark.parametrize("status", [429, 502, 503, 504])
async def test_retryable_status_is_retried(make_client: Callable[..., Any], status: int) -> None:
    async with ScriptServer([answer(status, {"title": "x", "status": status}), answer(200, SKILLS)]) as srv:
        skills = await call(make_client(srv.url).skills.list)
    assert [s.id for s in skills.skills] == ["a"] and len(srv.requests) == 2


async def test_connection_error_is_retried(make_client: Callable[..., Any]) -> None:
    async with ScriptServer([hang_up, answer(200, SKILLS)]) as srv:
        assert len((await call(make_client(srv.url).skills.list)).skills) == 1


async def test_other_errors_are_not_retried(make_client: Callable[..., Any]) -> None:
    async with ScriptServer([answer(400, {"title": "x", "status": 400}), answer(200, SKILLS)]) as srv:
        with pytest.raises(BadRequestError):
            await call(make_client(srv.url).skills.list)
    assert len(srv.requests) == 1


async def test_gives_up_after_max_retries(make_client: Callable[..., Any]) -> None:
    async with ScriptServer([answer(503, {"title": "x", "status": 503})]) as srv:
        with pytest.raises(InternalServerError):
            await call(make_client(srv.url, max_retries=3).skills.list)
    assert len(srv.requests) == 4


async def test_per_call_max_retries_overrides_the_client(make_client: Callable[..., Any]) -> None:
    async with ScriptServer([answer(429, {"title": "x", "status": 429}, {"Retry-After": "0"})]) as srv:
        with pytest.raises(RateLimitError):
            await call(make_client(srv.url, max_retries=5).skills.list, max_retries=1)
    assert len(srv.requests) == 2


async def test_retry_after_is_honoured(make_client: Callable[..., Any]) -> None:
    async with ScriptServer([answer(503, {"title": "x", "status": 503}, {"Retry-After": "1"}), answer(200, SKILLS)]) as srv:
        started = time.monotonic()
        await call(make_client(srv.url).skills.list)
    assert time.monotonic() - started >= 1.0


async def test_a_retry_after_longer_than_max_retry_after_is_raised_at_once(make_client: Callable[..., Any]) -> None:
    """A 429 with ``Retry-After: 3600`` is not waited for (the shared default caps it at 60 s):
    the caller gets the RateLimitError at once instead of a client hung for an hour."""
    async with ScriptServer([answer(429, {"title": "x", "status": 429}, {"Retry-After": "3600"}), answer(200, SKILLS)]) as srv:
        started = time.monotonic()
        with pytest.raises(RateLimitError) as info:
            await call(make_client(srv.url).skills.list)
    assert info.value.retry_after == 3600 and len(srv.requests) == 1 and time.monotonic() - started < 5


async def test_execute_retries_reuse_one_idempotency_key(make_client: Callable[..., Any]) -> None:
    async with ScriptServer([hang_up, answer(503, {"title": "x", "status": 503}), answer(200, RESULT)]) as srv:
        c = make_client(srv.url)
        await call(c.execute, "s", {"x": 1})
        await call(c.execute, "s", {"x": 1})
    keys = [r.headers.get("idempotency-key") for r in srv.requests]
    assert keys[0] and keys[0] == keys[1] == keys[2], keys
    assert keys[3] and keys[3] != keys[0]  # a new call is a new run


async def test_stream_start_retries_reuse_one_idempotency_key(make_client: Callable[..., Any]) -> None:
    body = b"".join(frames(run_events("run_x")))
    async with ScriptServer([answer(502, {"title": "x", "status": 502}), sse_stream(body, end="finish")]) as srv:
        events = await collect(make_client(srv.url).stream("s", {}, idempotency_key="my-key"))
    assert events[-1].type == "done"
    assert [r.headers.get("idempotency-key") for r in srv.requests] == ["my-key", "my-key"]


async def test_starting_a_run_twice_with_one_key_is_one_run(client: Any) -> None:
    first = await call(client.execute_async, "demo.ticker", {"steps": 1}, idempotency_key="same-key-1")
    again = await call(client.execute_async, "demo.ticker", {"steps": 1}, idempotency_key="same-key-1")
    assert first.run_id == again.run_id


async def test_a_client_idempotency_key_names_one_run(make_client: Callable[..., Any], server: Server) -> None:
    c = make_client(server.url, idempotency_key="client-key-1")
    first = await call(c.execute_async, "demo.ticker", {"steps": 1})
    again = await call(c.execute_async, "demo.ticker", {"steps": 1})
    other = await call(c.execute_async, "demo.ticker", {"steps": 1}, idempotency_key="call-key-1")
    assert first.run_id == again.run_id and other.run_id != first.run_id


async def test_client_options_are_sent(make_client: Callable[..., Any]) -> None:
    async with ScriptServer([answer(200, SKILLS)]) as srv:
        c = make_client(srv.url, headers={"X-Extra": "1"}, trace_id="client-trace")
        await call(c.skills.list)
        await call(c.skills.list, trace_id="call-trace", headers={"X-Extra": "2"})
    first, second = srv.requests
    assert first.headers["x-api-key"] == API_KEY and first.headers["x-trace-id"] == "client-trace" and first.headers["x-extra"] == "1"
    assert second.headers["x-trace-id"] == "call-trace" and second.headers["x-extra"] == "2"
    assert first.headers["user-agent"].startswith("skillrun-client/")


async def test_environment_gives_base_url_and_key(kind: str, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from skillrun_client import AsyncClient, Client

    monkeypatch.setenv("SKILLRUN_BASE_URL", server.url)
    monkeypatch.setenv("SKILLRUN_API_KEY", API_KEY)
    if kind == "sync":
        with Client() as c:
            assert len((await call(c.skills.list)).skills) >= 3
    else:
        async with AsyncClient() as ac:
            assert len((await ac.skills.list()).skills) >= 3
    monkeypatch.delenv("SKILLRUN_BASE_URL")
    monkeypatch.delenv("SKILLRUN_API_KEY")
    bare = Client()
    assert bare.base_url == "http://127.0.0.1:8080" and "x-api-key" not in bare._headers
    bare.close()


def test_backoff_grows_caps_and_jitters() -> None:
    b = Backoff(initial=0.5, maximum=4.0, multiplier=2.0, jitter=0.25, rand=lambda: 1.0)
    assert [b.delay(n) for n in (1, 2, 3, 4, 5)] == [0.625, 1.25, 2.5, 5.0, 5.0]
    assert Backoff(rand=lambda: 0.0).delay(1) == 0.5
    # The server's `retry:` replaces the first delay, and may exceed the cap.
    assert Backoff(maximum=1.0, rand=lambda: 0.0).delay(1, first=3.0) == 3.0
    assert Backoff(maximum=1.0, rand=lambda: 0.0).delay(3, first=3.0) == 3.0
    assert Backoff(rand=lambda: 0.0).delay(5000) == 8.0  # a long outage with a large max_retries


def test_request_retry_uses_retry_after_before_backoff() -> None:
    import httpx

    from skillrun_client._exceptions import status_error

    retry = RequestRetry(2, Backoff(rand=lambda: 0.0))
    r = httpx.Response(503, headers={"Retry-After": "3"}, request=httpx.Request("GET", "http://x"))
    assert retry.next_delay(status_error(r)) == 3.0
    r = httpx.Response(503, request=httpx.Request("GET", "http://x"))
    assert retry.next_delay(status_error(r)) == 1.0  # second attempt: 0.5 * 2
    with pytest.raises(InternalServerError):
        retry.next_delay(status_error(r))


async def test_a_callers_own_http_client_is_used(kind: str, server: Server) -> None:
    import httpx

    from skillrun_client import AsyncClient, Client

    seen: list[str] = []
    if kind == "sync":
        http = httpx.Client(event_hooks={"request": [lambda r: seen.append(str(r.url))]})
        with Client(server.url + "/", API_KEY, http_client=http) as c:
            assert len((await call(c.skills.list)).skills) >= 3
    else:

        async def hook(r: httpx.Request) -> None:
            seen.append(str(r.url))

        ahttp = httpx.AsyncClient(event_hooks={"request": [hook]})
        async with AsyncClient(server.url + "/", API_KEY, http_client=ahttp) as ac:
            assert len((await ac.skills.list()).skills) >= 3
    assert seen == [server.url + "/v1/skills"]
