"""The new engine behaviour through the HTTP app: streams of DAG, retry, foreach and nested skills."""

from __future__ import annotations

import httpx
import pytest

from spec_tools import event_validator
from sse_util import check_order, parse_sse

pytestmark = pytest.mark.anyio

DOC = "# One\nMail ann@example.org today. Skills run.\n\n# Two\nSteps run in parallel. Retries back off.\n\n# Three\nThe end."


async def test_doc_pipeline_streams_every_event_in_order_and_matches_execute(client: httpx.AsyncClient) -> None:
    check = event_validator()
    r = await client.post(
        "/v1/skills/doc.pipeline/execute/stream",
        json={"inputs": {"document": DOC, "flaky_failures": 1}},
    )
    assert r.status_code == 200, r.text
    frames, _ = parse_sse(r.text)
    events = [f.json for f in frames]
    for e in events:
        check(e)
    check_order(events)
    types = [e["type"] for e in events]
    assert "step_retrying" in types
    nested = [e for e in events if e["type"] == "step_start" and "/" in (e["step_id"] or "")]
    assert {e["data"]["parent_step_id"] for e in nested} == {"summaries"}
    done = events[-1]
    assert done["status"] == "completed" and done["outputs"]["sections"] == 3
    body = (await client.post("/v1/skills/doc.pipeline/execute", json={"inputs": {"document": DOC, "flaky_failures": 0}})).json()
    assert body["status"] == "completed" and body["outputs"]["digest"].count("\n") == 3


async def test_ticker_stream_is_exactly_start_completed_pairs(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/skills/demo.ticker/execute/stream", json={"inputs": {"steps": 4}})
    events = [f.json for f in parse_sse(r.text)[0]]
    assert [e["type"] for e in events] == ["skill_start", *["step_start", "step_completed"] * 4, "skill_completed", "done"]


async def test_web_summarize_refuses_loopback_without_an_allow_entry(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/skills/web.summarize/execute", json={"inputs": {"url": "http://127.0.0.1:9/"}})
    body = r.json()
    assert body["status"] == "failed"
    assert body["error"]["kind"] == "http_refused"
    assert [s["status"] for s in body["steps"]] == ["failed", "skipped", "skipped"]
