"""The three bundled skills behave as the README promises, through both endpoints,
and the catalog, health and docs endpoints describe them."""

from __future__ import annotations

import json

import re
from typing import Any

import httpx
import pytest

from sse_util import check_order, parse_sse

pytestmark = pytest.mark.anyio

BUNDLED = {"text.summarize", "demo.showcase", "demo.ticker"}
RFC3339_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
SENTENCES = [
    "The river floods the valley every spring.",
    "Farmers plant rice when the river water recedes.",
    "The valley is famous for its rice and its river festivals.",
    "Tourists arrive in summer.",
    "Winter is quiet in the valley.",
]
TEXT = " ".join(SENTENCES)


@pytest.fixture
def client(shared_client: httpx.AsyncClient) -> httpx.AsyncClient:
    return shared_client


async def execute(client: httpx.AsyncClient, skill: str, inputs: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(f"/v1/skills/{skill}/execute", json={"inputs": inputs})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def stream(client: httpx.AsyncClient, skill: str, inputs: dict[str, Any]) -> list[dict[str, Any]]:
    r = await client.post(f"/v1/skills/{skill}/execute/stream", json={"inputs": inputs})
    assert r.status_code == 200, r.text
    frames, _ = parse_sse(r.text)
    events = [f.json for f in frames]
    # The envelope on every frame: the seed's fields, type == event name, ids 1..n.
    assert [int(f.id or 0) for f in frames] == list(range(1, len(frames) + 1))
    for f, e in zip(frames, events):
        assert "\n" not in f.data
        assert e.get("type", "done") == f.event
        if f.event != "done":
            assert {"type", "message", "timestamp", "step_id", "trace_id", "data"} <= set(e), e
            assert RFC3339_Z.fullmatch(e["timestamp"]), e["timestamp"]
    check_order(events)
    return events


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def summary_sentences(summary: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", summary.strip()) if s]


# -- text.summarize --------------------------------------------------------------------


async def test_summarize_outputs_a_summary_and_keywords(client: httpx.AsyncClient) -> None:
    body = await execute(client, "text.summarize", {"text": TEXT, "max_sentences": 3})
    assert body["skill_id"] == "text.summarize" and body["status"] == "completed"
    out = body["outputs"]
    assert isinstance(out["summary"], str)
    picked = summary_sentences(out["summary"])
    assert len(picked) == 3
    assert all(s in SENTENCES for s in picked), picked  # extractive: sentences of the text
    assert isinstance(out["keywords"], list) and out["keywords"]
    assert all(isinstance(k, str) for k in out["keywords"])
    assert {"river", "valley"} <= set(out["keywords"])
    assert "the" not in out["keywords"]  # content words, not stop words


async def test_summarize_default_is_two_sentences(client: httpx.AsyncClient) -> None:
    body = await execute(client, "text.summarize", {"text": TEXT})
    assert len(summary_sentences(body["outputs"]["summary"])) == 2


@pytest.mark.parametrize("n,want", [(1, 1), (4, 4), (20, 5)])
async def test_summarize_max_sentences_bounds(client: httpx.AsyncClient, n: int, want: int) -> None:
    body = await execute(client, "text.summarize", {"text": TEXT, "max_sentences": n})
    picked = summary_sentences(body["outputs"]["summary"])
    assert len(picked) == want
    # Kept in the text's order.
    assert picked == [s for s in SENTENCES if s in picked]


async def test_summarize_stream_and_execute_agree(client: httpx.AsyncClient) -> None:
    events = await stream(client, "text.summarize", {"text": TEXT, "max_sentences": 2})
    body = await execute(client, "text.summarize", {"text": TEXT, "max_sentences": 2})
    done = events[-1]
    assert done["outputs"] == body["outputs"]
    assert {k for k in done if k not in ("type", "message")} == set(body)
    assert types(events) == [
        "skill_start", "step_start", "step_completed", "step_start", "step_completed",
        "step_start", "step_completed", "skill_completed", "done",
    ]
    assert events[0]["data"]["execution_channel"] == "http-stream"


async def test_execute_records_channel_http_and_its_done_is_the_result(client: httpx.AsyncClient) -> None:
    """/execute runs are logged like streams (channel "http"); the log's done is the body."""
    body = await execute(client, "text.summarize", {"text": TEXT})
    r = await client.get(f"/v1/runs/{body['run_id']}/events")
    assert r.status_code == 200
    events = [f.json for f in parse_sse(r.text)[0]]
    check_order(events)
    assert events[0]["data"]["execution_channel"] == "http"
    done = dict(events[-1])
    assert done.pop("type") == "done"
    assert done.pop("message") == "Skill 'text.summarize' completed."
    assert done == body


# -- demo.showcase -------------------------------------------------------------------------


async def test_showcase_skips_the_detailed_step_by_default(client: httpx.AsyncClient) -> None:
    events = await stream(client, "demo.showcase", {"text": "Short text. Nothing private."})
    skipped = [e for e in events if e["type"] == "step_skipped"]
    assert "keywords" in [e["step_id"] for e in skipped]
    assert not [e for e in events if e.get("step_id") == "keywords" and e["type"] != "step_skipped"]
    assert "keywords" not in (events[-1]["outputs"] or {}) or events[-1]["outputs"]["keywords"] is None
    assert events[-1]["status"] == "completed"
    assert "step_degraded" not in types(events)


async def test_showcase_runs_the_detailed_step_when_asked(client: httpx.AsyncClient) -> None:
    events = await stream(client, "demo.showcase", {"text": "Short text. Nothing private.", "detailed": True})
    kinds = [(e["type"], e.get("step_id")) for e in events]
    assert ("step_start", "keywords") in kinds and ("step_completed", "keywords") in kinds
    assert ("step_skipped", "keywords") not in kinds
    assert events[-1]["outputs"]["keywords"]


@pytest.mark.parametrize("address", ["ann@example.org", "first.last+tag@mail.example.co.uk"])
async def test_showcase_degrades_and_redacts_an_email(client: httpx.AsyncClient, address: str) -> None:
    text = f"Please write to {address} before noon. The meeting is on Friday. Bring notes."
    events = await stream(client, "demo.showcase", {"text": text, "detailed": True})
    degraded = [e for e in events if e["type"] == "step_degraded"]
    assert [e["step_id"] for e in degraded] == ["split"]
    # The degraded step's start came first and it ended with step_degraded only.
    split_events = [e["type"] for e in events if e.get("step_id") == "split"]
    assert split_events == ["step_start", "step_degraded"]
    assert degraded[0]["data"]["findings"] == [{"kind": "email", "count": 1}]
    done = events[-1]
    assert done["status"] == "completed"  # a gate degrades the step; the run goes on
    assert "REDACTED" in done["outputs"]["summary"]
    # The address is in no event of the stream at all, not only in the outputs.
    assert all(address not in json.dumps(e) for e in events)
    body = await execute(client, "demo.showcase", {"text": text})
    assert address not in str(body["outputs"])
    assert {"id": "split", "status": "degraded"}.items() <= next(
        s for s in body["steps"] if s["id"] == "split"
    ).items()


async def test_showcase_fails_on_request(client: httpx.AsyncClient) -> None:
    events = await stream(client, "demo.showcase", {"text": "Just text. More text.", "fail": True})
    assert types(events)[-3:] == ["step_failed", "skill_completed", "done"]
    failed = events[-3]
    assert failed["step_id"] == "finish"
    assert failed["data"]["error"]["message"]
    assert events[-2]["data"]["status"] == "failed"
    assert events[-1]["status"] == "failed"
    body = await execute(client, "demo.showcase", {"text": "Just text. More text.", "fail": True})
    assert body["status"] == "failed"
    assert body["error"]["message"]


async def test_showcase_does_not_fail_by_default(client: httpx.AsyncClient) -> None:
    body = await execute(client, "demo.showcase", {"text": "Just text."})
    assert body["status"] == "completed"
    assert "error" not in body


# -- demo.ticker --------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 3, 25])
async def test_ticker_event_sequence_is_exact(client: httpx.AsyncClient, steps: int) -> None:
    events = await stream(client, "demo.ticker", {"steps": steps})
    assert types(events) == ["skill_start"] + ["step_start", "step_completed"] * steps + ["skill_completed", "done"]
    assert events[-1]["outputs"] == {"ticks": steps}


async def test_ticker_defaults_to_three_steps(client: httpx.AsyncClient) -> None:
    events = await stream(client, "demo.ticker", {})
    assert types(events).count("step_completed") == 3
    body = await execute(client, "demo.ticker", {})
    assert body["outputs"] == {"ticks": 3}


# -- catalog, health, docs ------------------------------------------------------------------


async def test_list_skills_has_the_bundled_ones(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/skills")
    assert r.status_code == 200
    skills = {s["id"]: s for s in r.json()["skills"]}
    assert BUNDLED <= set(skills)
    for s in skills.values():
        assert s["version"] and s["description"]
    legacy = await client.get("/v1/skills/list")
    assert legacy.status_code == 200 and legacy.json() == r.json()


@pytest.mark.parametrize("skill", sorted(BUNDLED))
async def test_describe_skill(client: httpx.AsyncClient, skill: str) -> None:
    r = await client.get(f"/v1/skills/{skill}")
    assert r.status_code == 200
    d = r.json()
    assert d["id"] == skill and d["version"]
    assert d["inputs"]["type"] == "object"  # a JSON Schema
    assert d["outputs"]["type"] == "object"
    assert [s["id"] for s in d["steps"]]
    legacy = await client.get(f"/v1/skills/{skill}/describe")
    assert legacy.status_code == 200 and legacy.json() == d


async def test_describe_summarize_documents_its_inputs(client: httpx.AsyncClient) -> None:
    d = (await client.get("/v1/skills/text.summarize")).json()
    assert d["inputs"]["required"] == ["text"]
    ms = d["inputs"]["properties"]["max_sentences"]
    assert (ms["minimum"], ms["maximum"], ms["default"]) == (1, 20, 2)
    assert set(d["outputs"]["properties"]) == {"summary", "keywords"}


@pytest.mark.parametrize("path", ["/v1/skills/nope", "/v1/skills/nope/describe"])
async def test_describe_unknown_skill_is_404(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_health(client: httpx.AsyncClient) -> None:
    live = await client.get("/v1/health/live", headers={"x-api-key": ""})
    assert live.status_code == 200 and live.json()["status"] == "ok"
    ready = await client.get("/v1/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    legacy = await client.get("/v1/health")
    assert legacy.status_code == 200 and legacy.json()["status"] == "ok"


async def test_openapi_json_serves_each_skill_and_marks_aliases_deprecated(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json", headers={"x-api-key": ""})
    assert r.status_code == 200
    spec = r.json()
    assert spec["openapi"].startswith("3.0")
    for skill in BUNDLED:
        assert f"/v1/skills/{skill}/execute" in spec["paths"]
        assert f"/v1/skills/{skill}/execute/stream" in spec["paths"]
    for path in ("/v1/health", "/v1/skills/list", "/v1/skills/{skill_id}/describe"):
        assert spec["paths"][path]["get"]["deprecated"] is True, path
    for path in ("/v1/health/live", "/v1/skills", "/v1/skills/{skill_id}"):
        assert not spec["paths"][path]["get"].get("deprecated"), path


async def test_swagger_ui_without_a_key(client: httpx.AsyncClient) -> None:
    client.headers.pop("x-api-key")
    r = await client.get("/docs/")
    assert r.status_code == 200
    assert "text/html" in r.headers["content-type"]
    assert "swagger" in r.text.lower()
