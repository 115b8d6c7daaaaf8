"""The served contract: ``openapi/skillrun.yaml`` plus concrete operations per loaded skill.

For every skill, ``POST /v1/skills/<id>/execute``, ``.../execute/stream`` and ``.../execute/async`` are
copies of the templated operations whose request body is that skill's ``inputs``
schema and whose result's ``outputs`` is its outputs schema. connexion then
validates inputs itself, Swagger UI documents every skill, and schemathesis can
generate valid inputs. connexion matches paths in the order of the spec's
``paths`` (not concrete-before-templated as OAS says), so these come first.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import yaml
from connexion.resolver import Resolution, Resolver
from connexion.utils import get_function_from_name

from .engine import Skill, SkillCatalog

SPEC_PATH = Path(__file__).resolve().parent / "openapi" / "skillrun.yaml"
TEMPLATED = ("/execute", "/execute/stream", "/execute/async")
SKILL_KEY = "x-skillrun-skill"
SKILL_ID_REF = "#/components/parameters/SkillId"


def load_base_spec(path: Path = SPEC_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        spec: dict[str, Any] = yaml.safe_load(f)
    return spec


def _slug(skill_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", skill_id)


def _body_schema(skill: Skill) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["inputs"],
        "properties": {
            "inputs": copy.deepcopy(skill.inputs_schema),
            "options": {"$ref": "#/components/schemas/ExecuteOptions"},
        },
    }


def _skill_operation(template: dict[str, Any], skill: Skill, suffix: str) -> dict[str, Any]:
    op = copy.deepcopy(template)
    op["operationId"] = f"{op['operationId']}__{_slug(skill.id)}"
    op["tags"] = ["execute"]
    op["summary"] = {
        "/execute/stream": f"{skill.id}: run and stream its events",
        "/execute/async": f"{skill.id}: start a run in the background",
    }.get(suffix, f"{skill.id}: run and return the result")
    op["description"] = f"{skill.description}\n\n{op.get('description', '')}".strip()
    op["parameters"] = [
        p for p in op.get("parameters", []) if p.get("$ref") != SKILL_ID_REF
    ]
    op["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": _body_schema(skill)}},
    }
    op[SKILL_KEY] = skill.id
    if suffix == "/execute":
        op["responses"]["200"]["content"]["application/json"]["schema"] = {
            "allOf": [
                {"$ref": "#/components/schemas/ExecuteResult"},
                {"type": "object", "properties": {"outputs": copy.deepcopy(skill.outputs_schema)}},
            ]
        }
    # Unknown skills cannot reach a concrete path, so no 404 here.
    op["responses"].pop("404", None)
    return op


def _unloaded_skill_id(spec: dict[str, Any], loaded: list[str]) -> dict[str, Any]:
    param: dict[str, Any] = copy.deepcopy(spec["components"]["parameters"]["SkillId"])
    param["description"] = (
        "The id of a skill that is not loaded here (404). Loaded skills have their "
        "own paths, which match first."
    )
    param["schema"] = {**param["schema"], "not": {"enum": list(loaded)}}
    param["example"] = "no.such.skill"
    return param


def _exclude_loaded(spec: dict[str, Any], loaded: list[str]) -> None:
    """The templated execute operations only ever run ids that are not loaded: say so,
    or a client (or schemathesis) reads `text.summarize` with any `inputs` as valid there."""
    if not loaded:
        return  # OAS 3.0: an enum must not be empty; nothing to exclude anyway
    param = _unloaded_skill_id(spec, loaded)
    for suffix in TEMPLATED:
        # Only `post`: an OPTIONS for a loaded skill does fall through to this path.
        op = spec["paths"][f"/v1/skills/{{skill_id}}{suffix}"]["post"]
        op["parameters"] = [param if p.get("$ref") == SKILL_ID_REF else p for p in op.get("parameters", [])]


def build_spec(catalog: SkillCatalog, base: dict[str, Any] | None = None) -> dict[str, Any]:
    spec = copy.deepcopy(base if base is not None else load_base_spec())
    concrete: dict[str, Any] = {}
    for skill in catalog.all():
        for suffix in TEMPLATED:
            template = spec["paths"][f"/v1/skills/{{skill_id}}{suffix}"]["post"]
            concrete[f"/v1/skills/{skill.id}{suffix}"] = {"post": _skill_operation(template, skill, suffix)}
    _exclude_loaded(spec, [skill.id for skill in catalog.all()])
    spec["paths"] = {**concrete, **spec["paths"]}
    return spec


class SkillrunResolver(Resolver):
    """``x-openapi-router-controller`` + ``operationId`` -> handler; per-skill
    operations get the templated handler with ``skill_id`` bound."""

    def resolve(self, operation: Any) -> Resolution:
        raw = operation._operation  # connexion keeps the operation's dict here
        controller = raw["x-openapi-router-controller"]
        name = raw["operationId"].split("__", 1)[0]
        function = get_function_from_name(f"{controller}.{name}")
        skill_id = raw.get(SKILL_KEY)
        if skill_id is not None:
            function = functools.partial(function, skill_id=skill_id)
        return Resolution(function, raw["operationId"])
