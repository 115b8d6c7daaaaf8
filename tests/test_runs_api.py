"""The runs API in-process (responses checked against the spec): async runs, get, list
filters and pages, owner-only visibility, cancel, idempotency, resume cursors; once
per run store (memory, SQLite, Redis, Redis Cluster)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import httpx
import pytest

from conftest import OTHER_KEY, asgi_client
from sse_util import check_order, parse_sse, skipped_indices
from stores import STORES, store_db

pytestmark = pytest.mark.anyio


@pytest.fixture(params=STORES)
async def client(
    request: pytest.FixtureRequest, tmp_path: Path, app_factory: Callable[..., Any]
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a new app on each run store (no lifespan in-process: the test opens it)."""
    db, options = store_db(request, tmp_path)
    app = app_factory(db=db, **options)
    await app.services.store.open()
    try:
        async with asgi_client(app) as c:
            yield c
        await app.services.runs.drain(5)
    finally:
        await app.services.store.close()

TICKER = "/v1/skills/demo.ticker"


async def _async_run(client: httpx.AsyncClient, inputs: dict[str, Any], **kw: Any) -> dict[str, Any]:
    r = await client.post(f"{TICKER}/execute/async", json={"inputs": inputs}, **kw)
    assert r.status_code == 202, r.text
    return r.json()


async def _until_finished(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    for _ in range(500):
        r = await client.get(f"/v1/runs/{run_id}")
        assert r.status_code == 200, r.text
        if r.json()["finished_at"] is not None:
            return r.json()
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} never finished")


async def _events(client: httpx.AsyncClient, run_id: str, **kw: Any) -> list[dict[str, Any]]:
    r = await client.get(f"/v1/runs/{run_id}/events", **kw)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-run-id"] == run_id
    frames, _ = parse_sse(r.text)
    return [{**f.json, "_id": int(f.id)} for f in frames]


