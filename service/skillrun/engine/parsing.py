"""Skill files -> ``Skill``: the published schema, references, CEL, capabilities.

Every problem is reported as ``file:line: message`` (lines from ``yaml_lines``).
Cross-skill checks (nested skills) are the catalog's (``catalog.link``).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import jsonschema
import jsonschema_rs
from openapi_spec_validator import OpenAPIV30SpecValidator

from ..durations import parse_duration
from . import yaml_lines
from .capability import Capability, CapabilityRegistry
from .expressions import Expression, ExpressionError, Template
from .model import ENGINE_KINDS, NO_RETRY, SKILL_PREFIX, Backoff, Fallback, Gate, Output, Retry, Skill, Step
from .secret_inputs import marked_defaults

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


class Checker:
    def __init__(self, path: str, doc: Any, registry: CapabilityRegistry) -> None:
        self.path = path
        self.doc = doc
        self.registry = registry
        self.problems: list[Problem] = []
        # Parts of the document the schema already refused: their semantic problems
        # would only repeat (or guess at) what the schema said.
        self.refused: list[tuple[Any, ...]] = []
        # The inputs the skill declares (``inputs.properties``); None: not declared.
        self.inputs_declared: set[str] | None = None

    def add(self, where: Iterable[Any], message: str) -> None:
        at = tuple(where)
        if any(at[: len(r)] == r for r in self.refused):
            return
        self.problems.append(Problem(self.path, yaml_lines.line_of(self.doc, list(at)), message))

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


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or nothing."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# Skill ids that would collide with fixed paths under /v1/skills/.
RESERVED_IDS = frozenset({"list"})


def _strip_braces(source: str) -> str:
    s = source.strip()
    return s[2:-1].strip() if s.startswith("${") and s.endswith("}") else s


@functools.cache
def _schema_validators() -> tuple[Any, jsonschema.protocols.Validator]:
    """(fast yes/no check, detailed errors): a cache of an immutable, file-derived value."""
    schema = json.loads(SKILL_SCHEMA_PATH.read_text(encoding="utf-8"))
    return jsonschema_rs.validator_for(schema), jsonschema.Draft202012Validator(schema)


def parse_skill(text: str, path: str, registry: CapabilityRegistry) -> Skill:
    """Parse and check one skill document; raise ``SkillLoadError`` naming every problem."""
    try:
        doc = yaml_lines.load(text)
    except yaml_lines.YamlProblem as exc:
        raise SkillLoadError([Problem(path, exc.line, exc.message)]) from None
    if not isinstance(doc, dict):
        raise SkillLoadError([Problem(path, 1, "a skill file must be a YAML mapping")])

    c = Checker(path, doc, registry)
    fast, detailed = _schema_validators()
    # jsonschema_rs says yes or no in microseconds; jsonschema names paths for the messages.
    errors = [] if fast.is_valid(doc) else sorted(detailed.iter_errors(doc), key=lambda e: list(e.absolute_path))
    for err in errors:
        where = list(err.absolute_path)
        field = ".".join(str(p) for p in where) or "(top level)"
        c.add(where, f"{field}: {err.message}")
    if not errors:
        return _build_skill(c, doc, path, hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16])
    # Go on with what the schema accepted, so one run names every problem it can.
    view = _accepted_view(c, doc, [list(e.absolute_path) for e in errors])
    if view is not None:
        try:
            _build_skill(c, view, path, "")
        except SkillLoadError:
            pass
        except (KeyError, TypeError, AttributeError, ValueError, IndexError):
            pass  # a shape the view did not foresee: the schema's problems stand alone
    raise SkillLoadError(sorted(c.problems, key=lambda p: p.line))


def _accepted_view(c: Checker, doc: dict[str, Any], refused: list[list[Any]]) -> dict[str, Any] | None:
    """The document without the parts the schema refused (each replaced by a stand-in
    whose own problems ``c`` ignores), or None when too little is left to check."""
    steps = doc.get("steps")
    if not isinstance(steps, list) or ["steps"] in refused:
        return None
    bad_steps = {w[1] for w in refused if w[:1] == ["steps"] and len(w) > 1 and isinstance(w[1], int)}
    view = dict(doc)
    for key, stand_in in (("id", "skill"), ("version", "0")):
        if not isinstance(doc.get(key), str) or [key] in refused:
            view[key] = stand_in
            c.refused.append((key,))
    for key in ("description", "max_parallel", "timeout", "inputs", "outputs"):
        if any(w[:1] == [key] for w in refused):
            view.pop(key, None)
            c.refused.append((key,))
    if "outputs" in view and isinstance(view["outputs"], dict):
        view["outputs"] = {k: v for k, v in view["outputs"].items() if isinstance(v, dict) and "value" in v}
    view["steps"] = [_stand_in(c, n, raw) if n in bad_steps else raw for n, raw in enumerate(steps)]
    return view


def _stand_in(c: Checker, n: int, raw: Any) -> dict[str, Any]:
    """A refused step as far as other steps see it: its id and needs, nothing to check."""
    c.refused.append(("steps", n))
    raw = raw if isinstance(raw, dict) else {}
    sid = raw.get("id")
    out: dict[str, Any] = {"id": sid if isinstance(sid, str) else f"step {n}", "uses": "\0refused"}
    needs = raw.get("needs")
    if isinstance(needs, list) and all(isinstance(x, str) for x in needs):
        out["needs"] = needs
    return out


def _build_skill(c: Checker, doc: dict[str, Any], path: str, digest: str) -> Skill:
    if doc["id"] in RESERVED_IDS:
        c.add(["id"], f"id: {doc['id']!r} is reserved (it is a path of the API, e.g. GET /v1/skills/list)")
    inputs_schema = doc.get("inputs") or {"type": "object", "properties": {}}
    if "timeout" in doc and parse_duration(doc["timeout"]) <= 0:
        c.add(["timeout"], "timeout must be more than 0")
    _check_inputs_schema(c, inputs_schema)
    # Checked only where the file declares its inputs (a skill without ``inputs`` takes any).
    props = inputs_schema.get("properties") if "inputs" in doc and isinstance(inputs_schema, dict) else None
    c.inputs_declared = set(props) if isinstance(props, dict) else None
    steps = _build_steps(c, doc["steps"])
    outputs = _build_outputs(c, doc.get("outputs") or {}, steps)
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
        max_parallel=int(doc.get("max_parallel", 8)),
        timeout_s=parse_duration(doc["timeout"]) if "timeout" in doc else None,
        digest=digest,
        on_restart=doc.get("on_restart", "resume"),
    )


def _check_inputs_schema(c: Checker, schema: dict[str, Any]) -> None:
    if schema.get("type") != "object":
        c.add(["inputs"], "inputs: must be a JSON Schema with type: object")
        return
    try:
        jsonschema.Draft4Validator.check_schema(_plain(schema))
    except jsonschema.SchemaError as exc:
        c.add(["inputs", *exc.path], f"inputs: not a valid JSON Schema: {exc.message}")
        return
    _check_oas_schema(c, ["inputs"], schema)
    _check_secret_defaults(c, schema)


def _check_secret_defaults(c: Checker, schema: dict[str, Any]) -> None:
    """A secret input (``writeOnly: true``, ``format: password``) with a default would
    be served in the skill's schema and used unredacted: no secret, a mistake."""
    for where in marked_defaults(schema):
        field = ".".join(str(p) for p in ["inputs", *where])
        c.add(["inputs", *where], f"{field}: a secret input (writeOnly / format: password) cannot have a default")


