"""CEL conditions and ``${...}`` templates, compiled once at load time.

Conditions (``when``) and values in a step's ``input`` or a skill's ``outputs`` are
CEL (https://cel.dev) evaluated over ``{"inputs": ..., "steps": ...}``; never Python
``eval``. A string that is exactly ``${expr}`` evaluates to the expression's typed
value; ``${expr}`` inside a longer string is interpolated as text.

Plain paths (``inputs.x``, ``steps.a.b``, ``item``), variable-free scalars and
conditionals whose test is one of those skip the CEL runtime (``Expression.quick``)
where that gives exactly CEL's result; everything else, and every error, is CEL's.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import cel

_WHOLE = re.compile(r"^\$\{(.*)\}$", re.DOTALL)
_PART = re.compile(r"\$\{(.*?)\}", re.DOTALL)
_STEP_REF = re.compile(r"\bsteps\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*[\"']([^\"']+)[\"']\s*\])")
_STEPS_ANY = re.compile(r"\bsteps\b")
_INPUT_REF = re.compile(r"\binputs\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*[\"']([^\"']+)[\"']\s*\])")
_INPUTS_ANY = re.compile(r"\binputs\b")
# A plain member path (``inputs.delay_ms``, ``item``): evaluated without the CEL runtime
# (~0.3 µs instead of ~15), see ``Expression.quick``.
_PATH = re.compile(r"^\s*([A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*)*)\s*$")
_SCALARS = (str, int, float, bool, type(None))
_MISSING = object()
# What ``quick`` gives when only the CEL runtime can tell the value.
NEEDS_CEL: Any = _MISSING
# What a conditional's parts are split by (``_conditional``); sources with comments,
# escapes, triple quotes or CEL's optional syntax (``a.?b``, ``[?``) are left whole to CEL.
_NOT_SPLIT = re.compile(r"//|\\|\"\"\"|\'\'\'|[.\[{(,]\s*\?")


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
    # Evaluated without CEL where that gives CEL's result (``quick``): a value with no
    # variables, computed once (a scalar: nothing to share); a conditional whose test
    # is quick evaluates only its chosen branch (CEL's ternary does the same).
    constant: Any = _MISSING
    branches: "tuple[Expression, Expression, Expression] | None" = None
    # ``quick`` as one closure made at load (None: always CEL): no dispatch per use.
    fast: "Callable[..., Any] | None" = None

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
        constant = _constant(program) if not reads and not needs else _MISSING
        plain = _PATH.match(source) if constant is _MISSING else None
        path = tuple(p.strip() for p in plain.group(1).split(".")) if plain else None
        branches = _conditional(source) if constant is _MISSING and path is None else None
        if path is not None:
            fast: Callable[..., Any] | None = _walker(path)
        elif constant is not _MISSING:
            fast = _constant_fn(constant)
        elif branches is not None and branches[0].fast is not None:
            fast = _chooser(branches[0].fast, branches[1].fast, branches[2].fast)
        else:
            fast = _arithmetic(source)
        return cls(source, program, refs, reads_steps, needs, path, reads, input_refs, constant, branches, fast)

    def quick(self, inputs: Mapping[str, Any], steps: Mapping[str, Any], local: Mapping[str, Any] | None = None) -> Any:
        """The value without the CEL runtime, or ``_MISSING`` when only CEL can tell
        (then ``evaluate`` asks it). Never costlier than linear in what it reads."""
        fast = self.fast
        return fast(inputs, steps, local) if fast is not None else _MISSING

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
        value = self.quick(inputs, steps, local)
        if value is not _MISSING:
            return value
        if self.branches is not None:
            # The test decides which branch CEL would evaluate: evaluate only that one. Its
            # error is reported by the whole expression (below), as CEL would word it.
            test, then, other = self.branches
            go = test.quick(inputs, steps, local)
            if go is True or go is False:
                try:
                    return (then if go else other).evaluate(inputs, steps, local)
                except ExpressionError:
                    pass
        scope = activation(self.reads, self.input_refs, self.step_refs, inputs, steps, local)
        try:
            if self.needs_functions:
                return self.program.execute(cel.Context(variables=scope, functions=FUNCTIONS))
            return self.program.execute(scope)
        except KeyError as exc:
            raise ExpressionError(f"{self.source!r}: no such field {exc}") from None
        except Exception as exc:  # the CEL runtime raises several types
            raise ExpressionError(f"{self.source!r}: {exc}") from None


def _walker(path: tuple[str, ...]) -> Callable[..., Any]:
    """``quick`` for a plain path: its value, a scalar as it is, a list or map as a copy of
    JSON-like values (what CEL gives back, and capabilities must not share mutable objects
    with other steps); ``_MISSING`` when CEL decides (a missing field, another type)."""
    root, rest = path[0], path[1:]

    def walk(inputs: Mapping[str, Any], steps: Mapping[str, Any], local: Mapping[str, Any] | None = None) -> Any:
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
        if isinstance(value, _SCALARS):
            # CEL's ints are 64 bits: it makes a larger one a double.
            return value if type(value) is not int or _INT64_MIN <= value <= _UINT64_MAX else _MISSING
        try:
            return _copy(value)
        except RecursionError:  # nested deeper than Python's stack: CEL decides
            return _MISSING

    return walk


def _constant_fn(value: Any) -> Callable[..., Any]:
    return lambda _i, _s, _l=None: value


def _chooser(
    test: Callable[..., Any], then: Callable[..., Any] | None, other: Callable[..., Any] | None
) -> Callable[..., Any]:
    """``quick`` for ``test ? then : other``: only the branch the test chooses (as CEL)."""

    def choose(inputs: Mapping[str, Any], steps: Mapping[str, Any], local: Mapping[str, Any] | None = None) -> Any:
        go = test(inputs, steps, local)
        if go is True:
            return then(inputs, steps, local) if then is not None else _MISSING
        if go is False:
            return other(inputs, steps, local) if other is not None else _MISSING
        return _MISSING

    return choose


_INT64_MAX = (1 << 63) - 1
_ARITHMETIC = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_CEL_WORDS = frozenset({"true", "false", "null", "in"})


def _arithmetic(source: str) -> Callable[..., Any] | None:
    """``quick`` for arithmetic over paths and numbers (``double(index + 1) / double(inputs.steps)``):
    ``+ - * /``, unary ``-``, ``double()``, parentheses, which CEL and Python parse alike.
    Only what CEL computes without an error is computed here: ints and doubles never
    mixed, ints within 64 bits (no overflow, no division by zero, truncating), doubles
    by IEEE (a division by zero is left to CEL); anything else is ``_MISSING``."""
    if not any(c in source for c in "+-*/(") or "**" in source or "//" in source:
        return None
    try:
        node = ast.parse(source.strip(), mode="eval").body
    except (SyntaxError, ValueError):
        return None
    return _arith_node(node)


def _arith_node(node: ast.AST) -> Callable[..., Any] | None:
    if isinstance(node, ast.Constant):
        value = node.value
        if type(value) is float or type(value) is int and -_INT64_MAX <= value <= _INT64_MAX:
            return _constant_fn(value)
        return None
    if isinstance(node, (ast.Name, ast.Attribute)):
        path: list[str] = []
        while isinstance(node, ast.Attribute):
            path.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name) or node.id in _CEL_WORDS:
            return None
        return _walker((node.id, *reversed(path)))
    if isinstance(node, ast.Call):
        if not (isinstance(node.func, ast.Name) and node.func.id in ("double", "size", "range")
                and len(node.args) == 1 and not node.keywords):
            return None
        if node.func.id != "double":
            of = _path_of(node.args[0])
            if of is None:
                return None
            return _sizer(of) if node.func.id == "size" else _ranger(of)
        inner = _arith_node(node.args[0])
        return None if inner is None else _to_double(inner)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _arith_node(node.operand)
        return None if inner is None else _negate(inner)
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _arith_node(node.left), _arith_node(node.right)
        if left is None or right is None:
            return None
        return _binary(_ARITHMETIC[type(node.op)], left, right)
    return None


def _path_of(node: ast.AST) -> tuple[str, ...] | None:
    """``a.b.c`` as ``("a", "b", "c")``; None for anything else."""
    path: list[str] = []
    while isinstance(node, ast.Attribute):
        path.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id in _CEL_WORDS:
        return None
    return (node.id, *reversed(path))


def _reach(path: tuple[str, ...], inputs: Mapping[str, Any], steps: Mapping[str, Any],
           local: Mapping[str, Any] | None) -> Any:
    """The value at ``path`` as it is (no copy), or ``_MISSING`` where CEL decides."""
    root = path[0]
    if root == "inputs":
        value: Any = inputs
    elif root == "steps":
        value = steps
    elif local and root in local:
        value = local[root]
    else:
        return _MISSING
    for key in path[1:]:
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _cel_data(value: Any) -> bool:
    """Whether CEL takes ``value`` as ``_copy`` would (JSON-like lists and maps, string
    keys, ints within 64 bits), without copying it."""
    stack = [value]
    while stack:
        v = stack.pop()
        kind = type(v)
        if kind is dict:
            for k, x in v.items():
                if type(k) is not str:
                    return False
                if type(x) not in _IMMUTABLE:
                    stack.append(x)
        elif kind is list or kind is tuple:
            stack.extend(x for x in v if type(x) not in _IMMUTABLE)
        elif kind is not int or not _INT64_MIN <= v <= _UINT64_MAX:
            return False
    return True


def _sizer(path: tuple[str, ...]) -> Callable[..., Any]:
    """``quick`` for ``size(path)`` of a list or map: its length (``size(steps.tick)`` of a
    10,000-item foreach: ~1 ms, where handing the list to CEL took ~55). Strings, bytes
    and the rest are CEL's (it counts code points, and decides what it cannot take)."""

    def size(i: Any, s: Any, l: Any = None) -> Any:
        v = _reach(path, i, s, l)
        if type(v) not in (list, dict) or not _cel_data(v):
            return _MISSING
        return len(v)

    return size


