"""Rendered capability inputs are checked against the capability's input schema when the step runs.

The loader checks literal inputs; values written as ``${...}`` are only known at run
time. Issue 10: those reached the capability unchecked.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from engine_util import engine_for, registry_with, run, skill
from skillrun.engine import Capability
from skillrun.engine.inputcheck import InputCheck

pytestmark = pytest.mark.anyio

_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["n"],
    "additionalProperties": False,
    "properties": {
        "n": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}


class Counted:
    """A capability with a schema that records every call it gets."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, args: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(args)
        return {"n": args["n"]}

    def capability(self, name: str = "counted") -> Capability:
        return Capability(name, self, "", _SCHEMA)


async def test_a_rendered_input_that_breaks_the_schema_fails_with_input_invalid_naming_the_field() -> None:
    """Issue 10: ``n: ${inputs.n}`` with ``n = -1`` reached a capability whose schema says
    ``minimum: 0``; now the step fails with ``input_invalid`` naming ``input.n``, the
    capability is not called, and the default retry does not repeat it."""
    counted = Counted()
    reg = registry_with(counted.capability())
    s = skill(
        """
        id: rendered
        version: "1"
        steps:
          - {id: a, uses: counted, retry: {max_attempts: 3, backoff: {initial_ms: 1}}, input: {n: "${inputs.n}"}}
        """,
        reg,
    )
    engine = engine_for(s, registry=reg)
    outcome, rec, _ = await run(engine, s, {"n": -1})
    assert outcome.error == {"kind": "input_invalid", "message": "counted input.n: -1 is less than the minimum of 0"}
    assert rec.types("a") == ["step_start", "step_failed"] and counted.calls == []
    outcome, _, _ = await run(engine, s, {"n": "3"})
    assert outcome.error is not None and outcome.error["message"] == 'counted input.n: "3" is not of type "integer"'
    outcome, _, _ = await run(engine, s, {"n": 3})
    assert outcome.status == "completed" and counted.calls == [{"n": 3}]


async def test_each_foreach_item_is_checked_and_the_failing_item_is_named() -> None:
    counted = Counted()
    reg = registry_with(counted.capability())
    s = skill(
        """
        id: items
        version: "1"
        steps:
          - {id: a, uses: counted, foreach: "${inputs.items}", on_error: continue, input: {n: 1, tags: ["${item}"]}}
        """,
        reg,
    )
    outcome, rec, _ = await run(engine_for(s, registry=reg), s, {"items": ["x", 7]})
    failed = rec.of("step_failed", "a")
    assert [e["data"]["index"] for e in failed] == [1]
    assert failed[0]["data"]["error"] == {"kind": "input_invalid", "message": 'counted input.tags[0]: 7 is not of type "string"'}
    assert counted.calls == [{"n": 1, "tags": ["x"]}]


async def test_a_fallback_input_is_checked_too() -> None:
    counted = Counted()
    reg = registry_with(counted.capability())
    s = skill(
        """
        id: fb
        version: "1"
        steps:
          - id: a
            uses: util.fail
            on_error: {fallback: {uses: counted, input: {n: "${inputs.n}"}}}
            input: {message: boom}
        """,
        reg,
    )
    outcome, _, _ = await run(engine_for(s, registry=reg), s, {"n": 1.5})
    assert outcome.error is not None and outcome.error["kind"] == "input_invalid"
    assert outcome.error["message"] == 'fallback counted failed too: counted input.n: 1.5 is not of type "integer"'
    assert counted.calls == []


def test_missing_and_unexpected_keys_are_named() -> None:
    check = InputCheck()
    cap = Counted().capability()
    assert check.problem(cap, {}) == 'input.n: "n" is a required property'
    assert check.problem(cap, {"n": 1, "extra": 2}) == "input.extra: Additional properties are not allowed ('extra' was unexpected)"
    assert check.problem(cap, {"n": 1, "tags": ["a"]}) is None


def test_a_long_bad_value_is_not_echoed_whole() -> None:
    problem = InputCheck().problem(Counted().capability(), {"n": "x" * 100_000})
    assert problem is not None and problem.startswith("input.n: ") and len(problem) < 300


def test_one_validator_per_capability_built_once_and_none_for_the_default_schema() -> None:
    check = InputCheck()
    cap = Counted().capability()
    check.problem(cap, {"n": 1})
    first = check._validator(cap)
    check.problem(cap, {"n": 2})
    assert first is not None and check._validator(cap) is first
    echo = Capability("echo", Counted())  # {"type": "object"}: every object passes, nothing to build
    assert check._validator(echo) is None and check.problem(echo, {"anything": [1]}) is None


def test_a_plugin_schema_that_cannot_be_compiled_is_logged_and_left_unchecked(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="skillrun.engine.inputcheck")
    broken = Capability("broken", Counted(), "", {"type": "object", "properties": {"n": {"type": "no-such-type"}}})
    assert InputCheck().problem(broken, {"n": 1}) is None
    assert "broken: input schema not usable" in caplog.text


async def test_a_rendered_value_json_has_no_type_for_is_named() -> None:
    """CEL can render bytes and timestamps; a capability with a schema takes JSON values only."""
    counted = Counted()
    reg = registry_with(counted.capability())
    s = skill(
        """
        id: cel_types
        version: "1"
        steps:
          - {id: a, uses: counted, input: {n: 1, tags: ['${b"raw"}']}}
        """,
        reg,
    )
    outcome, _, _ = await run(engine_for(s, registry=reg), s)
    assert outcome.error == {"kind": "input_invalid", "message": "counted input.tags[0]: bytes is not a JSON type"}
    assert counted.calls == []