def _find_type_list(node: Any, path: list[Any]) -> list[Any] | None:
    """The path of the first ``type: [..]`` (JSON Schema 2019+ style) in a schema."""
    if isinstance(node, dict):
        if isinstance(node.get("type"), list):
            return [*path, "type"]
        for key, value in node.items():
            found = _find_type_list(value, [*path, key])
            if found is not None:
                return found
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found = _find_type_list(value, [*path, i])
            if found is not None:
                return found
    return None


def _check_oas_schema(c: Checker, where: list[Any], schema: dict[str, Any]) -> None:
    """The server puts this schema into its OpenAPI 3.0 contract: it must be a valid
    OAS 3.0 Schema Object (``nullable: true``, not ``type: [..., "null"]``), or the
    whole served spec would be refused and no skill could be served."""
    listed = _find_type_list(schema, [])
    if listed is not None:
        field = ".".join(str(p) for p in [*where, *listed])
        c.add([*where, *listed], f"{field}: OpenAPI 3.0 takes one type; for null add `nullable: true`")
        return
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "skill", "version": "0"},
        "paths": {},
        "components": {"schemas": {"S": _plain(schema)}},
    }
    for err in OpenAPIV30SpecValidator(doc).iter_errors():
        while err.context:  # oneOf/anyOf: the branch that came closest says what is wrong
            err = jsonschema.exceptions.best_match(err.context)
        path = list(err.absolute_path)[3:]  # below components.schemas.S
        field = ".".join(str(p) for p in [*where, *path])
        message = err.message.splitlines()[0][:200]
        c.add([*where, *path], f"{field}: not a valid OpenAPI 3.0 schema: {message}")
        return



