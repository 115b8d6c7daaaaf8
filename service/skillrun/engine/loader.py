"""Skill files -> ``Skill``: YAML, the published schema, references, CEL, capabilities.

Every problem is reported as ``file:line: message``. The same checks run for
``skillrun validate`` and when the server loads skills; a bad file is skipped, the
good ones are served.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import jsonschema
import yaml

from .capability import CapabilityRegistry
from .expressions import Expression, ExpressionError, Template
from .model import Gate, Output, Skill, Step

log = logging.getLogger(__name__)

SKILL_SCHEMA_PATH = Path(__file__).resolve().parent.parent / "openapi" / "skill.schema.json"


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class SkillLoadError(Exception):
    """A skill file has one or more problems."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class _Map(dict[str, Any]):
    """A mapping that remembers the YAML line of itself and of each key."""

    line: int = 1
    key_lines: dict[str, int]


class _Loader(yaml.SafeLoader):
    pass


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    out = _Map()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise yaml.MarkedYAMLError(
                problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)


def _line_of(doc: Any, path: Iterable[Any]) -> int:
    """The line of the deepest node on ``path`` that remembers one."""
    line = getattr(doc, "line", 1)
    node = doc
    for part in path:
        if isinstance(node, _Map) and part in node:
            line = node.key_lines.get(part, line)
            node = node[part]
            line = getattr(node, "line", line)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            line = getattr(node, "line", line)
        else:
            break
    return line


class _Checker:
    def __init__(self, path: str, doc: Any, registry: CapabilityRegistry) -> None:
        self.path = path
        self.doc = doc
        self.registry = registry
        self.problems: list[Problem] = []

    def add(self, where: Iterable[Any], message: str) -> None:
        self.problems.append(Problem(self.path, _line_of(self.doc, list(where)), message))

    def expression(self, where: list[Any], source: str) -> Expression | None:
        try:
            return Expression.compile(_strip_braces(source))
        except ExpressionError as exc:
            self.add(where, f"invalid CEL expression: {exc}")
            return None

    def template(self, where: list[Any], value: Any) -> Template | None:
        try:
            return Template(value)
        except ExpressionError as exc:
            self.add(where, f"invalid CEL expression: {exc}")
            return None


def _strip_braces(source: str) -> str:
    s = source.strip()
    return s[2:-1].strip() if s.startswith("${") and s.endswith("}") else s


_SCHEMA_VALIDATOR: jsonschema.protocols.Validator | None = None


def _schema_validator() -> jsonschema.protocols.Validator:
    global _SCHEMA_VALIDATOR  # a cache of an immutable, file-derived value
    if _SCHEMA_VALIDATOR is None:
        schema = json.loads(SKILL_SCHEMA_PATH.read_text(encoding="utf-8"))
        _SCHEMA_VALIDATOR = jsonschema.Draft202012Validator(schema)
    return _SCHEMA_VALIDATOR


