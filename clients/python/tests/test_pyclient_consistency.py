"""Issue 17 (clients): error messages say each thing once; list results have one shape."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from skillrun_client import StreamError, ValidationError
from skillrun_client.models import RunList, SkillList

from .conftest import ScriptServer, Server, answer, call, collect, frames, run_events, sse_stream

pytestmark = pytest.mark.anyio


async def test_a_422_message_names_each_field_error_once(make_client: Callable[..., Any]) -> None:
    """Was: ``422 …: inputs.steps: 0 is less than the minimum of 1 (inputs.steps: 0 is less
    than the minimum of 1)`` — the detail already quotes the field error."""
    said = "inputs.steps: 0 is less than the minimum of 1"
    body = {"title": "Unprocessable Entity", "status": 422, "detail": said,
            "errors": [{"field": "inputs.steps", "message": "0 is less than the minimum of 1"},
                       {"field": "inputs.text", "message": "required"}]}  # fmt: skip
    async with ScriptServer([answer(422, body)]) as srv:
        with pytest.raises(ValidationError) as info:
            await call(make_client(srv.url).execute, "s", {})
    assert str(info.value) == f"422 Unprocessable Entity: {said} (inputs.text: required)"


async def test_a_real_422_does_not_repeat_itself(client: Any) -> None:
    with pytest.raises(ValidationError) as info:
        await collect(client.stream("demo.ticker", {"steps": 0}))
    message = str(info.value)
    assert "inputs.steps" in message
    for error in info.value.problem.errors or []:
        assert message.count(f"{error.field}: {error.message}") == 1, message


async def test_skills_and_runs_list_answer_their_body_model(client: Any, server: Server) -> None:
    """``skills.list()`` returned a bare list where ``runs.list()`` returned the page object."""
    skills = await call(client.skills.list)
    runs = await call(client.runs.list, limit=1)
    assert isinstance(skills, SkillList) and isinstance(runs, RunList)
    assert "text.summarize" in [s.id for s in skills.skills]


async def test_a_resume_told_to_wait_longer_than_max_retry_after_gives_up(make_client: Callable[..., Any]) -> None:
    """A reconnect answered 503 ``Retry-After: 3600``: the stream raises StreamError (with
    how far it got) instead of hanging for an hour; the JS client does the same."""
    all_frames = frames(run_events())
    busy = answer(503, {"title": "x", "status": 503}, {"Retry-After": "3600"})
    async with ScriptServer([sse_stream(*all_frames[:3]), busy]) as srv:
        with pytest.raises(StreamError) as info:
            await collect(make_client(srv.url).stream("s", {}))
    assert "longer than max_retry_after" in str(info.value) and info.value.last_event_id == "3"
    assert len(srv.requests) == 2