def _resolve_needs(c: Checker, raw_steps: list[dict[str, Any]]) -> dict[str, tuple[str, ...]] | None:
    """Each step's dependencies; None when they are broken (unknown ids, a cycle)."""
    index_of: dict[str, int] = {}
    for n, raw in enumerate(raw_steps):
        if raw["id"] in index_of:
            c.add(["steps", n, "id"], f"duplicate step id {raw['id']!r}")
        else:
            index_of[raw["id"]] = n
    needs: dict[str, tuple[str, ...]] = {}
    ok = True
    for n, raw in enumerate(raw_steps):
        sid = raw["id"]
        if sid in needs:
            continue  # a duplicate, reported above
        if "needs" not in raw:
            needs[sid] = (raw_steps[n - 1]["id"],) if n else ()
            continue
        for k, need in enumerate(raw["needs"]):
            if need == sid:
                c.add(["steps", n, "needs", k], f"step {sid!r} needs itself")
                ok = False
            elif need not in index_of:
                c.add(["steps", n, "needs", k],
                      f"step {sid!r} needs {need!r}, which is no step{did_you_mean(need, index_of)}")
                ok = False
        needs[sid] = tuple(raw["needs"])
    if not ok:
        return None
    cycle = find_cycle(list(needs), needs)
    if cycle is not None:
        n = index_of[cycle[0]]
        c.add(["steps", n, "needs"], "needs form a cycle: " + " -> ".join(cycle))
        return None
    return needs


