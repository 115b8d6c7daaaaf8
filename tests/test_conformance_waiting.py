"""The stream's order rules know ``step_waiting`` (issue 15): it is an in-step event,
allowed only between its step's ``step_start`` and terminal event."""

from __future__ import annotations

from typing import Any

import pytest

from skillrun.conformance.sse import RuleViolation, check_order


def _e(type_: str, step_id: str | None = None, **data: Any) -> dict[str, Any]:
    return {"type": type_, "step_id": step_id, "data": data}


def _run(*inside: dict[str, Any]) -> list[dict[str, Any]]:
    return [_e("skill_start", steps=["ask"]), *inside, _e("skill_completed", status="completed"),
            {"type": "done", "status": "completed"}]


def test_step_waiting_inside_its_step_holds_the_rules() -> None:
    """step_start, step_waiting, step_completed (waited_ms): a good stream."""
    check_order(_run(_e("step_start", "ask", uses="human.input"), _e("step_waiting", "ask", prompt="?"),
                     _e("step_completed", "ask", produced_output={}, waited_ms=5)))


@pytest.mark.parametrize("events", [
    [_e("step_waiting", "ask", prompt="?"), _e("step_start", "ask"), _e("step_completed", "ask")],
    [_e("step_start", "ask"), _e("step_completed", "ask"), _e("step_waiting", "ask", prompt="?")],
], ids=["before its step_start", "after its terminal event"])
def test_step_waiting_outside_its_step_breaks_the_order_rule(events: list[dict[str, Any]]) -> None:
    """A step_waiting before the step started, or after it ended, is named by the order rule."""
    with pytest.raises(RuleViolation, match="step_waiting for .* outside its step's life"):
        check_order(_run(*events))
