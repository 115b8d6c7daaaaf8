"""CEL conditions and ``${...}`` templates, compiled once at load time.

Conditions (``when``) and values in a step's ``input`` or a skill's ``outputs`` are
CEL (https://cel.dev) evaluated over ``{"inputs": ..., "steps": ...}``; never Python
``eval``. A string that is exactly ``${expr}`` evaluates to the expression's typed
value; ``${expr}`` inside a longer string is interpolated as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import cel

_WHOLE = re.compile(r"^\$\{(.*)\}$", re.DOTALL)
_PART = re.compile(r"\$\{(.*?)\}", re.DOTALL)
_STEP_REF = re.compile(r"\bsteps\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*[\"']([^\"']+)[\"']\s*\])")
_STEPS_ANY = re.compile(r"\bsteps\b")
_INPUT_REF = re.compile(r"\binputs\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*[\"']([^\"']+)[\"']\s*\])")
_INPUTS_ANY = re.compile(r"\binputs\b")
# A plain member path (``inputs.delay_ms``, ``item``): evaluated without the CEL runtime
# when it lands on a scalar, which is what most step inputs are (~0.3 µs instead of ~15).
_PATH = re.compile(r"^\s*([A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*)*)\s*$")
_SCALARS = (str, int, float, bool, type(None))
_MISSING = object()


def _range(n: int) -> list[int]:
    if not isinstance(n, int) or n < 0 or n > 1_000_000:
        raise ValueError("range() takes an integer 0..1000000")
    return list(range(n))


def _join(items: list[Any], separator: str = "") -> str:
    if not isinstance(items, list):
        raise ValueError("join() takes a list and a separator")
    return str(separator).join(_as_text(i) for i in items)


FUNCTIONS: dict[str, Callable[..., Any]] = {"range": _range, "join": _join}


class ExpressionError(Exception):
    """A CEL expression failed to compile or to evaluate."""


@dataclass(frozen=True, slots=True)
class Expression:
    """One compiled CEL expression and what it reads."""

    source: str
    program: Any
    step_refs: frozenset[str] | None  # None: reads `steps` as a whole
    reads_steps: bool
    needs_functions: bool
    path: tuple[str, ...] | None = None
    # The top-level names it reads, and which inputs (None: `inputs` as a whole). Only
    # these are handed to CEL, which copies what it is given: a foreach item's
    # expression must not copy a 500 KB document once per item (quadratic).
    reads: frozenset[str] = frozenset()
    input_refs: frozenset[str] | None = None

    @classmethod
    def compile(cls, source: str) -> "Expression":
        try:
            program = cel.compile(source)
        except (ValueError, RuntimeError) as exc:
            raise ExpressionError(str(exc).splitlines()[0]) from None
        reads = frozenset(program.variables())
        reads_steps = "steps" in reads
        refs = _member_refs(source, _STEP_REF, _STEPS_ANY) if reads_steps else frozenset()
        input_refs = _member_refs(source, _INPUT_REF, _INPUTS_ANY) if "inputs" in reads else frozenset()
        needs = any(f in FUNCTIONS for f in program.functions())
        plain = _PATH.match(source)
        path = tuple(p.strip() for p in plain.group(1).split(".")) if plain else None
        return cls(source, program, refs, reads_steps, needs, path, reads, input_refs)

    def _walk(self, inputs: Mapping[str, Any], steps: Mapping[str, Any], local: Mapping[str, Any] | None) -> Any:
        """The path's value if it is a scalar, else ``_MISSING`` (CEL decides, and copies)."""
        assert self.path is not None
        root, *rest = self.path
        if root == "inputs":
            value: Any = inputs
        elif root == "steps":
            value = steps
        elif local and root in local:
            value = local[root]
        else:
            return _MISSING
        for key in rest:
            if not isinstance(value, dict) or key not in value:
                return _MISSING
            value = value[key]
        return value if isinstance(value, _SCALARS) else _MISSING

    @property
    def raw(self) -> str:
        """As a template (``render_elsewhere`` takes templates)."""
        return "${" + self.source + "}"

    def activation(
        self, inputs: Mapping[str, Any], steps: Mapping[str, Any], local: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return activation(self.reads, self.input_refs, self.step_refs, inputs, steps, local)

    def render(
        self, inputs: Mapping[str, Any], steps: Mapping[str, Any], local: Mapping[str, Any] | None = None
    ) -> Any:
        return self.evaluate(inputs, steps, local)

    def evaluate(
        self,
        inputs: Mapping[str, Any],
        steps: Mapping[str, Any],
        local: Mapping[str, Any] | None = None,
    ) -> Any:
        if self.path is not None:
            value = self._walk(inputs, steps, local)
            if value is not _MISSING:
                return value
        scope = activation(self.reads, self.input_refs, self.step_refs, inputs, steps, local)
        try:
            if self.needs_functions:
                return self.program.execute(cel.Context(variables=scope, functions=FUNCTIONS))
            return self.program.execute(scope)
        except KeyError as exc:
            raise ExpressionError(f"{self.source!r}: no such field {exc}") from None
        except Exception as exc:  # the CEL runtime raises several types
            raise ExpressionError(f"{self.source!r}: {exc}") from None


def activation(
    reads: frozenset[str],
    input_refs: frozenset[str] | None,
    step_refs: frozenset[str] | None,
    inputs: Mapping[str, Any],
    steps: Mapping[str, Any],
    local: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The variables an expression reads, with only the inputs and steps it names."""
    scope: dict[str, Any] = {}
    if "inputs" in reads:
        scope["inputs"] = inputs if input_refs is None else {k: inputs[k] for k in input_refs if k in inputs}
    if local:
        scope.update((k, v) for k, v in local.items() if k in reads)
    if "steps" in reads:
        scope["steps"] = steps if step_refs is None else {k: steps[k] for k in step_refs if k in steps}
    return scope


def _member_refs(source: str, ref: re.Pattern[str], any_use: re.Pattern[str]) -> frozenset[str] | None:
    """The fields of a variable that ``source`` names as ``var.<f>`` / ``var["f"]``;
    None when it uses the variable any other way (then it needs all of it)."""
    found = ref.findall(source)
    if len(any_use.findall(source)) != len(found):
        return None
    return frozenset(a or b for a, b in found)


class Template:
    """A JSON-like value whose strings may hold ``${...}`` expressions."""

    __slots__ = ("_render", "expressions", "raw", "_reads")

    def __init__(self, value: Any) -> None:
        self.expressions: list[Expression] = []
        self._render = self._build(value)
        self.raw = value
        exprs = self.expressions
        self._reads = (
            frozenset().union(*(e.reads for e in exprs)),
            None if any(e.input_refs is None for e in exprs) else frozenset().union(*(e.input_refs or () for e in exprs)),
            None if any(e.step_refs is None for e in exprs) else frozenset().union(*(e.step_refs or () for e in exprs)),
        )

    def activation(
        self, inputs: Mapping[str, Any], steps: Mapping[str, Any], local: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """What rendering reads (see ``activation``): enough to render it elsewhere."""
        return activation(*self._reads, inputs, steps, local)

    def render(
        self,
        inputs: Mapping[str, Any],
        steps: Mapping[str, Any],
        local: Mapping[str, Any] | None = None,
    ) -> Any:
        return self._render(inputs, steps, local)

    @property
    def step_refs(self) -> set[str] | None:
        refs: set[str] = set()
        for e in self.expressions:
            if e.step_refs is None:
                return None
            refs |= e.step_refs
        return refs

    def _build(self, value: Any) -> Callable[..., Any]:
        if isinstance(value, str):
            whole = _WHOLE.match(value)
            if whole and "${" not in whole.group(1):
                expr = Expression.compile(whole.group(1).strip())
                self.expressions.append(expr)
                return expr.evaluate
            parts = _PART.split(value)
            if len(parts) == 1:
                return lambda _i, _s, _l=None: value
            pieces: list[Any] = []
            for n, part in enumerate(parts):
                if n % 2:
                    expr = Expression.compile(part.strip())
                    self.expressions.append(expr)
                    pieces.append(expr)
                elif part:
                    pieces.append(part)
            return lambda i, s, l=None: "".join(
                p if isinstance(p, str) else _as_text(p.evaluate(i, s, l)) for p in pieces
            )
        before = len(self.expressions)
        if isinstance(value, dict):
            items = [(k, self._build(v)) for k, v in value.items()]
            if len(self.expressions) == before:
                return lambda _i, _s, _l=None: value
            return lambda i, s, l=None: {k: f(i, s, l) for k, f in items}
        if isinstance(value, list):
            fns = [self._build(v) for v in value]
            if len(self.expressions) == before:
                return lambda _i, _s, _l=None: value
            return lambda i, s, l=None: [f(i, s, l) for f in fns]
        return lambda _i, _s, _l=None: value


_WORKER_TEMPLATES: dict[str, Template] = {}


def render_elsewhere(args: dict[str, Any]) -> Any:
    """Render a template from its raw value and activation: in a worker process, where a
    costly expression (CEL's ``map`` and ``filter`` are quadratic in the list's length)
    can be stopped at the step's deadline. Compiled templates are cached per process."""
    key = repr(args["template"])
    template = _WORKER_TEMPLATES.get(key)
    if template is None:
        if len(_WORKER_TEMPLATES) >= 512:
            _WORKER_TEMPLATES.clear()
        template = _WORKER_TEMPLATES[key] = Template(args["template"])
    scope = dict(args["scope"])
    inputs, steps = scope.pop("inputs", {}), scope.pop("steps", {})
    return template.render(inputs, steps, scope)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