def find_cycle(nodes: list[str], edges: dict[str, tuple[str, ...]]) -> list[str] | None:
    """A cycle in the graph as ``[a, b, ..., a]``, or None (iterative DFS: 10k-step chains)."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    for root in nodes:
        if root in state:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(edges.get(root, ())))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                path = [n for n, _ in stack]
                return [*path[path.index(nxt):], nxt]
            elif nxt not in state and nxt in edges:
                state[nxt] = 1
                stack.append((nxt, iter(edges[nxt])))
    return None


def _is_ancestor(needs: dict[str, tuple[str, ...]], step: str, other: str) -> bool:
    """Does ``step`` wait for ``other``, directly or through other steps?"""
    seen: set[str] = set()
    todo = list(needs.get(step, ()))
    while todo:
        s = todo.pop()
        if s == other:
            return True
        if s not in seen:
            seen.add(s)
            todo.extend(needs.get(s, ()))
    return False


def _check_refs(
    c: Checker,
    where: list[Any],
    sid: str,
    refs: Iterable[str] | None,
    needs: dict[str, tuple[str, ...]] | None,
    order: dict[str, int],
    needs_written: bool,
) -> None:
    for ref in sorted(refs or ()):
        if ref not in order:
            c.add(where, f"step {sid!r} reads steps.{ref}, which is no step{did_you_mean(ref, order)}")
        elif ref == sid:
            c.add(where, f"step {sid!r} reads its own output steps.{ref}")
        elif needs is not None and not _is_ancestor(needs, sid, ref):
            if not needs_written and order[ref] > order[sid]:
                c.add(where, f"step {sid!r} reads steps.{ref}, which is a later step")
            else:
                c.add(where, f"step {sid!r} reads steps.{ref} but does not need it (add {ref!r} to its needs)")


def _build_gates(c: Checker, where: list[Any], raw: Any) -> tuple[Gate, ...]:
    items = raw if isinstance(raw, list) else [raw]
    gates: list[Gate] = []
    for k, g in enumerate(items):
        at = [*where, k] if isinstance(raw, list) else where
        gate = Gate(uses=g) if isinstance(g, str) else Gate(g["uses"], g.get("policy", "degrade"), g.get("stage", "post"))
        cap = c.registry.get(gate.uses)
        if cap is None or not cap.gate:
            gates_known = [k.name for k in c.registry.all() if k.gate]
            c.add(at, f"unknown gate {gate.uses!r}{did_you_mean(gate.uses, gates_known)}")
        stages = ("pre", "post") if gate.stage == "both" else (gate.stage,)
        gates.extend(Gate(gate.uses, gate.policy, s) for s in stages)
    return tuple(gates)


def _step_capabilities(c: Checker) -> list[str]:
    return [k.name for k in c.registry.all() if not k.gate]


def _check_retry_kinds(c: Checker, where: list[Any], on: Any, cap: Capability | None) -> None:
    """``retry.on`` names kinds the step can fail with: the engine's, and those its
    capability declares (``Capability.error_kinds``; undeclared: any)."""
    if cap is None or cap.error_kinds is None or not isinstance(on, list):
        return
    known = ENGINE_KINDS | cap.error_kinds
    for k, kind in enumerate(on):
        if kind not in known:
            c.add([*where, "on", k], f"retry.on: {cap.name} never fails with {kind!r}{did_you_mean(kind, known)}"
                  f" (its kinds: {', '.join(sorted(known))})")


def _build_retry(c: Checker, where: list[Any], raw: dict[str, Any]) -> Retry:
    b = raw.get("backoff") or {}
    backoff = Backoff(
        initial_ms=float(b.get("initial_ms", 100)),
        max_ms=float(b.get("max_ms", max(10_000, b.get("initial_ms", 100)))),
        multiplier=float(b.get("multiplier", 2)),
    )
    if backoff.max_ms < backoff.initial_ms:
        c.add([*where, "backoff", "max_ms"], "retry.backoff.max_ms is less than initial_ms")
    jitter = raw.get("jitter", 0)
    on = raw.get("on")
    return Retry(
        max_attempts=int(raw.get("max_attempts", 3)),
        backoff=backoff,
        jitter=float(jitter),
        on=frozenset(on) if on is not None else None,
    )


def _build_steps(c: Checker, raw_steps: list[dict[str, Any]]) -> list[Step]:
    needs = _resolve_needs(c, raw_steps)
    order = {raw["id"]: n for n, raw in reversed(list(enumerate(raw_steps)))}
    steps: list[Step] = []
    built: dict[str, Step] = {}  # the steps so far, by id
    for n, raw in enumerate(raw_steps):
        where: list[Any] = ["steps", n]
        sid = raw["id"]
        uses = raw["uses"]
        nested = uses.startswith(SKILL_PREFIX)
        cap = None
        if nested:
            if not _SKILL_ID.match(uses[len(SKILL_PREFIX):]):
                c.add([*where, "uses"], f"{uses!r}: a nested skill is `skill:<skill id>`")
        else:
            cap = c.registry.get(uses)
            if cap is None or cap.gate:
                c.add([*where, "uses"], f"unknown capability {uses!r}{did_you_mean(uses, _step_capabilities(c))}")
        when = c.expression([*where, "when"], raw["when"]) if "when" in raw else None
        foreach = None
        if "foreach" in raw:
            expr = c.expression([*where, "foreach"], raw["foreach"])
            foreach = Template("${" + expr.source + "}") if expr else None
        elif "max_parallel" in raw:
            c.add([*where, "max_parallel"], f"step {sid!r}: max_parallel bounds foreach items; the step has no foreach")
        tmpl = c.template([*where, "input"], raw.get("input") or {})
        gates = _build_gates(c, [*where, "gate"], raw["gate"]) if "gate" in raw else ()
        retry = _build_retry(c, [*where, "retry"], raw["retry"]) if "retry" in raw else NO_RETRY
        if "retry" in raw:
            _check_retry_kinds(c, [*where, "retry"], raw["retry"].get("on"), cap)
        timeout_s = parse_duration(raw["timeout"]) if "timeout" in raw else None
        if timeout_s is not None and timeout_s <= 0:
            c.add([*where, "timeout"], f"step {sid!r}: timeout must be more than 0")
        on_error, fallback = _build_on_error(c, [*where, "on_error"], raw.get("on_error", "fail"))
        written = "needs" in raw
        for label, refs in (
            ("when", when.step_refs if when else frozenset()),
            ("foreach", foreach.step_refs if foreach else frozenset()),
            ("input", tmpl.step_refs if tmpl else frozenset()),
            ("on_error", fallback.input.step_refs if fallback else frozenset()),
        ):
            _check_refs(c, [*where, label], sid, refs, needs, order, written)
        if cap is not None and tmpl is not None:
            check_literal_input(c, [*where, "input"], raw.get("input") or {}, cap.input_schema)
        for label, exprs in (
            ("when", [when] if when else []),
            ("foreach", foreach.expressions if foreach else []),
            ("input", tmpl.expressions if tmpl else []),
            ("on_error", fallback.input.expressions if fallback else []),
        ):
            _check_fields(c, [*where, label], f"step {sid!r}", exprs, built)
            _check_inputs_read(c, [*where, label], f"step {sid!r}", exprs, c.inputs_declared)
        if tmpl is not None:
            steps.append(
                Step(
                    id=sid,
                    uses=uses,
                    input=tmpl,
                    description=raw.get("description", ""),
                    when=when,
                    gates=gates,
                    foreach=foreach,
                    max_parallel=int(raw.get("max_parallel", 1)),
                    needs=(needs or {}).get(sid, ()),
                    needs_written=written,
                    retry=retry,
                    timeout_s=timeout_s,
                    on_error=on_error,
                    fallback=fallback,
                    line=yaml_lines.line_of(c.doc, where),
                    uses_line=yaml_lines.line_of(c.doc, [*where, "uses"]),
                    raw_input=_plain(raw.get("input") or {}),
                )
            )
            built.setdefault(sid, steps[-1])
    return steps


_SKILL_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
_FIELD_REF = re.compile(r"\bsteps\s*\.\s*([A-Za-z_]\w*)\s*\.\s*([A-Za-z_]\w*)\b(?!\s*\()")
_INPUT_NAME = re.compile(r"\binputs\s*\.\s*([A-Za-z_]\w*)")


def _declared_fields(name: str, registry: CapabilityRegistry) -> set[str] | None:
    """The fields a capability's output schema declares (``properties``); None: not declared."""
    cap = registry.get(name)
    props = cap.output_schema.get("properties") if cap is not None else None
    return set(props) if isinstance(props, dict) else None


