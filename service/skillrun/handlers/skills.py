"""The loaded skills."""

from __future__ import annotations

from starlette.responses import Response

from ._http import json_response, problem, services


async def list_skills() -> Response:
    return json_response({"skills": [s.summary() for s in services().catalog.all()]})


async def get_skill(skill_id: str) -> Response:
    skill = services().catalog.get(skill_id)
    if skill is None:
        raise problem(404, f"No skill '{skill_id}' is loaded.")
    return json_response(skill.describe())


list_skills_legacy = list_skills
get_skill_legacy = get_skill
