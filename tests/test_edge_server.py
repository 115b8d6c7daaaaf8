"""Issue 10, the connection's own limits, against real ``skillrun serve`` processes:
slow heads and bodies are closed, huge heads refused with bounded memory, a
connection cap, and X-Forwarded-For believed only from configured proxies."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Callable

import httpx
import pytest

from conftest import API_KEY, Server

pytestmark = pytest.mark.anyio

HEAD = b"GET /v1/health/live HTTP/1.1\r\nHost: x\r\n"
RESET = b"<reset>"


async def _trickle_until_closed(port: int, first: bytes, drip: bytes, every_s: float, give_up_s: float) -> tuple[bytes, float]:
    """Send ``first``, then ``drip`` every ``every_s`` until the server closes; the
    server's answer and how long the connection lived."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(first)

    async def drip_forever() -> None:
        while True:
            await asyncio.sleep(every_s)
            writer.write(drip)
            await writer.drain()

    dripping = asyncio.create_task(drip_forever())
    try:
        async with asyncio.timeout(give_up_s):
            answer = await reader.read()  # until EOF: the server closed
    except ConnectionError:
        # The server closed while a dripped byte was in flight: the kernel answers
        # that byte with a reset, which may discard the answer before we read it.
        answer = RESET
    except TimeoutError:
        answer = b"<still open>"
    finally:
        dripping.cancel()
        writer.close()
    return answer, time.monotonic() - started


def _assert_all_408(results: list[tuple[bytes, float]]) -> None:
    """Every connection was answered 408 and then closed (none reset: the server
    closes lingering, so the bytes still dripping in cannot destroy the answer)."""
    statuses = [_status(a) if a != RESET else "reset" for a, _ in results]
    assert statuses.count(408) == len(results), {s: statuses.count(s) for s in set(statuses)}


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def _problem(answer: bytes) -> dict[str, object]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower(), head
    problem: dict[str, object] = json.loads(body)
    return problem


async def test_slow_headers_are_answered_408_and_closed(server_factory: Callable[..., Server]) -> None:
    """Finding: 1,000 slow-header connections were held forever (uvicorn has no
    deadline for a request whose headers never finish). 1,000 connections each send
    `GET /v1/health/live HTTP/1.1` and then one header byte every 0.3 s: with
    SKILLRUN_HEADER_TIMEOUT_S=1 the server answers each 408 and closes it within the
    deadline, and still serves others. Finding: a third of them once saw a reset
    instead of their 408 (closing with the next bytes unread); the close now lingers."""
    server = server_factory(env={"SKILLRUN_HEADER_TIMEOUT_S": "1"})
    results = await asyncio.gather(
        *(_trickle_until_closed(server.port, HEAD, b"a", 0.3, 20) for _ in range(1000))
    )
    _assert_all_408(results)
    assert max(lived for _, lived in results) < 6, sorted(lived for _, lived in results)[-5:]
    assert _problem(results[0][0])["status"] == 408
    assert httpx.get(server.url + "/v1/health/live").status_code == 200


async def test_a_connection_that_sends_nothing_is_closed(server_factory: Callable[..., Server]) -> None:
    """An idle connection that never sends a byte is closed at the header deadline too."""
    server = server_factory(env={"SKILLRUN_HEADER_TIMEOUT_S": "1"})
    answer, lived = await _trickle_until_closed(server.port, b"", b"", 5, 20)
    assert answer == b"" and lived < 6