def _output_fields(step: Step, registry: CapabilityRegistry) -> list[str] | None:
    """Every field a step's output can have, as its capability's schema declares them
    (with ``fallback``: either capability's); None when it is not known (a nested
    skill's outputs, a capability that declares none)."""
    if step.skill_id is not None:
        return None
    fields = _declared_fields(step.uses, registry)
    if fields is not None and step.fallback is not None:
        other = _declared_fields(step.fallback.uses, registry)
        fields = fields | other if other is not None else None
    return sorted(fields) if fields is not None else None


def _check_fields(c: Checker, where: list[Any], who: str, exprs: Iterable[Expression], by_id: dict[str, Step]) -> None:
    """``steps.<id>.<field>`` must name a field the step's output can have."""
    for expr in exprs:
        for ref, name in _FIELD_REF.findall(expr.source):
            step = by_id.get(ref)
            if step is None:
                continue
            if step.foreach is not None:
                c.add(where, f"{who} reads steps.{ref}.{name}, but steps.{ref} is a list (one result per foreach item):"
                             f" read an item, e.g. steps.{ref}[0].{name}, or steps.{ref}.map(r, r.{name})")
                continue
            fields = _output_fields(step, c.registry)
            if fields is not None and name not in fields:
                c.add(where, f"{who} reads steps.{ref}.{name}, but {step.uses} gives no {name!r}"
                             f"{did_you_mean(name, fields)} (it gives {', '.join(fields)})")


