"""Issue 15, the answer/timeout race of ``human.input``: an answer arriving exactly as the
wait times out ends in exactly one outcome, on every store: either the answer completes
the step and is acknowledged (202), or the timeout wins and the answer is refused (409,
``NotWaiting``), never both, and never a dropped answer reported as accepted.

The race is made deterministic by blocking the event loop past the wait's deadline
(``time.sleep``), so that the timeout's callback and the answer run in a known order
within one loop turn."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest

from skillrun.engine.waiting import NotWaiting
from skillrun.runs import follow
from stores import started, store_db

pytestmark = pytest.mark.anyio

SKILLS = Path(__file__).parent / "waiting_skills"
# test.wait_timeout: step "ask" waits 0.3 s, on_error continue; blocking longer passes its deadline.
PAST_DEADLINE_S = 0.45


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def app(request: pytest.FixtureRequest, tmp_path: Path, app_factory: Callable[..., Any]) -> AsyncIterator[Any]:
    db, options = store_db(request, tmp_path)
    app = app_factory(db=db, skill_dirs=[SKILLS], rate_limit_storage="memory://", **options)
    async with started(app):
        yield app


@pytest.fixture(params=["redis", "redis-cluster"])
async def two_apps(
    request: pytest.FixtureRequest, tmp_path: Path, app_factory: Callable[..., Any]
) -> AsyncIterator[tuple[Any, Any]]:
    """Nodes A and B on one Redis (one prefix), with the waiting test skills."""
    db, options = store_db(request, tmp_path)
    apps = [app_factory(db=db, skill_dirs=[SKILLS], node_lease_s=1.0, rate_limit_storage="memory://", **options)
            for _ in range(2)]
    async with started(*apps):
        yield apps[0], apps[1]


async def _waiting_run(app: Any) -> Any:
    """Start test.wait_timeout and return its record once step ``ask`` waits here."""
    runs = app.services.runs
    started = await runs.start(app.services.catalog.get("test.wait_timeout"), {}, owner="key_a", channel="http")
    for _ in range(200):
        if app.services.engine.answers.waiting(started.run_id):
            return started
        await asyncio.sleep(0.005)
    raise AssertionError("the run never waited")


async def _fates_of_ask(app: Any, run_id: str) -> list[tuple[str, Any]]:
    events = [e async for batch in follow(app.services.store, run_id, 0, idle_s=1) for e in batch]
    assert events[-1].type == "done"
    fates = []
    for e in events:
        payload = json.loads(e.data)
        if payload.get("step_id") == "ask" and e.type in ("step_completed", "step_failed"):
            data = payload.get("data") or {}
            fates.append((e.type, (data.get("error") or {}).get("kind")))
    return fates


async def test_an_answer_in_the_same_loop_turn_as_the_timeout_but_first_wins_and_is_acknowledged(app: Any) -> None:
    """The wait's deadline passes while the loop is busy; the answer {"ok": true} runs in
    the loop turn that fires the timeout, just before it: the answer is acknowledged and the
    step completes with it (one fate: step_completed), never step_failed timeout as well."""
    run = await _waiting_run(app)
    time.sleep(PAST_DEADLINE_S)
    await asyncio.sleep(0)  # the next turn runs this task first, then the timeout's callback
    # Awaited directly (no wait_for, whose new task would run after the timeout's callback):
    # the answer is handed over before this task's first suspension.
    async with asyncio.timeout(10):
        await app.services.runs.answer(run, "ask", None, {"ok": True})
    assert await _fates_of_ask(app, run.run_id) == [("step_completed", None)]


async def test_a_timeout_that_fires_first_refuses_the_answer_with_409(app: Any) -> None:
    """The wait's deadline passes and its timeout fires one loop turn before the answer
    {"ok": true}: the answer is refused (NotWaiting, 409) and the step's one fate is
    step_failed with kind timeout."""
    run = await _waiting_run(app)
    time.sleep(PAST_DEADLINE_S)
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the timeout's callback ran in the turn before this one
    with pytest.raises(NotWaiting):
        await asyncio.wait_for(app.services.runs.answer(run, "ask", None, {"ok": True}), 10)
    assert await _fates_of_ask(app, run.run_id) == [("step_failed", "timeout")]


async def test_an_answer_sent_through_another_node_after_the_wait_timed_out_is_refused_not_acknowledged(
    two_apps: tuple[Any, Any],
) -> None:
    """The run waits on node A; its deadline passes while the loop is busy, and the answer
    {"ok": true} is sent to node B: A's timeout fires before the answer can reach it over
    Redis, so A drops it; B must answer 409 (NotWaiting), not 202 for an answer nobody used."""
    a, b = two_apps
    run = await _waiting_run(a)
    time.sleep(PAST_DEADLINE_S)
    with pytest.raises(NotWaiting):
        await asyncio.wait_for(b.services.runs.answer(run, "ask", None, {"ok": True}), 10)
    assert await _fates_of_ask(b, run.run_id) == [("step_failed", "timeout")]
