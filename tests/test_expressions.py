"""What expressions evaluate without the CEL runtime (``Expression.quick``: paths,
constants, a conditional on a path) gives exactly CEL's result: the same value, the
same types (int, double, null), the same errors; and never a shared list or map."""

from __future__ import annotations

import itertools
from typing import Any

import cel
import pytest

from skillrun.engine.expressions import _MISSING, FUNCTIONS, Expression, ExpressionError, Template, activation

INPUTS: dict[str, Any] = {
    "flag": True,
    "off": False,
    "steps": 10000,
    "ratio": 0.25,
    "name": "ada",
    "none": None,
    "one": 1,
    "list": [1, 2.5, "x", None, True, {"k": [1, 2]}],
    "doc": {"b": 1, "a": {"c": [1, {"d": None}], "e": "f"}, "t": (1, 2)},
    "empty": {},
    "big": 1 << 70,
    "edge": (1 << 64) - 1,
    "bigs": [1, 1 << 64],
    "intkeys": {1: "a"},
    "bytes": b"\x00x",
    "nested_t": [(1, (2, 3))],
}
STEPS: dict[str, Any] = {
    "split": {"sentences": ["a.", "b."], "count": 2, "meta": {"lang": "en", "scores": [0.5, 1.0]}},
    "tick": [{"slept_ms": 0}, {"slept_ms": 1}],
    "n": {"x": 3},
}
LOCALS: list[dict[str, Any] | None] = [
    None,
    {"item": 3, "index": 2},
    {"item": {"s": [1, 2], "t": "u"}, "index": 0},
    {"item": None, "index": 1},
    {"item": True, "index": 9},
    {"item": [1, [2, {"z": None}]], "index": 4},
    {"error": {"kind": "timeout", "message": "slow"}},
]

PATHS = [
    "inputs.flag", "inputs.steps", "inputs.ratio", "inputs.none", "inputs.list", "inputs.doc", "inputs.doc.a",
    "inputs.doc.a.c", "inputs.doc.t", "inputs.empty", "inputs.missing", "inputs.doc.zz", "inputs.name.x",
    "inputs.big", "inputs.edge", "inputs.bigs", "inputs.intkeys", "inputs.bytes", "inputs.nested_t",
    "steps.split.sentences", "steps.split", "steps.split.meta", "steps.tick", "steps.n.x", "steps.nope",
    "item", "item.s", "item.t", "index", "error", "error.kind", "inputs", "steps",
]
CONSTANTS = [
    "null", "true", "false", "1", "-3", "2.5", "1u", "'s'", '"d"', "b'x'", "1 + 2", "1.0 / 0.0", "1 / 0",
    "[1, 2]", "{'a': 1}", "size('abc')", "'a' + 'b'", "2 * 3.0", "int('x')", "duration('1s')",
]
TESTS = ["inputs.flag", "inputs.off", "inputs.none", "inputs.one", "inputs.missing", "item", "true", "false", "null",
         "inputs.flag && inputs.off", "!inputs.off"]
BRANCHES = ["null", "1", "1.5", "'x'", "inputs.steps", "item", "inputs.list", "steps.split.sentences",
            "double(index + 1) / double(inputs.steps)", "1 / 0", "inputs.missing", "[1, inputs.ratio]",
            "{'k': inputs.name}", "inputs.flag ? 'a' : 'b'", "size(steps.tick)"]
