"""Skill schemas go into the served OpenAPI 3.0 contract, so they must be valid OAS 3.0.

Bug: a user skill whose inputs used ``type: [string, "null"]`` (JSON Schema 2019+)
passed the loader, then made connexion refuse the whole served spec: one bad file
stopped the server instead of being skipped. Also: a skill with id ``list`` was
shadowed by ``GET /v1/skills/list``; and a 422 echoed a huge invalid value whole.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from conftest import API_KEY
from skillrun.capabilities import builtin_registry
from skillrun.engine import SkillLoadError, load_skill_file

SKILL = """\
id: {id}
version: "1"
inputs:
  type: object
  properties:
    a: {a}
outputs:
  x: {{value: "${{inputs.a}}", schema: {out}}}
steps:
  - id: s
    uses: util.echo
    input: {{a: "${{inputs.a}}"}}
"""


def _write(tmp_path: Path, name: str = "s.yaml", id: str = "my.skill", a: str = "{type: string}",
           out: str = "{type: string}") -> Path:
    path = tmp_path / name
    path.write_text(SKILL.format(id=id, a=a, out=out))
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(SkillLoadError) as info:
        load_skill_file(path, builtin_registry())
    return [str(p) for p in info.value.problems]


def test_a_type_list_in_inputs_is_a_load_error_naming_field_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, a='{type: [string, "null"]}')
    assert _problems(path) == [f"{path}:6: inputs.properties.a.type: OpenAPI 3.0 takes one type; for null add `nullable: true`"]


def test_an_invalid_output_schema_is_a_load_error(tmp_path: Path) -> None:
    path = _write(tmp_path, out="{type: string, nullable: maybe}")
    [problem] = _problems(path)
    assert problem.startswith(f"{path}:8: outputs.x.schema") and "OpenAPI 3.0" in problem


def test_nullable_is_the_valid_spelling(tmp_path: Path) -> None:
    skill = load_skill_file(_write(tmp_path, a="{type: string, nullable: true}"), builtin_registry())
    assert skill.inputs_schema["properties"]["a"]["nullable"] is True


def test_the_id_list_is_reserved(tmp_path: Path) -> None:
    path = _write(tmp_path, id="list")
    assert _problems(path) == [f"{path}:1: id: 'list' is reserved (it is a path of the API, e.g. GET /v1/skills/list)"]


@pytest.mark.anyio
async def test_a_bad_user_skill_is_skipped_and_the_good_ones_are_served(tmp_path: Path, app_factory) -> None:
    _write(tmp_path, "bad.yaml", id="bad.one", a='{type: [string, "null"]}')
    _write(tmp_path, "good.yaml", id="good.one")
    app = app_factory(skill_dirs=[tmp_path])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                 headers={"x-api-key": API_KEY}) as client:
        ids = [s["id"] for s in (await client.get("/v1/skills")).json()["skills"]]
        assert "good.one" in ids and "bad.one" not in ids and "text.summarize" in ids
        r = await client.post("/v1/skills/good.one/execute", json={"inputs": {"a": "hi"}})
        assert r.status_code == 200 and r.json()["outputs"] == {"x": "hi"}


@pytest.mark.anyio
async def test_a_422_does_not_echo_a_huge_value(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/skills/text.summarize/execute", json={"inputs": {"text": "x" * 600_000}})
    assert r.status_code == 422
    [error] = r.json()["errors"]
    assert error["field"] == "inputs.text" and len(error["message"]) <= 200
    assert len(r.content) < 2000


@pytest.mark.anyio
async def test_the_skill_file_schema_is_served_without_a_key(app_factory) -> None:
    import json

    from skillrun.engine.loader import SKILL_SCHEMA_PATH

    app = app_factory()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.get("/v1/schemas/skill.json")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/schema+json")
        assert r.json() == json.loads(SKILL_SCHEMA_PATH.read_text())
        spec = (await client.get("/openapi.json")).json()
        assert "/v1/schemas/skill.json" in spec["paths"]
        assert "GET /v1/schemas/skill.json" in spec["components"]["schemas"]["SkillDescription"]["description"]