async def test_async_answers_202_with_location_and_polling_reaches_the_result(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{TICKER}/execute/async", json={"inputs": {"steps": 3, "delay_ms": 5}})
    assert r.status_code == 202, r.text
    run = r.json()
    assert run["status"] in ("queued", "running") and run["channel"] == "http-async"
    assert r.headers["location"] == f"/v1/runs/{run['run_id']}"
    assert r.headers["x-run-id"] == run["run_id"]
    assert run["owner"].startswith("key_") and "test-key" not in run["owner"]  # the identity, never the key
    done = await _until_finished(client, run["run_id"])
    assert done["status"] == "completed"
    assert done["result"]["outputs"] == {"ticks": 3} and done["result"]["run_id"] == run["run_id"]
    assert done["inputs"] == {"steps": 3, "delay_ms": 5}
    events = await _events(client, run["run_id"])
    check_order(events)
    assert events[0]["data"]["execution_channel"] == "http-async"
    assert all(e["run_id"] == run["run_id"] for e in events)
    assert [e["_id"] for e in events] == list(range(1, len(events) + 1))


async def test_execute_and_stream_create_runs_visible_by_their_x_run_id(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{TICKER}/execute", json={"inputs": {"steps": 2}})
    run = (await client.get(f"/v1/runs/{r.headers['x-run-id']}")).json()
    assert run["status"] == "completed" and run["channel"] == "http" and run["result"] == r.json()
    s = await client.post(f"{TICKER}/execute/stream", json={"inputs": {"steps": 2}})
    frames, _ = parse_sse(s.text)
    replay = await _events(client, s.headers["x-run-id"])
    assert [f.json for f in frames] == [{k: v for k, v in e.items() if k != "_id"} for e in replay]


async def test_events_resume_after_last_event_id_or_after_and_header_wins(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{TICKER}/execute", json={"inputs": {"steps": 4}})
    run_id = r.headers["x-run-id"]
    full = await _events(client, run_id)
    n = len(full)
    for cut in range(0, n + 1):
        rest = await _events(client, run_id, headers={"Last-Event-ID": str(cut)})
        assert full[:cut] + rest == full
    assert await _events(client, run_id, params={"after": 3}) == full[3:]
    assert await _events(client, run_id, params={"after": 1}, headers={"Last-Event-ID": "5"}) == full[5:]
    # Past the log's end (an id never issued): a 409 naming `after` (test_resume_cursor.py).
    assert (await client.get(f"/v1/runs/{run_id}/events", params={"after": n + 10})).status_code == 409


async def test_bad_cursors_are_400_problems(client: httpx.AsyncClient) -> None:
    run_id = (await client.post(f"{TICKER}/execute", json={"inputs": {"steps": 1}})).headers["x-run-id"]
    for kw in ({"headers": {"Last-Event-ID": "abc"}}, {"params": {"after": "-1"}}):
        r = await client.get(f"/v1/runs/{run_id}/events", **kw)
        assert r.status_code == 400, r.text
        assert r.headers["content-type"] == "application/problem+json"
    r = await client.get("/v1/runs", params={"cursor": "zz"})
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"


async def test_another_key_gets_404_on_every_run_endpoint_and_an_empty_list(client: httpx.AsyncClient) -> None:
    run = await _async_run(client, {"steps": 50, "delay_ms": 20})
    other = {"x-api-key": OTHER_KEY}
    rid = run["run_id"]
    for method, path in (("GET", f"/v1/runs/{rid}"), ("GET", f"/v1/runs/{rid}/events"), ("POST", f"/v1/runs/{rid}/cancel")):
        r = await client.request(method, path, headers=other)
        assert r.status_code == 404, (path, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    assert (await client.get("/v1/runs", headers=other)).json() == {"runs": [], "next_cursor": None}
    # The same 404 as for an id that never existed: nothing tells the two apart.
    missing = await client.get("/v1/runs/run_000000000000000000000000", headers=other)
    assert missing.status_code == 404
    # Its owner still can, and the other key's cancel did nothing.
    assert (await client.get(f"/v1/runs/{rid}")).json()["status"] in ("queued", "running")
    assert (await client.post(f"/v1/runs/{rid}/cancel")).status_code == 202


async def test_cancel_ends_the_log_cancelled_and_a_second_cancel_is_409(client: httpx.AsyncClient) -> None:
    run = await _async_run(client, {"steps": 1000, "delay_ms": 20})
    for _ in range(200):  # until the engine is inside a step
        if (await client.get(f"/v1/runs/{run['run_id']}")).json()["status"] == "running":
            break
        await asyncio.sleep(0.01)
    r = await client.post(f"/v1/runs/{run['run_id']}/cancel")
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/v1/runs/{run['run_id']}"
    done = await _until_finished(client, run["run_id"])
    assert done["status"] == "cancelled"
    assert done["result"]["error"]["kind"] == "cancelled"
    assert done["result"]["outputs"] != {"ticks": 1000}
    events = await _events(client, run["run_id"])
    check_order(events)
    assert events[-2]["type"] == "skill_completed" and events[-2]["data"]["status"] == "cancelled"
    assert events[-1]["status"] == "cancelled"
    # The open item is closed (step_failed, cancelled); the items that never started are step_skipped after it.
    failed = [e for e in events if e["type"] == "step_failed"]
    assert len(failed) == 1 and failed[0]["data"]["error"]["kind"] == "cancelled", failed
    tail = events[events.index(failed[0]) + 1 : -2]
    assert tail and {e["type"] for e in tail} == {"step_skipped"}
    assert skipped_indices(tail) == list(range(failed[0]["data"]["index"] + 1, 1000))
    # Issue 17: 9,998 step_skipped events (3.4 MB) for one cancel; now one for the run of items.
    assert len(tail) == 1 and tail[0]["data"]["last_index"] == 999 and tail[0]["data"]["items"] == 1000
    # ... and the step's status in the result agrees with the run's.
    assert [s["status"] for s in done["result"]["steps"]] == ["cancelled"]
    again = await client.post(f"/v1/runs/{run['run_id']}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]


async def test_list_is_newest_first_filtered_and_paged_without_repeats(client: httpx.AsyncClient) -> None:
    ids = []
    for i in range(5):
        r = await client.post(f"{TICKER}/execute", json={"inputs": {"steps": 1}})
        ids.append(r.headers["x-run-id"])
    r = await client.post("/v1/skills/text.summarize/execute", json={"inputs": {"text": "One. Two."}})
    summarize = r.headers["x-run-id"]
    slow = await _async_run(client, {"steps": 1000, "delay_ms": 50})
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "skill_id": "demo.ticker", "status": "completed"}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/runs", params=params)).json()
        assert len(page["runs"]) <= 2
        assert all("inputs" not in r and "result" not in r for r in page["runs"])
        seen += [r["run_id"] for r in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    everything = (await client.get("/v1/runs", params={"limit": 100})).json()["runs"]
    assert [r["run_id"] for r in everything] == [slow["run_id"], summarize, *ids[::-1]]
    running = (await client.get("/v1/runs", params={"status": "running"})).json()["runs"]
    assert [r["run_id"] for r in running] in ([slow["run_id"]], [])  # [] only if it is still queued
    assert (await client.post(f"/v1/runs/{slow['run_id']}/cancel")).status_code == 202
    for bad in ({"limit": 0}, {"limit": 101}, {"status": "sleeping"}):
        assert (await client.get("/v1/runs", params=bad)).status_code == 400


async def test_idempotency_key_returns_the_same_run_and_replays_it(client: httpx.AsyncClient) -> None:
    body = {"inputs": {"steps": 3}}
    key = {"Idempotency-Key": "order-42"}
    first = await client.post(f"{TICKER}/execute", json=body, headers=key)
    again = await client.post(f"{TICKER}/execute", json=body, headers=key)
    assert first.headers["x-run-id"] == again.headers["x-run-id"]
    assert first.json() == again.json()
    # The stream with the same key and body replays that run instead of starting one.
    stream = await client.post(f"{TICKER}/execute/stream", json=body, headers=key)
    assert stream.headers["x-run-id"] == first.headers["x-run-id"]
    frames, _ = parse_sse(stream.text)
    check_order([f.json for f in frames])
    assert frames[-1].json["run_id"] == first.headers["x-run-id"]
    queued = await client.post(f"{TICKER}/execute/async", json=body, headers=key)
    assert queued.status_code == 202 and queued.json()["run_id"] == first.headers["x-run-id"]
    runs = (await client.get("/v1/runs")).json()["runs"]
    assert [r["run_id"] for r in runs] == [first.headers["x-run-id"]]


async def test_idempotency_key_with_another_body_is_409_naming_the_header(client: httpx.AsyncClient) -> None:
    """A valid request whose key names another run conflicts with that run: 409, not 422
    (schemathesis, from outside, rightly reads a 422 there as a valid request refused)."""
    key = {"Idempotency-Key": "k-1"}
    await client.post(f"{TICKER}/execute", json={"inputs": {"steps": 1}}, headers=key)
    r = await client.post(f"{TICKER}/execute", json={"inputs": {"steps": 2}}, headers=key)
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["field"] == "Idempotency-Key"
    r = await client.post("/v1/skills/text.summarize/execute", json={"inputs": {"text": "x"}}, headers=key)
    assert r.status_code == 409


async def test_idempotency_keys_are_per_owner(client: httpx.AsyncClient) -> None:
    body = {"inputs": {"steps": 1}}
    mine = await client.post(f"{TICKER}/execute", json=body, headers={"Idempotency-Key": "shared"})
    theirs = await client.post(
        f"{TICKER}/execute", json=body, headers={"Idempotency-Key": "shared", "x-api-key": OTHER_KEY}
    )
    assert theirs.status_code == 200
    assert theirs.headers["x-run-id"] != mine.headers["x-run-id"]


async def test_malformed_idempotency_key_is_400(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{TICKER}/execute", json={"inputs": {"steps": 1}}, headers={"Idempotency-Key": "a b"})
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"


async def test_the_served_spec_has_per_skill_async_operations_with_the_skill_inputs(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    op = spec["paths"]["/v1/skills/demo.ticker/execute/async"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["inputs"]["properties"]["steps"]["maximum"] == 10000
    assert "202" in op["responses"]
    r = await client.post(f"{TICKER}/execute/async", json={"inputs": {"steps": 0}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "inputs.steps"


async def test_readiness_reports_the_store_and_that_it_answers(
    client: httpx.AsyncClient, request: pytest.FixtureRequest
) -> None:
    """GET /v1/health/ready names the run store SKILLRUN_DB selected and says it is reachable."""
    r = await client.get("/v1/health/ready")
    assert r.status_code == 200, r.text
    kind = request.node.callspec.params["client"].removesuffix("-cluster")
    assert r.json()["store"] == {"kind": kind, "reachable": True}