OTHER = [
    "inputs.progress ? double(index + 1) / double(inputs.steps) : null",
    "inputs.flag ? 1 : inputs.off ? 2 : 3",
    "inputs.off ? 1 : inputs.flag ? 2 : 3",
    "(inputs.flag ? 1 : 2) + 1",
    "inputs.flag ? (inputs.off ? 1 : 2) : 3",
    "inputs.flag ? {'a': 1, 'b': inputs.off ? 2 : 3} : 4",
    "inputs.flag ? 'a?b' : 'c:d'",
    "inputs.off ? \"it's\" : 'x\"y'",
    "[inputs.flag ? 1 : 2, 3]",
    "inputs.flag ?1:2",
    "inputs.doc.a.e == 'f' ? inputs.doc.a : null",
    "inputs.flag ? inputs.doc : inputs.list",
    "inputs.flag ? range(2) : []",
    "inputs.flag ? join(['a', 'b'], '-') : ''",
    "has(inputs.doc.b) ? inputs.doc.b : 0",
    "inputs.flag\n  ? 1\n  : 2",
    "inputs.flag ? 1 : 2 // a comment: ? 3",
    "index",
    "  inputs . doc . a  ",
    # size() and range() of a path: quick for a list or map (an int), CEL's for the rest.
    "size(inputs.list)", "size(inputs.doc)", "size(inputs.empty)", "size(inputs.name)", "size(inputs.bytes)",
    "size(inputs.steps)", "size(inputs.missing)", "size(inputs.bigs)", "size(inputs.intkeys)",
    "size(inputs.nested_t)", "size(steps.tick)", "size(steps.split.meta)", "size(item)", "size(error)",
    "size(inputs.list) + 1", "double(size(steps.tick)) / 2.0",
    "range(inputs.one)", "range(index)", "range(item)", "range(inputs.ratio)", "range(inputs.flag)",
    "range(inputs.big)", "range(inputs.missing)", "range(inputs.steps)", "range(inputs.one) + [1]",
]
EXPRESSIONS = (
    PATHS + CONSTANTS + OTHER + [f"{t} ? {a} : {b}" for t, a, b in itertools.product(TESTS, BRANCHES[:6], BRANCHES)]
)


def cel_result(source: str, inputs: dict[str, Any], steps: dict[str, Any], local: dict[str, Any] | None) -> Any:
    """What the CEL runtime alone makes of ``source`` (the value, or the error's text)."""
    program = cel.compile(source)
    reads = frozenset(program.variables())
    scope = activation(reads, None, None, inputs, steps, local)
    try:
        if any(f in FUNCTIONS for f in program.functions()):
            return program.execute(cel.Context(variables=scope, functions=FUNCTIONS))
        return program.execute(scope)
    except KeyError as exc:
        return ExpressionError(f"{source!r}: no such field {exc}")
    except Exception as exc:
        return ExpressionError(f"{source!r}: {exc}")


def ours(expr: Expression, inputs: dict[str, Any], steps: dict[str, Any], local: dict[str, Any] | None) -> Any:
    try:
        return expr.evaluate(inputs, steps, local)
    except ExpressionError as exc:
        return exc


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (1 is not 1.0, True is not 1)."""
    if isinstance(a, ExpressionError) or isinstance(b, ExpressionError):
        return type(a) is type(b) and str(a) == str(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and a != a:
        return b != b
    return bool(a == b)


@pytest.mark.parametrize("source", EXPRESSIONS)
def test_evaluate_gives_what_cel_gives(source: str) -> None:
    try:
        expr = Expression.compile(source)
    except ExpressionError:
        pytest.skip("not CEL")
    for inputs in (INPUTS, {**INPUTS, "progress": True}, {**INPUTS, "progress": False}):
        for local in LOCALS:
            want = cel_result(source, inputs, STEPS, local)
            got = ours(expr, inputs, STEPS, local)
            assert same(got, want), (source, local, got, want)


def test_the_cases_take_the_quick_paths() -> None:
    """The cases above are not all CEL's: paths, constants and conditionals are quick."""
    local = {"item": 3, "index": 2}
    assert Expression.compile("inputs.doc").quick(INPUTS, STEPS, local) == INPUTS["doc"] | {"t": [1, 2]}
    assert Expression.compile("null").constant is None
    assert Expression.compile("1 + 2").constant == 3
    assert Expression.compile("1 / 0").constant is _MISSING
    assert Expression.compile("[1, 2]").constant is _MISSING  # a list would be shared
    ticker = Expression.compile("inputs.progress ? double(index + 1) / double(inputs.steps) : null")
    assert ticker.branches is not None
    assert ticker.quick({**INPUTS, "progress": False}, STEPS, local) is None
    assert ticker.quick({**INPUTS, "progress": True}, STEPS, local) == 0.0003  # arithmetic: see below
    assert Expression.compile("inputs.flag ? size(inputs.name) : 0").quick(INPUTS, STEPS, local) is _MISSING
    assert Expression.compile("inputs.flag ? size(inputs.name) : 0").evaluate(INPUTS, STEPS, local) == 3
    assert Expression.compile("inputs.flag ? size(inputs.list) : 0").quick(INPUTS, STEPS, local) == 6
    assert Expression.compile("size(steps.tick)").quick(INPUTS, STEPS, local) == 2
    assert Expression.compile("range(inputs.one)").quick(INPUTS, STEPS, local) == [0]
    assert Expression.compile("size(inputs.intkeys)").quick(INPUTS, STEPS, local) is _MISSING  # CEL decides
    assert Expression.compile("inputs.flag ? 1 : 2 // a comment: ? 3").branches is None
    assert Expression.compile("inputs.bigs").quick(INPUTS, STEPS) is _MISSING  # CEL makes 2**64 a double


