"""Issue 17, "Clients and docs": a long poll for clients that cannot stream
(``GET /v1/runs/{id}?wait=``), deleting a finished run (``DELETE /v1/runs/{id}``),
and ``Idempotent-Replayed: true`` when a repeated ``Idempotency-Key`` finds the
earlier run. In-process, every response checked against the spec."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from conftest import OTHER_KEY

pytestmark = pytest.mark.anyio

TICKER = "/v1/skills/demo.ticker"


async def _start(client: httpx.AsyncClient, steps: int, delay_ms: int, **kw: Any) -> dict[str, Any]:
    r = await client.post(f"{TICKER}/execute/async", json={"inputs": {"steps": steps, "delay_ms": delay_ms}}, **kw)
    assert r.status_code == 202, r.text
    run: dict[str, Any] = r.json()
    return run


async def _finished(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    r = await client.get(f"/v1/runs/{run_id}", params={"wait": 30})
    assert r.status_code == 200 and r.json()["finished_at"] is not None, r.text
    run: dict[str, Any] = r.json()
    return run


async def test_get_run_with_wait_answers_as_soon_as_the_run_ends(client: httpx.AsyncClient) -> None:
    """`GET /v1/runs/{id}?wait=SECONDS` long-polls until the run ends: a run of 5 x 60 ms
    asked with wait=30 answers `completed` with its result, well before 30 s."""
    run = await _start(client, 5, 60)
    started = time.monotonic()
    r = await client.get(f"/v1/runs/{run['run_id']}", params={"wait": 30})
    took = time.monotonic() - started
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed" and r.json()["result"]["outputs"] == {"ticks": 5}
    assert took < 10, f"answered after {took:.1f} s, not when the run ended"


async def test_get_run_with_wait_answers_the_run_as_it_stands_when_the_wait_is_over(client: httpx.AsyncClient) -> None:
    """A run still going when `wait` (0.3 s) passes is answered as it stands (`running`),
    not an error, and the client asks again."""
    run = await _start(client, 50, 200)
    try:
        started = time.monotonic()
        r = await client.get(f"/v1/runs/{run['run_id']}", params={"wait": 0.3})
        took = time.monotonic() - started
        assert r.status_code == 200, r.text
        assert r.json()["status"] in ("queued", "running") and "result" not in r.json()
        assert 0.25 <= took < 5, took
    finally:
        await client.post(f"/v1/runs/{run['run_id']}/cancel")


async def test_get_run_wait_over_60_seconds_is_a_400_naming_wait(client: httpx.AsyncClient) -> None:
    """`wait` is at most 60 s: `?wait=61` is refused with a problem naming `wait`, never a hang."""
    run = await _start(client, 1, 0)
    r = await client.get(f"/v1/runs/{run['run_id']}", params={"wait": 61})
    assert r.status_code == 400, r.text
    assert "wait" in r.json()["detail"]


async def test_delete_a_finished_run_answers_204_and_its_run_and_events_are_gone(client: httpx.AsyncClient) -> None:
    """`DELETE /v1/runs/{id}` for a finished run: 204; then the run and its events are 404."""
    run = await _finished(client, (await _start(client, 2, 0))["run_id"])
    r = await client.delete(f"/v1/runs/{run['run_id']}")
    assert r.status_code == 204 and r.content == b""
    assert (await client.get(f"/v1/runs/{run['run_id']}")).status_code == 404
    assert (await client.get(f"/v1/runs/{run['run_id']}/events")).status_code == 404
    assert (await client.delete(f"/v1/runs/{run['run_id']}")).status_code == 404
    listed = (await client.get("/v1/runs")).json()["runs"]
    assert run["run_id"] not in [r["run_id"] for r in listed]


async def test_delete_a_run_still_going_is_409_and_the_run_goes_on(client: httpx.AsyncClient) -> None:
    """`DELETE` on a run still running is 409 (cancel it first); the run is untouched."""
    run = await _start(client, 50, 100)
    try:
        r = await client.delete(f"/v1/runs/{run['run_id']}")
        assert r.status_code == 409, r.text
        assert "cancel" in r.json()["detail"]
        assert (await client.get(f"/v1/runs/{run['run_id']}")).json()["status"] in ("queued", "running")
    finally:
        await client.post(f"/v1/runs/{run['run_id']}/cancel")
    await _finished(client, run["run_id"])
    assert (await client.delete(f"/v1/runs/{run['run_id']}")).status_code == 204


async def test_delete_another_keys_run_is_404_and_leaves_it(client: httpx.AsyncClient) -> None:
    """Only the owner deletes: another key's `DELETE` is 404 (as for any run it cannot see)."""
    run = await _finished(client, (await _start(client, 1, 0))["run_id"])
    r = await client.delete(f"/v1/runs/{run['run_id']}", headers={"x-api-key": OTHER_KEY})
    assert r.status_code == 404, r.text
    assert (await client.get(f"/v1/runs/{run['run_id']}")).status_code == 200


async def test_deleting_a_run_frees_its_idempotency_key(client: httpx.AsyncClient) -> None:
    """The key goes with its run: the same `Idempotency-Key` after a delete starts a new run."""
    headers = {"Idempotency-Key": "delete-me-1"}
    first = await _start(client, 1, 0, headers=headers)
    await _finished(client, first["run_id"])
    assert (await client.delete(f"/v1/runs/{first['run_id']}")).status_code == 204
    second = await _start(client, 1, 0, headers=headers)
    assert second["run_id"] != first["run_id"]


async def test_repeated_idempotency_key_answers_with_idempotent_replayed_true(client: httpx.AsyncClient) -> None:
    """A repeated `Idempotency-Key` returns the earlier run with `Idempotent-Replayed: true`
    on all three execute endpoints; the first answer has no such header."""
    body = {"inputs": {"steps": 1, "delay_ms": 0}}
    for suffix in ("/execute", "/execute/async", "/execute/stream"):
        headers = {"Idempotency-Key": f"replay{suffix.replace('/', '-')}"}
        first = await client.post(f"{TICKER}{suffix}", json=body, headers=headers)
        again = await client.post(f"{TICKER}{suffix}", json=body, headers=headers)
        assert first.status_code in (200, 202) and again.status_code == first.status_code, again.text
        assert "idempotent-replayed" not in first.headers, suffix
        assert again.headers.get("idempotent-replayed") == "true", suffix
        assert again.headers["x-run-id"] == first.headers["x-run-id"]
        await asyncio.sleep(0)
