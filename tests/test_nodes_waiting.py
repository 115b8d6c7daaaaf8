"""Issue 15 with the Redis store: an answer to a step waiting for input reaches the node
that runs the run, whichever node it was sent to (as cancels do, see ``runs.nodes``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from skillrun.engine.waiting import NotWaiting
from skillrun.runs.manager import AnswerInvalid
from test_nodes import _log, two_apps  # noqa: F401  (the fixture: nodes A and B on one Redis)

pytestmark = pytest.mark.anyio


async def _waiting(app: Any, run_id: str) -> Any:
    for _ in range(200):
        run = await app.services.store.get(run_id)
        if run is not None and run.status == "waiting":
            return run
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} never waited")


async def test_an_answer_sent_to_node_b_reaches_the_waiting_step_on_node_a(two_apps: tuple[Any, Any]) -> None:
    """demo.approval runs on A and waits; on B a bad answer is refused (value.approve),
    an answer to a step that does not wait is refused, and {approve: true} reaches A:
    B returns once the step's completion is in the log, and the run completes published."""
    a, b = two_apps
    skill = a.services.catalog.get("demo.approval")
    started = await a.services.runs.start(skill, {"text": "One. Two. Three."}, owner="key_a", channel="http")
    run = await _waiting(b, started.run_id)
    with pytest.raises(AnswerInvalid) as bad:
        await b.services.runs.answer(run, "ask", None, {"approve": "yes"})
    assert bad.value.field == "value.approve"
    with pytest.raises(NotWaiting):
        await b.services.runs.answer(run, "draft", None, {"approve": True})
    await asyncio.wait_for(b.services.runs.answer(run, "ask", None, {"approve": True}), 10)
    events = await asyncio.wait_for(_log(b, run.run_id), 10)
    assert events[-1].type == "done" and '"decision":"published"' in events[-1].data
    assert a.services.runs.live == 0