def _ranger(path: tuple[str, ...]) -> Callable[..., Any]:
    """``quick`` for ``range(path)`` (``FUNCTIONS``): the list, for an int it takes; else CEL's."""

    def ranged(i: Any, s: Any, l: Any = None) -> Any:
        v = _reach(path, i, s, l)
        return list(range(v)) if type(v) is int and 0 <= v <= 1_000_000 else _MISSING

    return ranged


def _int64(value: Any) -> bool:
    return type(value) is int and _INT64_MIN <= value <= _INT64_MAX


def _to_double(inner: Callable[..., Any]) -> Callable[..., Any]:
    def double(i: Any, s: Any, l: Any = None) -> Any:
        v = inner(i, s, l)
        if type(v) is float:
            return v
        return float(v) if _int64(v) else _MISSING

    return double


def _negate(inner: Callable[..., Any]) -> Callable[..., Any]:
    def negate(i: Any, s: Any, l: Any = None) -> Any:
        v = inner(i, s, l)
        if type(v) is float:
            return -v
        return -v if _int64(v) and _int64(-v) else _MISSING

    return negate


def _binary(op: str, left: Callable[..., Any], right: Callable[..., Any]) -> Callable[..., Any]:
    def compute(i: Any, s: Any, l: Any = None) -> Any:
        a, b = left(i, s, l), right(i, s, l)
        if type(a) is float and type(b) is float:
            if op == "+":
                return a + b
            if op == "-":
                return a - b
            if op == "*":
                return a * b
            return a / b if b != 0.0 else _MISSING
        if not (_int64(a) and _int64(b)):
            return _MISSING
        if op == "+":
            r = a + b
        elif op == "-":
            r = a - b
        elif op == "*":
            r = a * b
        elif b == 0:
            return _MISSING
        else:  # CEL truncates toward zero
            r = abs(a) // abs(b)
            r = r if (a < 0) == (b < 0) else -r
        return r if _int64(r) else _MISSING

    return compute


