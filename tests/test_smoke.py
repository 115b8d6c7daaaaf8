"""End to end through the ASGI app: the three bundled skills and both endpoints."""

from __future__ import annotations

import httpx
import pytest

from sse_util import check_order, parse_sse

pytestmark = pytest.mark.anyio


async def test_execute_text_summarize(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/skills/text.summarize/execute",
        json={"inputs": {"text": "Cats purr. Dogs bark loudly. Cats sleep a lot.", "max_sentences": 1}},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "completed"
    assert isinstance(body["outputs"]["summary"], str) and body["outputs"]["summary"]
    assert "cats" in body["outputs"]["keywords"]
    assert r.headers["x-run-id"] == body["run_id"]
    assert r.headers["x-trace-id"] == body["trace_id"]


async def test_stream_order_and_done_matches_execute_shape(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/skills/demo.showcase/execute/stream",
        json={"inputs": {"text": "Write to ann@example.org today. It works.", "detailed": True}},
        headers={"x-trace-id": "trace-abc"},
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    frames, _ = parse_sse(r.text)
    events = [f.json for f in frames]
    check_order(events)
    assert [int(f.id) for f in frames] == list(range(1, len(frames) + 1))
    assert all(f.event == e["type"] for f, e in zip(frames, events))
    assert all(e["trace_id"] == "trace-abc" for e in events)
    assert events[0]["data"]["execution_channel"] == "http-stream"
    assert "step_degraded" in [e["type"] for e in events]
    assert "ann@example.org" not in str(events[-1]["outputs"])
