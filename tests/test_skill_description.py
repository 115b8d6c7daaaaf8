"""``GET /v1/skills/{id}`` describes every step fully enough to draw the skill's graph.

The console (issue 16) draws nodes and edges from this answer alone: resolved
``after`` edges, every gate with its policy and stage, retry/timeout/on_error,
``foreach`` with its parallelism, and nested ``skill:`` steps.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(shared_client: httpx.AsyncClient) -> httpx.AsyncClient:
    return shared_client


async def steps_of(client: httpx.AsyncClient, skill_id: str) -> dict[str, dict[str, Any]]:
    response = await client.get(f"/v1/skills/{skill_id}")
    assert response.status_code == 200, response.text
    return {s["id"]: s for s in response.json()["steps"]}


async def test_after_resolves_the_edges_written_or_implied(client: httpx.AsyncClient) -> None:
    """A step without `needs` waits for the step before; `needs: []` for none; written needs as written."""
    steps = await steps_of(client, "doc.pipeline")
    assert steps["sections"]["after"] == []
    assert steps["keywords"]["after"] == [] and steps["keywords"]["needs"] == []
    assert steps["digest"]["after"] == ["summaries", "enrich"]
    showcase = await steps_of(client, "demo.showcase")
    assert showcase["keywords"]["after"] == ["split"] and "needs" not in showcase["keywords"]


async def test_every_gate_is_listed_with_policy_and_stage(client: httpx.AsyncClient) -> None:
    """`gate: { uses: pii, policy: warn }` is described as such, not only as the first gate's name."""
    steps = await steps_of(client, "doc.pipeline")
    assert steps["digest"]["gates"] == [{"uses": "pii", "policy": "warn", "stage": "post"}]
    assert steps["summaries"]["gates"] == [{"uses": "pii", "policy": "degrade", "stage": "post"}]
    assert steps["digest"]["gate"] == "pii"  # the older field stays
    assert "gates" not in steps["sections"]


async def test_retry_timeout_and_fallback_are_described(client: httpx.AsyncClient) -> None:
    """`retry: {max_attempts: 3, backoff: {initial_ms: 50, max_ms: 400, multiplier: 2}, jitter: 0.2, on: [...]}`."""
    steps = await steps_of(client, "doc.pipeline")
    enrich = steps["enrich"]
    assert enrich["retry"] == {
        "max_attempts": 3,
        "backoff": {"initial_ms": 50, "max_ms": 400, "multiplier": 2},
        "jitter": 0.2,
        "on": ["capability_error", "timeout"],
    }
    assert enrich["timeout_s"] == 2
    assert enrich["on_error"] == "fallback" and enrich["fallback"] == {"uses": "util.echo"}
    assert steps["deliver"]["on_error"] == "continue" and "fallback" not in steps["deliver"]
    assert steps["sections"]["on_error"] == "fail" and "retry" not in steps["sections"]


async def test_foreach_and_nested_skill_steps_are_described(client: httpx.AsyncClient) -> None:
    """`uses: skill:text.summarize` with `foreach` and `max_parallel: 4`."""
    summaries = (await steps_of(client, "doc.pipeline"))["summaries"]
    assert summaries["skill"] == "text.summarize"
    assert summaries["foreach"] == "steps.sections.sections" and summaries["max_parallel"] == 4
    assert "skill" not in (await steps_of(client, "doc.pipeline"))["sections"]