async def test_slow_bodies_are_answered_408_and_closed(server_factory: Callable[..., Server]) -> None:
    """Finding: 1,000 slow-body connections were held forever. 1,000 connections each
    POST `/v1/skills/text.summarize/execute` with `Content-Length: 1000` and then one
    body byte every 0.3 s: with SKILLRUN_BODY_TIMEOUT_S=1 each gets a 408 problem
    and is closed within the deadline (lingering: no reset destroys the answer)."""
    server = server_factory(env={"SKILLRUN_BODY_TIMEOUT_S": "1"})
    head = (
        b"POST /v1/skills/text.summarize/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"x-api-key: " + API_KEY.encode() + b"\r\nContent-Length: 1000\r\n\r\n{"
    )
    results = await asyncio.gather(*(_trickle_until_closed(server.port, head, b" ", 0.3, 20) for _ in range(1000)))
    _assert_all_408(results)
    assert max(lived for _, lived in results) < 6, sorted(lived for _, lived in results)[-5:]
    assert "did not arrive within 1 s" in str(_problem(results[0][0])["detail"])


async def test_a_slow_body_nothing_reads_is_closed(server_factory: Callable[..., Server]) -> None:
    """A body sent to an operation that takes none is never read: its connection
    is closed shortly after the body deadline all the same."""
    server = server_factory(env={"SKILLRUN_BODY_TIMEOUT_S": "1"})
    head = HEAD + b"Content-Length: 1000\r\n\r\n"
    answer, lived = await _trickle_until_closed(server.port, head, b" ", 0.3, 20)
    assert _status(answer) == 200 and lived < 10


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def _huge_header(port: int, size: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(HEAD + b"X-Big: ")
    chunk = b"a" * 65536
    try:
        for _ in range(size // len(chunk)):
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass  # refused: the server stopped reading
    try:
        async with asyncio.timeout(10):
            return await reader.read()
    except (ConnectionError, TimeoutError):
        return RESET
    finally:
        writer.close()


async def test_oversized_headers_are_refused_431_with_bounded_memory(server_factory: Callable[..., Server]) -> None:
    """Finding: twenty 4 MB unfinished headers cost the server +93 MB (httptools has no
    header-size limit). Twenty connections each send a 4 MB `X-Big` header that never
    ends: each is answered 431 (or cut) and the server's memory grows by far less."""
    server = server_factory()
    before = _rss_kib(server.proc.pid)
    answers = await asyncio.gather(*(_huge_header(server.port, 4 * 1024 * 1024) for _ in range(20)))
    grown_mib = (_rss_kib(server.proc.pid) - before) / 1024
    # The server stops parsing at the limit and drops the rest (lingering), so the 431 arrives.
    assert all(_status(a) == 431 for a in answers), [a[:40] for a in answers]
    assert grown_mib < 8, grown_mib  # under 1 MiB measured; +28 MiB before (+93 MB in the issue)
    # A head just over the default 16 KiB, sent whole: the 431 arrives.
    answer, _ = await _trickle_until_closed(server.port, HEAD + b"X-Big: " + b"a" * 20_000, b"", 5, 10)
    assert _status(answer) == 431 and _problem(answer)["status"] == 431
    assert httpx.get(server.url + "/v1/health/live").status_code == 200


async def test_connections_past_the_cap_get_503(server_factory: Callable[..., Server]) -> None:
    """A connection cap (SKILLRUN_MAX_CONNECTIONS=5): with five connections open, the
    sixth is answered 503 problem+json with Retry-After; once they close, requests pass."""
    server = server_factory(env={"SKILLRUN_MAX_CONNECTIONS": "5"})
    held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(5)]
    await asyncio.sleep(0.2)
    r = httpx.get(server.url + "/v1/health/live")
    assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
    assert r.headers["retry-after"] == "1"
    for _, writer in held:
        writer.close()
    await asyncio.sleep(0.3)
    assert httpx.get(server.url + "/v1/health/live").status_code == 200


def _wrong_key_statuses(server: Server, forwarded: list[str]) -> list[int]:
    with httpx.Client(base_url=server.url) as c:
        return [
            c.get("/v1/runs", headers={"x-api-key": "guess", "X-Forwarded-For": f}).status_code for f in forwarded
        ]


def test_x_forwarded_for_is_ignored_by_default(server_factory: Callable[..., Server]) -> None:
    """Finding: a rotating X-Forwarded-For from 127.0.0.1 defeated the per-address limit
    on key guessing (uvicorn believes 127.0.0.1 by default). With SKILLRUN_RATE_LIMIT=3/minute,
    five wrong keys each claiming a new address: the fourth is 429."""
    server = server_factory(env={"SKILLRUN_RATE_LIMIT": "3/minute"})
    assert _wrong_key_statuses(server, [f"203.0.113.{i}" for i in range(5)]) == [401, 401, 401, 429, 429]


def test_x_forwarded_for_is_believed_only_from_allowed_proxies(server_factory: Callable[..., Server]) -> None:
    """`--forwarded-allow-ips 127.0.0.1` (a proxy on this host): each forwarded address
    has its own budget, and one address still runs out of its own."""
    server = server_factory(env={"SKILLRUN_RATE_LIMIT": "3/minute"}, args=["--forwarded-allow-ips", "127.0.0.1"])
    assert _wrong_key_statuses(server, [f"203.0.113.{i}" for i in range(5)]) == [401] * 5
    assert _wrong_key_statuses(server, ["198.51.100.7"] * 4) == [401, 401, 401, 429]
    other = server_factory(  # its own store: a SQLite file serves one process
        env={"SKILLRUN_RATE_LIMIT": "3/minute", "SKILLRUN_FORWARDED_ALLOW_IPS": "192.0.2.1", "SKILLRUN_DB": "other.db"}
    )
    assert _wrong_key_statuses(other, [f"203.0.113.{i}" for i in range(5)]) == [401, 401, 401, 429, 429]
