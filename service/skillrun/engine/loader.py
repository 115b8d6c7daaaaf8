"""Skill files -> the served catalog (kept for importers; the parts live apart):

- ``yaml_lines``: line-aware YAML (every problem named by ``file:line``).
- ``parsing``: one skill file -> ``Skill`` (schema, references, CEL, capabilities).
- ``catalog``: the one catalog for ``serve`` and ``validate`` (layers, nested skills).
- ``skillrun.durations``: the one grammar for durations.
"""

from __future__ import annotations

from ..durations import parse_duration
from .catalog import CatalogBuilder, SkillCatalog, link, load_skills, skill_files
from .parsing import RESERVED_IDS, SKILL_SCHEMA_PATH, Problem, SkillLoadError, load_skill_file, parse_skill

__all__ = [
    "RESERVED_IDS",
    "SKILL_SCHEMA_PATH",
    "CatalogBuilder",
    "Problem",
    "SkillCatalog",
    "SkillLoadError",
    "link",
    "load_skill_file",
    "load_skills",
    "parse_duration",
    "parse_skill",
    "skill_files",
]