def _constant(program: Any) -> Any:
    """A variable-free expression's value, if it is a scalar and evaluates (else ``_MISSING``:
    an error is raised at run time, as before; a list or map would be shared by every use)."""
    try:
        value = program.execute({})
    except Exception:  # the CEL runtime raises several types
        return _MISSING
    return value if type(value) in (str, int, float, bool, bytes, type(None)) else _MISSING


def _conditional(source: str) -> "tuple[Expression, Expression, Expression] | None":
    """``test ? then : other`` split into its parts, each compiled alone, when the split
    is certain: ``?`` and ``:`` outside brackets and strings, the first ``?`` and the
    first ``:`` after it (CEL's grammar: test and ``then`` hold no conditional of their
    own unbracketed; ``other`` may). None otherwise, and for sources whose lexing the
    scan below does not follow (``_NOT_SPLIT``)."""
    if "?" not in source or _NOT_SPLIT.search(source):
        return None
    depth, quote, ask, colon = 0, "", -1, -1
    for i, ch in enumerate(source):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and colon < 0:
            if ch == "?":
                if ask >= 0:
                    return None
                ask = i
            elif ch == ":" and ask >= 0:
                colon = i
    if ask < 0 or colon < 0 or quote:
        return None
    try:
        return (Expression.compile(source[:ask].strip()), Expression.compile(source[ask + 1:colon].strip()),
                Expression.compile(source[colon + 1:].strip()))
    except ExpressionError:
        return None


_INT64_MIN, _UINT64_MAX = -(1 << 63), (1 << 64) - 1


