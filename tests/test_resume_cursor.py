"""Resume cursors: an id the run never issued is a 409 naming the cursor and the log's last id."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.anyio

TICKER = "/v1/skills/demo.ticker"


async def _finished_run(client: httpx.AsyncClient, steps: int = 2) -> tuple[str, int]:
    r = await client.post(f"{TICKER}/execute", json={"inputs": {"steps": steps}})
    assert r.status_code == 200, r.text
    run_id = r.headers["x-run-id"]
    events = await client.get(f"/v1/runs/{run_id}/events")
    last = max(int(line[4:]) for line in events.text.splitlines() if line.startswith("id: "))
    return run_id, last


async def test_last_event_id_past_the_end_is_a_409_naming_the_header_and_last_id(client: httpx.AsyncClient) -> None:
    """Issue 13: `GET /v1/runs/{id}/events` with a `Last-Event-ID` past the end of the run's
    log (an id the server never issued) answered an empty 200 stream."""
    run_id, last = await _finished_run(client)
    for cursor in (last + 1, last + 1000, 10**18 - 1):
        r = await client.get(f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": str(cursor)})
        assert r.status_code == 409, (cursor, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert problem["errors"][0]["field"] == "Last-Event-ID"
        assert f"its last id is {last}" in problem["detail"] and str(cursor) in problem["detail"]


async def test_after_past_the_end_is_a_409_naming_after(client: httpx.AsyncClient) -> None:
    run_id, last = await _finished_run(client)
    r = await client.get(f"/v1/runs/{run_id}/events", params={"after": last + 3})
    assert r.status_code == 409
    assert r.json()["errors"][0]["field"] == "after" and f"its last id is {last}" in r.json()["detail"]


async def test_cursor_equal_to_the_last_id_of_a_finished_run_is_an_empty_stream(client: httpx.AsyncClient) -> None:
    run_id, last = await _finished_run(client)
    r = await client.get(f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": str(last)})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.text == ""


async def test_every_issued_cursor_is_accepted(client: httpx.AsyncClient) -> None:
    """The binary search that finds the last id must never refuse an id that exists."""
    run_id, last = await _finished_run(client, steps=7)
    for cursor in range(0, last + 1):
        r = await client.get(f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": str(cursor)})
        assert r.status_code == 200, (cursor, r.text)
