"""The catalog of skills: one way to build it, for ``skillrun serve`` and ``skillrun validate``.

Files are read in layers (the bundled skills, then each skill directory, or the
files being validated): a skill replaces one of the same id from an earlier layer
(logged). Then nested skills are linked; a skill whose nested skills are missing,
broken or form a cycle is left out, repeatedly, until the catalog is stable. What
the server would serve is exactly what ``validate`` calls ok.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Iterator

from .capability import CapabilityRegistry
from .model import Skill
from .parsing import Problem, SkillLoadError, check_literal_input, Checker, find_cycle, load_skill_file

log = logging.getLogger(__name__)


def skill_files(directory: Path) -> Iterator[Path]:
    for pattern in ("*.yaml", "*.yml"):
        yield from sorted(directory.glob(pattern))


class SkillCatalog:
    """The loaded skills by id."""

    def __init__(self, skills: Iterable[Skill] = ()) -> None:
        self._skills: dict[str, Skill] = {}
        for s in skills:
            self.add(s)

    def add(self, skill: Skill) -> None:
        self._skills[skill.id] = skill

    def get(self, skill_id: str) -> Skill | None:
        return self._skills.get(skill_id)

    def remove(self, skill_id: str) -> None:
        self._skills.pop(skill_id, None)

    def __contains__(self, skill_id: object) -> bool:
        return skill_id in self._skills

    def __len__(self) -> int:
        return len(self._skills)

    def all(self) -> list[Skill]:
        return [self._skills[k] for k in sorted(self._skills)]


def link(skills: Iterable[Skill]) -> dict[str, list[Problem]]:
    """Check ``skill:<id>`` references across ``skills``: known ids, inputs, no cycles.

    Returns the problems by the id of the skill that has them.
    """
    by_id = {s.id: s for s in skills}
    found: dict[str, list[Problem]] = {}

    def add(skill: Skill, line: int, message: str) -> None:
        found.setdefault(skill.id, []).append(Problem(skill.source, line, message))

    edges: dict[str, tuple[str, ...]] = {}
    for skill in by_id.values():
        edges[skill.id] = tuple(child for _, child in skill.nested_skills if child in by_id)
        for step, child in skill.nested_skills:
            target = by_id.get(child)
            if target is None:
                add(skill, step.uses_line, f"step {step.id!r} uses skill {child!r}, which is not loaded")
                continue
            if isinstance(step.raw_input, dict):
                c = Checker(skill.source, None, CapabilityRegistry())
                check_literal_input(c, [], step.raw_input, target.inputs_schema, f"skill {child!r}")
                for p in c.problems:
                    add(skill, step.line, f"step {step.id!r}: {p.message}")
    reported: set[str] = set()
    while True:
        cycle = find_cycle([k for k in edges if k not in reported], {k: v for k, v in edges.items() if k not in reported})
        if cycle is None:
            break
        text = " -> ".join(cycle)
        for a, b in zip(cycle, cycle[1:]):
            if a in reported:
                continue
            reported.add(a)
            step = next(s for s, child in by_id[a].nested_skills if child == b)
            add(by_id[a], step.uses_line, f"nested skills form a cycle: {text}")
    return found



class CatalogBuilder:
    """Builds a ``SkillCatalog`` from layers of skill files, collecting every problem."""

    def __init__(self, registry: CapabilityRegistry) -> None:
        self.registry = registry
        self.catalog = SkillCatalog()
        self.problems: list[Problem] = []

    def add_layer(self, files: Iterable[Path], *, unique: bool = False) -> list[Skill]:
        """Parse ``files``; bad ones become problems. Within the layer, a second file
        with an id already seen is a problem when ``unique``, else it replaces the first."""
        mine: dict[str, Skill] = {}
        for path in files:
            try:
                skill = load_skill_file(path, self.registry)
            except SkillLoadError as exc:
                self.problems.extend(exc.problems)
                continue
            if unique and skill.id in mine:
                self.problems.append(
                    Problem(str(path), 1, f"skill id {skill.id!r} is also the id of {mine[skill.id].source}")
                )
                continue
            previous = self.catalog.get(skill.id)
            if previous is not None and Path(previous.source).resolve() != Path(skill.source).resolve():
                log.warning("skill %s from %s replaces the one from %s", skill.id, path, previous.source)
            self.catalog.add(skill)
            mine[skill.id] = skill
        return list(mine.values())

    def link(self) -> SkillCatalog:
        """Leave out the skills whose nested skills are broken; repeat until stable."""
        while bad := link(self.catalog.all()):
            for skill_id, found in bad.items():
                self.catalog.remove(skill_id)
                self.problems.extend(found)
        return self.catalog


def load_skills(
    directories: Iterable[Path], registry: CapabilityRegistry
) -> tuple[SkillCatalog, list[Problem]]:
    """Load every skill file in ``directories`` (one layer each); bad files are reported, not fatal.

    A later directory's skill replaces an earlier one with the same id (so user
    skills can override bundled ones); that is logged.
    """
    builder = CatalogBuilder(registry)
    for directory in directories:
        if not directory.is_dir():
            builder.problems.append(Problem(str(directory), 1, "not a directory"))
            continue
        builder.add_layer(skill_files(directory))
    catalog = builder.link()
    for p in builder.problems:
        log.error("skipped skill file: %s", p)
    return catalog, builder.problems