def _copy(value: Any) -> Any:
    """A copy of a JSON-like list or map (tuples become lists, as in CEL; keys keep their
    order, where CEL gives a map back in no particular order), or ``_MISSING``
    for what only CEL converts (other types, keys other than strings, ints past 64 bits,
    which CEL makes doubles). Strings are kept as they are, as the walker keeps a
    string it lands on."""
    kind = type(value)
    if kind is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                return _MISSING
            v = v if type(v) in _IMMUTABLE else _copy(v)
            if v is _MISSING:
                return _MISSING
            out[k] = v
        return out
    if kind is list or kind is tuple:
        items = []
        for v in value:
            v = v if type(v) in _IMMUTABLE else _copy(v)
            if v is _MISSING:
                return _MISSING
            items.append(v)
        return items
    if kind is int:
        return value if _INT64_MIN <= value <= _UINT64_MAX else _MISSING
    return _MISSING


# Kept as they are inside a copied list or map (an int is range-checked by ``_copy``).
_IMMUTABLE = frozenset({str, float, bool, bytes, type(None)})


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

    __slots__ = ("_render", "_quick", "expressions", "raw", "_reads")

    def __init__(self, value: Any) -> None:
        self.expressions: list[Expression] = []
        self._render, self._quick = self._build(value)
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

    def quick(
        self, inputs: Mapping[str, Any], steps: Mapping[str, Any], local: Mapping[str, Any] | None = None
    ) -> Any:
        """The rendered value if every expression in it is ``Expression.quick``, else
        ``_MISSING`` (``render`` then goes through CEL)."""
        try:
            return self._quick(inputs, steps, local)
        except _NotQuick:
            return _MISSING

    def bound(self, inputs: Mapping[str, Any]) -> Callable[..., Any]:
        """``quick`` for one run, whose ``inputs`` no step changes: each expression that
        reads only them and comes to a scalar is computed here, once, and a conditional
        whose test does is its chosen branch. For a ``foreach``'s items, which render the
        same template thousands of times: ``demo.ticker``'s ``{ms: "${inputs.delay_ms}",
        progress: "${inputs.progress ? ... : null}"}`` costs a dict copy an item, not
        two expressions (~0.4 µs instead of ~2). The same value as ``quick`` gives."""
        used = [0, 0]
        quick = self._bind(self.raw, iter(self.expressions), used, inputs)[0]
        if not used[1]:  # every expression was computed here: nothing left to raise ``_NotQuick``
            return quick

        def bound_quick(i: Mapping[str, Any], s: Mapping[str, Any], l: Mapping[str, Any] | None = None) -> Any:
            try:
                return quick(i, s, l)
            except _NotQuick:
                return _MISSING

        return bound_quick

    @property
    def step_refs(self) -> set[str] | None:
        refs: set[str] = set()
        for e in self.expressions:
            if e.step_refs is None:
                return None
            refs |= e.step_refs
        return refs

    def _build(self, value: Any) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """Two renderers of ``value``: through ``Expression.evaluate``, and through
        ``Expression.quick`` (which raises ``_NotQuick`` where CEL is needed)."""
        if isinstance(value, str):
            whole = _WHOLE.match(value)
            if whole and "${" not in whole.group(1):
                expr = Expression.compile(whole.group(1).strip())
                self.expressions.append(expr)
                return expr.evaluate, _quick_or_raise(expr)
            parts = _PART.split(value)
            if len(parts) == 1:
                return _const(value)
            pieces: list[Any] = []
            for n, part in enumerate(parts):
                if n % 2:
                    expr = Expression.compile(part.strip())
                    self.expressions.append(expr)
                    pieces.append(expr)
                elif part:
                    pieces.append(part)
            quick = [p if isinstance(p, str) else _quick_or_raise(p) for p in pieces]
            return (
                lambda i, s, l=None: "".join(p if isinstance(p, str) else _as_text(p.evaluate(i, s, l)) for p in pieces),
                lambda i, s, l=None: "".join(p if isinstance(p, str) else _as_text(p(i, s, l)) for p in quick),
            )
        before = len(self.expressions)
        if isinstance(value, dict):
            items = [(k, *self._build(v)) for k, v in value.items()]
            if len(self.expressions) == before:
                return _const(value)
            return (lambda i, s, l=None: {k: f(i, s, l) for k, f, _ in items},
                    lambda i, s, l=None: {k: q(i, s, l) for k, _, q in items})
        if isinstance(value, list):
            fns = [self._build(v) for v in value]
            if len(self.expressions) == before:
                return _const(value)
            return (lambda i, s, l=None: [f(i, s, l) for f, _ in fns],
                    lambda i, s, l=None: [q(i, s, l) for _, q in fns])
        return _const(value)

    def _bind(
        self, value: Any, exprs: Iterator[Expression], used: list[int], inputs: Mapping[str, Any]
    ) -> tuple[Callable[..., Any], Any]:
        """``bound``'s renderer of ``value`` (as ``_build`` builds ``quick``, taking the
        compiled expressions in the order ``_build`` made them; ``used[0]`` counts them,
        ``used[1]`` those left to each use), and its value when that is a scalar known
        now (else ``_MISSING``)."""
        if isinstance(value, str):
            whole = _WHOLE.match(value)
            if whole and "${" not in whole.group(1):
                used[0] += 1
                fn, known = _folded(next(exprs), inputs)
                used[1] += known is _MISSING
                return fn, known
            parts = _PART.split(value)
            if len(parts) == 1:
                return _const(value)[1], value
            pieces: list[Any] = []
            for n, part in enumerate(parts):
                if n % 2:
                    used[0] += 1
                    fn, known = _folded(next(exprs), inputs)
                    used[1] += known is _MISSING
                    pieces.append(fn if known is _MISSING else _as_text(known))
                elif part:
                    pieces.append(part)
            if all(isinstance(p, str) for p in pieces):
                text = "".join(pieces)
                return _const(text)[1], text
            return lambda i, s, l=None: "".join(p if isinstance(p, str) else _as_text(p(i, s, l)) for p in pieces), _MISSING
        before = used[0]
        if isinstance(value, dict):
            items = [(k, *self._bind(v, exprs, used, inputs)) for k, v in value.items()]
            if used[0] == before:
                return _const(value)[1], _MISSING
            if all(known is not _MISSING for _, _, known in items):
                fixed = {k: known for k, _, known in items}
                return lambda i, s, l=None: dict(fixed), _MISSING  # a new dict each time, as ``quick``'s
            return lambda i, s, l=None: {k: q(i, s, l) for k, q, _ in items}, _MISSING
        if isinstance(value, list):
            fns = [self._bind(v, exprs, used, inputs) for v in value]
            if used[0] == before:
                return _const(value)[1], _MISSING
            if all(known is not _MISSING for _, known in fns):
                row = [known for _, known in fns]
                return lambda i, s, l=None: list(row), _MISSING
            return lambda i, s, l=None: [q(i, s, l) for q, _ in fns], _MISSING
        return _const(value)[1], (value if isinstance(value, _SCALARS) else _MISSING)


