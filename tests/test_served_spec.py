"""Issue 17: what a new user sees of the served contract and the edge.

Swagger UI's "Servers" dropdown was empty (``servers: [{url: ''}]``); the routing
extensions ``x-apikeyInfoFunc``, ``x-openapi-router-controller`` and
``x-skillrun-skill`` leaked into ``/openapi.json``; there was no way to learn what
capabilities exist (``GET /v1/capabilities``); readiness said ``skills: 5`` even when
every user skill file was skipped; the 401 did not name the ``x-api-key`` header;
CORS did not allow ``DELETE`` nor expose ``Idempotent-Replayed``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
from conftest import API_KEY, asgi_client
from skillrun.capabilities import default_registry
from skillrun.http.servedspec import INTERNAL_KEYS

pytestmark = pytest.mark.anyio

PAGE = "http://page.example:5173"


def _keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for v in node.values() for k in _keys(v)}
    if isinstance(node, list):
        return {k for v in node for k in _keys(v)}
    return set()


async def test_served_spec_has_a_named_server_for_swagger_uis_dropdown(client: httpx.AsyncClient) -> None:
    """`servers: [{url: ''}]` left Swagger UI's "Servers" dropdown empty: the served spec
    names a relative url and says what it is, in JSON and YAML alike."""
    spec = (await client.get("/openapi.json")).json()
    assert spec["servers"] == [{"url": "/", "description": spec["servers"][0]["description"]}]
    assert spec["servers"][0]["description"].strip()
    r = await client.get("/openapi.yaml")
    assert r.status_code == 200 and "description: This server" in r.text


async def test_served_spec_under_a_root_path_names_that_path(app_factory: Callable[..., Any]) -> None:
    """Behind a proxy that mounts the app at `/skillrun`, the server url is `/skillrun`."""
    app = app_factory()
    transport = httpx.ASGITransport(app=app, root_path="/skillrun")
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        spec = (await c.get("/openapi.json")).json()
    assert spec["servers"][0]["url"] == "/skillrun"


async def test_routing_extensions_do_not_leak_into_the_served_spec(client: httpx.AsyncClient) -> None:
    """`x-apikeyInfoFunc`, `x-openapi-router-controller` and `x-skillrun-skill` are for
    routing only: none appears anywhere in `/openapi.json` or `/openapi.yaml`, while the
    routing they drive still works (a per-skill operation runs its skill, a key is checked)."""
    spec = (await client.get("/openapi.json")).json()
    assert not (INTERNAL_KEYS & _keys(spec))
    yaml_text = (await client.get("/openapi.yaml")).text
    assert not [k for k in INTERNAL_KEYS if k in yaml_text]
    # The contract's own extensions stay (clients and schemathesis read them).
    assert "x-contentSchema" in json.dumps(spec)
    r = await client.post("/v1/skills/demo.ticker/execute", json={"inputs": {"steps": 1, "delay_ms": 0}})
    assert r.status_code == 200 and r.json()["skill_id"] == "demo.ticker"
    assert (await client.get("/v1/skills", headers={"x-api-key": "wrong"})).status_code == 401


async def test_private_docs_guard_the_yaml_spec_too(app_factory: Callable[..., Any]) -> None:
    """With `SKILLRUN_PUBLIC_DOCS=0`, `/openapi.yaml` needs a key like `/openapi.json`."""
    async with asgi_client(app_factory(public_docs=False)) as c:
        assert (await c.get("/openapi.yaml", headers={"x-api-key": ""})).status_code == 401
        assert (await c.get("/openapi.yaml")).status_code == 200


async def test_capabilities_lists_every_registered_capability_with_its_schemas(client: httpx.AsyncClient) -> None:
    """`GET /v1/capabilities`: each capability's name, description, input and output
    schemas, sorted by name, exactly the registry's (plugins included: the app builds
    its registry with `default_registry`)."""
    r = await client.get("/v1/capabilities")
    assert r.status_code == 200, r.text
    listed = r.json()["capabilities"]
    registry = default_registry()
    assert [c["name"] for c in listed] == [c.name for c in registry.all()]
    by_name = {c["name"]: c for c in listed}
    keywords = by_name["text.keywords"]
    cap = registry.get("text.keywords")
    assert cap is not None
    assert keywords["description"] == cap.description and keywords["description"]
    assert keywords["input_schema"] == cap.input_schema and keywords["output_schema"] == cap.output_schema
    assert by_name["pii"]["gate"] is True and keywords["gate"] is False


async def test_capabilities_include_a_plugins_capability(app_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A capability an installed plugin registers is listed too."""
    from skillrun.engine.capability import Capability

    async def shout(args: dict[str, Any]) -> dict[str, Any]:
        return {"text": str(args.get("text", "")).upper()}

    plugin = Capability("acme.shout", shout, "Upper-cases text.", {"type": "object"}, {"type": "object"})
    monkeypatch.setattr("skillrun.capabilities.load_plugins", lambda registry: registry.register(plugin))
    async with asgi_client(app_factory()) as c:
        listed = (await c.get("/v1/capabilities")).json()["capabilities"]
    assert {"name": "acme.shout", "description": "Upper-cases text.", "input_schema": {"type": "object"},
            "output_schema": {"type": "object"}, "gate": False} in listed


