"""The loaded skills and the capabilities their steps can use."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ...engine.capability import Capability
from ...engine.loader import SKILL_SCHEMA_PATH
from ._http import json_response, problem, services


def capability_json(capability: Capability) -> dict[str, Any]:
    return {
        "name": capability.name,
        "description": capability.description,
        "input_schema": capability.input_schema,
        "output_schema": capability.output_schema,
        "gate": capability.gate,
    }


async def list_skills() -> Response:
    return json_response({"skills": [s.summary() for s in services().catalog.all()]})


async def get_skill(skill_id: str) -> Response:
    skill = services().catalog.get(skill_id)
    if skill is None:
        raise problem(404, f"No skill '{skill_id}' is loaded.")
    return json_response(skill.describe())


async def list_capabilities() -> Response:
    registry = services().capabilities
    found = registry.all() if registry is not None else []
    return json_response({"capabilities": [capability_json(c) for c in found]})


async def skill_schema() -> Response:
    return Response(SKILL_SCHEMA_PATH.read_bytes(), media_type="application/schema+json")


list_skills_legacy = list_skills
get_skill_legacy = get_skill