_INPUTS_ONLY = frozenset({"inputs"})
_NO_STEPS: dict[str, Any] = {}


def _folded(expr: Expression, inputs: Mapping[str, Any]) -> tuple[Callable[..., Any], Any]:
    """``expr``'s ``quick`` for a run with ``inputs`` (``Template.bound``), and its value
    when that is known now: it reads nothing but the inputs and comes to a scalar (a list
    or map stays a copy made per use, as ``quick`` makes it). A conditional whose test
    is known now is the branch it chooses, as ``_chooser`` would choose each time."""
    fast = expr.fast
    try:  # (``quick`` gives ``_MISSING`` where it cannot tell; were it to raise, it is left to each use)
        if fast is not None and expr.reads <= _INPUTS_ONLY:
            value = fast(inputs, _NO_STEPS, None)
            if value is not _MISSING and isinstance(value, _SCALARS):
                return _constant_fn(value), value
        if fast is not None and expr.branches is not None and expr.branches[0].fast is not None:
            test, then, other = expr.branches
            if test.reads <= _INPUTS_ONLY:
                go = test.fast(inputs, _NO_STEPS, None)  # type: ignore[misc]
                if go is True or go is False:
                    return _folded(then if go else other, inputs)
    except Exception:
        pass
    return _quick_or_raise(expr), _MISSING


def _const(value: Any) -> tuple[Callable[..., Any], Callable[..., Any]]:
    fn = lambda _i, _s, _l=None: value  # noqa: E731
    return fn, fn


class _NotQuick(Exception):
    """An expression of a template needs the CEL runtime (``Template.quick``)."""


def _needs_cel(_i: Any, _s: Any, _l: Any = None) -> Any:
    raise _NotQuick


def _quick_or_raise(expr: Expression) -> Callable[..., Any]:
    quick = expr.fast
    if quick is None:
        return _needs_cel

    def value(i: Mapping[str, Any], s: Mapping[str, Any], l: Mapping[str, Any] | None = None) -> Any:
        v = quick(i, s, l)
        if v is _MISSING:
            raise _NotQuick
        return v

    return value


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