def test_paths_to_lists_and_maps_are_copies() -> None:
    """A capability may change its input: it must not change another step's output."""
    doc = {"a": {"b": [1, {"c": 2}]}}
    expr = Expression.compile("steps.x.a")
    got = expr.evaluate({}, {"x": doc}, None)
    assert got == doc["a"]
    got["b"][1]["c"] = 99
    got["b"].append(3)
    assert doc == {"a": {"b": [1, {"c": 2}]}}
    template = Template({"whole": "${steps.x}", "list": ["${steps.x.a.b}"]})
    out = template.quick({}, {"x": doc}, None)
    assert out == {"whole": doc, "list": [doc["a"]["b"]]}
    assert out["whole"] is not doc and out["list"][0] is not doc["a"]["b"]


def test_deeply_nested_values_are_left_to_cel() -> None:
    deep: Any = 1
    for _ in range(5000):
        deep = [deep]
    expr = Expression.compile("inputs.deep")
    assert expr.quick({"deep": deep}, {}, None) is _MISSING


@pytest.mark.parametrize(
    "value",
    [
        {"a": "${inputs.flag ? inputs.name : null}", "b": ["${index}", "n=${inputs.steps} ${item}"], "c": 1},
        "${inputs.list}",
        "x ${inputs.doc.a.e} y ${inputs.none} z ${inputs.flag}",
        {"p": "${inputs.progress ? double(index + 1) / double(inputs.steps) : null}"},
        {"plain": [1, {"a": "b"}]},
        "${size(inputs.list)}",
    ],
)
def test_template_quick_renders_as_render_does(value: Any) -> None:
    template = Template(value)
    for inputs in ({**INPUTS, "progress": False}, {**INPUTS, "progress": True}):
        for local in LOCALS[:3]:
            quick = template.quick(inputs, STEPS, local)
            if quick is _MISSING:
                continue
            assert same(quick, template.render(inputs, STEPS, local))
    assert Template("${size(inputs.name)}").quick(INPUTS, STEPS) is _MISSING
    assert Template("${size(inputs.list)}").quick(INPUTS, STEPS) == 6
    assert Template({"plain": [1]}).quick(INPUTS, STEPS) == {"plain": [1]}


_BOUND_TEMPLATES = [
    {"ms": "${inputs.steps}", "progress": "${inputs.progress ? double(index + 1) / double(inputs.steps) : null}"},
    {"a": "${inputs.flag ? inputs.name : null}", "b": ["${index}", "n=${inputs.steps} ${item}"], "c": 1},
    {"a": {"b": ["${inputs.name}", 2, None, "${inputs.ratio}"]}, "c": {"d": "x"}, "e": ["${inputs.one}"]},
    "x ${inputs.doc.a.e} y ${inputs.none} z ${inputs.flag}",
    "n=${inputs.steps} i=${index}",
    "${inputs.list}",
    ["${inputs.doc}", "${inputs.steps}"],
    {"plain": [1, {"a": "b"}]},
    "no expression",
    7,
    *({"v": f"${{{source}}}", "k": "${inputs.one}"} for source in EXPRESSIONS),
]


