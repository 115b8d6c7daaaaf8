"""The served contract: ``openapi/skillrun.yaml`` plus concrete operations per loaded skill.

For every skill, ``POST /v1/skills/<id>/execute``, ``.../execute/stream`` and ``.../execute/async`` are
copies of the templated operations whose request body is that skill's ``inputs``
schema and whose result's ``outputs`` is its outputs schema. connexion then
validates inputs itself, Swagger UI documents every skill, and schemathesis can
generate valid inputs. connexion matches paths in the order of the spec's
``paths`` (not concrete-before-templated as OAS says), so these come first.

The spec *served* at ``/openapi.json`` leaves out the templated execute
operations when any skill is loaded (``served_spec``). They overlap every
concrete path, and a tool that ignores OAS's concrete-first matching (as
schemathesis does) sends loaded ids through them: negative cases that the
concrete operation serves, links that send a loaded id with a body meant for
any skill, methods a templated path "does not have" that a concrete one
serves. No model of them on the templated path is right for all of these;
served, the contract names exactly the skills that run here (each with its own
CORS preflight). The server still routes them, so an unknown id gets its 404.
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

from ..engine import Skill, SkillCatalog

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi" / "skillrun.yaml"
TEMPLATED = ("/execute", "/execute/stream", "/execute/async")
SKILL_KEY = "x-skillrun-skill"
SKILL_ID_REF = "#/components/parameters/SkillId"
PREFLIGHT_SKILL_ID_REF = "#/components/parameters/PreflightSkillId"


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


def build_spec(catalog: SkillCatalog, base: dict[str, Any] | None = None) -> dict[str, Any]:
    spec = copy.deepcopy(base if base is not None else load_base_spec())
    concrete: dict[str, Any] = {}
    for skill in catalog.all():
        for suffix in TEMPLATED:
            item = spec["paths"][f"/v1/skills/{{skill_id}}{suffix}"]
            concrete[f"/v1/skills/{skill.id}{suffix}"] = {
                "options": _preflight_operation(item["options"], skill),
                "post": _skill_operation(item["post"], skill, suffix),
            }
    spec["paths"] = {**concrete, **spec["paths"]}
    return spec


def _preflight_operation(template: dict[str, Any], skill: Skill) -> dict[str, Any]:
    # Its own CORS preflight, so the served spec needs no templated path here at all.
    op = copy.deepcopy(template)
    op["operationId"] = f"{op['operationId']}__{_slug(skill.id)}"
    op["parameters"] = [p for p in op.get("parameters", []) if p.get("$ref") != PREFLIGHT_SKILL_ID_REF]
    return op


def served_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The contract as ``/openapi.json`` serves it: without the templated execute
    operations once concrete ones exist (see the module's docstring)."""
    if not any(SKILL_KEY in op for item in spec["paths"].values() for op in item.values() if isinstance(op, dict)):
        return spec
    served = copy.deepcopy(spec)
    for suffix in TEMPLATED:
        del served["paths"][f"/v1/skills/{{skill_id}}{suffix}"]
    return served


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
