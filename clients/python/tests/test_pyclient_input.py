"""``runs.input``: answering a step that waits for input (``StepWaitingEvent``), sync and async."""

from __future__ import annotations

from typing import Any

import pytest

from skillrun_client import ConflictError, StepWaitingEvent, ValidationError
from skillrun_client.models import Run

from .conftest import call, collect

pytestmark = pytest.mark.anyio

TEXT = "Skillrun runs skills. Each step is an event. Some steps wait for people."


async def _waiting(client: Any, run_id: str) -> StepWaitingEvent:
    """The run's ``step_waiting`` event: its 7th (skill_start, split and draft with two
    events each, ask's step_start); the stream then stays open, so read only up to it."""
    events = await collect(client.runs.events(run_id), limit=7)
    assert isinstance(events[-1], StepWaitingEvent), [e.type for e in events]
    return events[-1]


async def test_input_answers_the_waiting_step(client: Any) -> None:
    """The typed StepWaitingEvent says where and what to answer; runs.input answers it (202 -> Run)."""
    run = await call(client.execute_async, "demo.approval", {"text": TEXT})
    waiting = await _waiting(client, run.run_id)
    assert waiting.step_id == "ask" and waiting.data.answer_url == f"/v1/runs/{run.run_id}/input"
    assert (await call(client.runs.get, run.run_id)).status == "waiting"
    answered = await call(client.runs.input, run.run_id, "ask", {"approve": True})
    assert isinstance(answered, Run) and answered.run_id == run.run_id
    with pytest.raises(ConflictError):
        await call(client.runs.input, run.run_id, "ask", {"approve": False})
    events = await collect(client.runs.events(run.run_id))
    assert events[-1].type == "done" and events[-1].outputs["decision"] == "published"


async def test_input_with_a_bad_value_or_index(client: Any) -> None:
    """A value breaking the schema is a ValidationError naming value.approve; an index
    no item waits under is a ConflictError; the step still takes a good answer."""
    run = await call(client.execute_async, "demo.approval", {"text": TEXT})
    await _waiting(client, run.run_id)
    with pytest.raises(ValidationError) as bad:
        await call(client.runs.input, run.run_id, "ask", {"approve": "yes"})
    assert bad.value.problem.errors[0].field == "value.approve"
    with pytest.raises(ConflictError):
        await call(client.runs.input, run.run_id, "ask", {"approve": True}, index=2)
    await call(client.runs.input, run.run_id, "ask", {"approve": False, "comment": "no"})
    events = await collect(client.runs.events(run.run_id))
    assert events[-1].outputs == {"decision": "rejected", "reason": "no"}