@pytest.mark.parametrize("value", _BOUND_TEMPLATES)
def test_a_template_bound_to_a_runs_inputs_renders_as_quick_does(value: Any) -> None:
    """``Template.bound`` computes what reads only the inputs once (a foreach's items then
    share it): each item still gets the value ``quick`` gives, the same types, a new list
    or map each time (never one shared with another item), ``_MISSING`` where CEL decides."""
    try:
        template = Template(value)
    except ExpressionError:
        pytest.skip("not CEL")
    for inputs in (INPUTS, {**INPUTS, "progress": True}, {**INPUTS, "progress": False}):
        bound = template.bound(inputs)
        for local in LOCALS:
            want = template.quick(inputs, STEPS, local)
            got = bound(inputs, STEPS, local)
            assert (got is _MISSING) == (want is _MISSING), (value, local, got, want)
            if want is _MISSING:
                continue
            assert same(got, want), (value, local, got, want)
            if isinstance(want, (dict, list)) and want and template.expressions:
                assert bound(inputs, STEPS, local) is not got  # a new one each time


def test_a_bound_template_computes_what_reads_only_the_inputs_once() -> None:
    """The ticker's template bound to inputs without progress needs no expression per
    item (a copy of the dict it came to), and a test it knows picks its branch now."""
    ticker = Template({"ms": "${inputs.delay_ms}",
                       "progress": "${inputs.progress ? double(index + 1) / double(inputs.steps) : null}"})
    calls = []
    inputs = {"delay_ms": 0, "progress": False, "steps": 4}
    for e in ticker.expressions:
        fast = e.fast
        object.__setattr__(e, "fast", lambda *a, _f=fast: calls.append(1) or _f(*a))
    bound = ticker.bound(inputs)
    made = len(calls)
    assert [bound(inputs, {}, {"index": i, "item": i}) for i in range(3)] == [{"ms": 0, "progress": None}] * 3
    assert len(calls) == made  # nothing evaluated per item
    with_progress = ticker.bound({**inputs, "progress": True})
    assert with_progress(inputs, {}, {"index": 1, "item": 1}) == {"ms": 0, "progress": 0.5}


NUMBERS: dict[str, Any] = {
    "i": 7, "j": -2, "z": 0, "big": (1 << 63) - 1, "small": -(1 << 63), "u": 1 << 63, "f": 2.5, "g": -0.0,
    "h": 1e308, "t": True, "s": "3", "n": None, "l": [1],
}


def _arithmetic_sources(seed: int, count: int) -> list[str]:
    import random

    rng = random.Random(seed)
    leaves = [*(f"inputs.{k}" for k in NUMBERS), "index", "item", "1", "0", "3", "2.0", "0.0", "1e300", "9223372036854775807"]

    def tree(depth: int) -> str:
        roll = rng.random()
        if depth == 0 or roll < 0.3:
            return rng.choice(leaves)
        if roll < 0.45:
            return f"double({tree(depth - 1)})"
        if roll < 0.55:
            return f"-{tree(depth - 1)}"
        if roll < 0.65:
            return f"({tree(depth - 1)})"
        return f"{tree(depth - 1)} {rng.choice('+-*/')} {tree(depth - 1)}"

    return [tree(4) for _ in range(count)]


@pytest.mark.parametrize("seed", range(8))
def test_arithmetic_gives_what_cel_gives(seed: int) -> None:
    """``+ - * /``, unary minus and ``double()`` over ints and doubles: CEL's value or
    CEL's error (overflow, division by zero, mixed types) for random expressions."""
    quick = 0
    for source in _arithmetic_sources(seed, 150):
        expr = Expression.compile(source)
        for local in ({"index": 3, "item": 2.5}, {"index": 0, "item": -1}):
            want = cel_result(source, NUMBERS, {}, local)
            got = ours(expr, NUMBERS, {}, local)
            assert same(got, want), (source, local, got, want)
            quick += expr.quick(NUMBERS, {}, local) is not _MISSING
    assert quick > 50  # most of them were computed without CEL


def test_arithmetic_is_quick_for_the_ticker() -> None:
    ticker = Expression.compile("inputs.progress ? double(index + 1) / double(inputs.steps) : null")
    assert ticker.quick({"progress": True, "steps": 4}, {}, {"index": 2, "item": 2}) == 0.75
    assert Expression.compile("1 / 0").quick({}, {}) is _MISSING  # the error is CEL's, at run time
    assert Expression.compile("inputs.a % 2").fast is None  # C's remainder, not Python's
