"""The spec served at /openapi.json: exactly the skills that run here, each operation listed once."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import yaml
from skillrun.http.spec import TEMPLATED

pytestmark = pytest.mark.anyio


async def test_served_spec_has_no_templated_execute_operations(client: httpx.AsyncClient) -> None:
    """Issue 13: schemathesis sent loaded ids through the templated `{skill_id}/execute*`
    operations (negative cases a concrete operation served with 200, links that sent a
    loaded id with a body meant for any skill, POSTs to a path that "had" only OPTIONS)."""
    spec = (await client.get("/openapi.json")).json()
    assert not [p for p in spec["paths"] if "{skill_id}/execute" in p]
    for skill in ("demo.ticker", "text.summarize"):
        for suffix in TEMPLATED:
            item = spec["paths"][f"/v1/skills/{skill}{suffix}"]
            assert set(item) == {"options", "post"}, item.keys()
            assert all(p.get("name") != "skill_id" for p in item["options"].get("parameters", []))


async def test_unknown_skill_is_still_routed_to_a_404_problem(client: httpx.AsyncClient) -> None:
    for suffix in TEMPLATED:
        r = await client.post(f"/v1/skills/no.such.skill{suffix}", json={"inputs": {}})
        assert r.status_code == 404, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert "no.such.skill" in r.json()["detail"]


async def test_every_operation_is_listed_under_one_tag(client: httpx.AsyncClient) -> None:
    """Issue 17: the templated `/execute/async` appeared twice in Swagger UI (tags execute and runs)."""
    spec = (await client.get("/openapi.json")).json()
    many = [f"{m} {p}" for p, item in spec["paths"].items() for m, op in item.items()
            if isinstance(op, dict) and len(op.get("tags", [])) > 1]
    assert many == []


async def test_yaml_and_json_serve_the_same_spec(client: httpx.AsyncClient) -> None:
    as_json = (await client.get("/openapi.json")).json()
    as_yaml = yaml.safe_load((await client.get("/openapi.yaml")).text)
    assert as_yaml == as_json