async def test_capabilities_need_a_key_like_the_skills(client: httpx.AsyncClient) -> None:
    """Same auth as `/v1/skills`: no key is 401."""
    assert (await client.get("/v1/capabilities", headers={"x-api-key": ""})).status_code == 401


async def test_ready_reports_loaded_and_skipped_skill_counts(app_factory: Callable[..., Any], tmp_path: Path) -> None:
    """`/v1/health/ready` said `skills: 5` when every user skill file was skipped: it now
    also says how many were skipped (two broken files here)."""
    (tmp_path / "a.yaml").write_text("id: broken.one\nsteps: nope\n")
    (tmp_path / "b.yaml").write_text("id: [unclosed\n")
    async with asgi_client(app_factory(skill_dirs=[tmp_path])) as c:
        body = (await c.get("/v1/health/ready")).json()
    assert body["skills"] == 7 and body["skills_skipped"] == 2


def test_start_logs_one_line_of_what_was_loaded_from_where(
    app_factory: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One start-up line says how many skills came from each directory and which files were skipped."""
    (tmp_path / "bad.yaml").write_text("id: broken.one\nsteps: nope\n")
    with caplog.at_level(logging.INFO, logger="skillrun.http.app"):
        app_factory(skill_dirs=[tmp_path])
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("loaded ")]
    assert len(lines) == 1, lines
    assert "loaded 7 skill(s): 7 from " in lines[0] and f"0 from {tmp_path}" in lines[0]
    assert "skipped 1" in lines[0] and str(tmp_path / "bad.yaml") in lines[0]


async def test_401_detail_names_the_x_api_key_header(client: httpx.AsyncClient) -> None:
    """The 401 said "No authorization token provided": it names the `x-api-key` header,
    for a missing key and for a wrong one."""
    for headers in ({"x-api-key": ""}, {"x-api-key": "wrong"}):
        r = await client.get("/v1/skills", headers=headers)
        assert r.status_code == 401
        assert "x-api-key" in r.json()["detail"], r.json()
    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as bare:
        r = await bare.get("/v1/runs")
    assert r.status_code == 401 and "x-api-key" in r.json()["detail"]


async def test_cors_allows_delete_and_exposes_idempotent_replayed(app_factory: Callable[..., Any]) -> None:
    """A page can `DELETE` a run (preflight allowed) and read `Idempotent-Replayed`."""
    app = app_factory(cors_origins=[PAGE])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        r = await c.options("/v1/runs/run_x", headers={
            "Origin": PAGE, "Access-Control-Request-Method": "DELETE", "Access-Control-Request-Headers": "x-api-key"})
        assert r.status_code == 200, r.text
        assert "DELETE" in {m.strip() for m in r.headers["access-control-allow-methods"].split(",")}
        headers = {"Origin": PAGE, "x-api-key": API_KEY, "Idempotency-Key": "cors-1"}
        body = {"inputs": {"steps": 1, "delay_ms": 0}}
        await c.post("/v1/skills/demo.ticker/execute", json=body, headers=headers)
        r = await c.post("/v1/skills/demo.ticker/execute", json=body, headers=headers)
    assert r.headers["idempotent-replayed"] == "true"
    exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
    assert "idempotent-replayed" in exposed