def parse_skill(text: str, path: str, registry: CapabilityRegistry) -> Skill:
    """Parse and check one skill document; raise ``SkillLoadError`` naming every problem."""
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise SkillLoadError([Problem(path, line, f"invalid YAML: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise SkillLoadError([Problem(path, 1, f"invalid YAML: {exc}")]) from None
    if not isinstance(doc, dict):
        raise SkillLoadError([Problem(path, 1, "a skill file must be a YAML mapping")])

    c = _Checker(path, doc, registry)
    errors = sorted(_schema_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    for err in errors:
        where = list(err.absolute_path)
        field = ".".join(str(p) for p in where) or "(top level)"
        c.add(where, f"{field}: {err.message}")
    if c.problems:
        raise SkillLoadError(c.problems)

    inputs_schema = doc.get("inputs") or {"type": "object", "properties": {}}
    _check_inputs_schema(c, inputs_schema)
    steps = _build_steps(c, doc["steps"])
    outputs = _build_outputs(c, doc.get("outputs") or {}, [s.id for s in steps])
    if c.problems:
        raise SkillLoadError(c.problems)
    defaults = {
        k: v["default"]
        for k, v in (inputs_schema.get("properties") or {}).items()
        if isinstance(v, dict) and "default" in v
    }
    return Skill(
        id=doc["id"],
        version=str(doc["version"]),
        description=doc.get("description", ""),
        inputs_schema=_plain(inputs_schema),
        outputs=tuple(outputs),
        steps=tuple(steps),
        source=path,
        defaults=_plain(defaults),
    )


def _check_inputs_schema(c: _Checker, schema: dict[str, Any]) -> None:
    if schema.get("type") != "object":
        c.add(["inputs"], "inputs: must be a JSON Schema with type: object")
        return
    try:
        jsonschema.Draft4Validator.check_schema(_plain(schema))
    except jsonschema.SchemaError as exc:
        c.add(["inputs", *exc.path], f"inputs: not a valid JSON Schema: {exc.message}")


def _build_steps(c: _Checker, raw_steps: list[dict[str, Any]]) -> list[Step]:
    steps: list[Step] = []
    seen: set[str] = set()
    for n, raw in enumerate(raw_steps):
        where: list[Any] = ["steps", n]
        sid = raw["id"]
        if sid in seen:
            c.add([*where, "id"], f"duplicate step id {sid!r}")
        cap = c.registry.get(raw["uses"])
        if cap is None or cap.gate:
            c.add([*where, "uses"], f"unknown capability {raw['uses']!r}")
        when = c.expression([*where, "when"], raw["when"]) if "when" in raw else None
        foreach = None
        if "foreach" in raw:
            expr = c.expression([*where, "foreach"], raw["foreach"])
            foreach = Template("${" + expr.source + "}") if expr else None
        tmpl = c.template([*where, "input"], raw.get("input") or {})
        gate = None
        if "gate" in raw:
            g = raw["gate"]
            gate = Gate(uses=g) if isinstance(g, str) else Gate(uses=g["uses"], policy=g.get("policy", "degrade"))
            gcap = c.registry.get(gate.uses)
            if gcap is None or not gcap.gate:
                c.add([*where, "gate"], f"unknown gate {gate.uses!r}")
        for label, refs in (
            ("when", when.step_refs if when else frozenset()),
            ("foreach", foreach.step_refs if foreach else frozenset()),
            ("input", tmpl.step_refs if tmpl else frozenset()),
        ):
            for ref in sorted(refs or ()):
                if ref not in seen:
                    later = "a later step" if any(s["id"] == ref for s in raw_steps) else "no step"
                    c.add([*where, label], f"step {sid!r} reads steps.{ref}, which is {later}")
        if cap is not None and tmpl is not None and not cap.gate:
            _check_literal_input(c, [*where, "input"], raw.get("input") or {}, cap.input_schema)
        seen.add(sid)
        if tmpl is not None:
            steps.append(
                Step(
                    id=sid,
                    uses=raw["uses"],
                    input=tmpl,
                    description=raw.get("description", ""),
                    when=when,
                    gate=gate,
                    foreach=foreach,
                    line=_line_of(c.doc, where),
                )
            )
    return steps


def _check_literal_input(
    c: _Checker, where: list[Any], given: dict[str, Any], schema: dict[str, Any]
) -> None:
    """Check what can be checked before running: required and unknown keys."""
    props = schema.get("properties") or {}
    for key in schema.get("required") or ():
        if key not in given:
            c.add(where, f"input: missing {key!r}, which the capability requires")
    if schema.get("additionalProperties") is False:
        for key in given:
            if key not in props:
                c.add([*where, key], f"input: the capability takes no {key!r}")


def _build_outputs(c: _Checker, raw: dict[str, Any], step_ids: list[str]) -> list[Output]:
    outputs: list[Output] = []
    for name, spec in raw.items():
        tmpl = c.template(["outputs", name, "value"], spec["value"])
        if tmpl is None:
            continue
        for ref in sorted(tmpl.step_refs or ()):
            if ref not in step_ids:
                c.add(["outputs", name, "value"], f"output {name!r} reads steps.{ref}, which is no step")
        outputs.append(Output(name=name, value=tmpl, schema=_plain(spec.get("schema") or {})))
    return outputs


def _plain(value: Any) -> Any:
    """Drop the line-remembering types so the value is plain JSON data."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def load_skill_file(path: Path, registry: CapabilityRegistry) -> Skill:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SkillLoadError([Problem(str(path), 1, f"cannot read: {exc}")]) from None
    return parse_skill(text, str(path), registry)


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

    def __contains__(self, skill_id: object) -> bool:
        return skill_id in self._skills

    def __len__(self) -> int:
        return len(self._skills)

    def all(self) -> list[Skill]:
        return [self._skills[k] for k in sorted(self._skills)]


def load_skills(
    directories: Iterable[Path], registry: CapabilityRegistry
) -> tuple[SkillCatalog, list[Problem]]:
    """Load every skill file in ``directories``; bad files are reported, not fatal.

    A later directory's skill replaces an earlier one with the same id (so user
    skills can override bundled ones); that is logged.
    """
    catalog = SkillCatalog()
    problems: list[Problem] = []
    for directory in directories:
        if not directory.is_dir():
            problems.append(Problem(str(directory), 1, "not a directory"))
            continue
        for path in skill_files(directory):
            try:
                skill = load_skill_file(path, registry)
            except SkillLoadError as exc:
                problems.extend(exc.problems)
                continue
            previous = catalog.get(skill.id)
            if previous is not None:
                log.warning("skill %s from %s replaces the one from %s", skill.id, path, previous.source)
            catalog.add(skill)
    for p in problems:
        log.error("skipped skill file: %s", p)
    return catalog, problems