def _check_inputs_read(c: Checker, where: list[Any], who: str, exprs: Iterable[Expression], declared: set[str] | None) -> None:
    """``inputs.<name>`` must name a declared input (``inputs.properties``)."""
    if declared is None:
        return
    for expr in exprs:
        for name in sorted(set(_INPUT_NAME.findall(expr.source))):
            if name not in declared:
                c.add(where, f"{who} reads inputs.{name}, which is no declared input{did_you_mean(name, declared)}"
                             " (declare it under inputs.properties)")


def _build_on_error(c: Checker, where: list[Any], raw: Any) -> tuple[str, Fallback | None]:
    if isinstance(raw, str):
        return raw, None
    fb = raw["fallback"]
    cap = c.registry.get(fb["uses"])
    if cap is None or cap.gate:
        c.add([*where, "fallback", "uses"],
              f"unknown fallback capability {fb['uses']!r}{did_you_mean(fb['uses'], _step_capabilities(c))}")
    tmpl = c.template([*where, "fallback", "input"], fb.get("input") or {})
    if cap is not None and tmpl is not None:
        check_literal_input(c, [*where, "fallback", "input"], fb.get("input") or {}, cap.input_schema)
    if tmpl is None:
        return "fallback", None
    return "fallback", Fallback(uses=fb["uses"], input=tmpl)


def check_literal_input(
    c: Checker, where: list[Any], given: dict[str, Any], schema: dict[str, Any], what: str = "the capability"
) -> None:
    """Check what can be checked before running: required and unknown keys, literal values."""
    props = schema.get("properties") or {}
    for key in schema.get("required") or ():
        if key not in given:
            c.add(where, f"input: missing {key!r}, which {what} requires")
    if schema.get("additionalProperties") is False:
        for key in given:
            if key not in props:
                c.add([*where, key], f"input: {what} takes no {key!r}")
    for key, value in given.items():
        if key in props and isinstance(props[key], dict) and not _has_expression(value):
            err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(props[key]).iter_errors(_plain(value)))
            if err is not None:
                c.add([*where, key], f"input.{key}: {err.message}")


def _has_expression(value: Any) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(_has_expression(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_expression(v) for v in value)
    return False


def _build_outputs(c: Checker, raw: dict[str, Any], steps: list[Step]) -> list[Output]:
    by_id = {s.id: s for s in steps}
    outputs: list[Output] = []
    for name, spec in raw.items():
        tmpl = c.template(["outputs", name, "value"], spec["value"])
        if tmpl is None:
            continue
        for ref in sorted(tmpl.step_refs or ()):
            if ref not in by_id:
                c.add(["outputs", name, "value"], f"output {name!r} reads steps.{ref}, which is no step{did_you_mean(ref, by_id)}")
        _check_fields(c, ["outputs", name, "value"], f"output {name!r}", tmpl.expressions, by_id)
        _check_inputs_read(c, ["outputs", name, "value"], f"output {name!r}", tmpl.expressions, c.inputs_declared)
        if spec.get("schema"):
            _check_oas_schema(c, ["outputs", name, "schema"], spec["schema"])
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

