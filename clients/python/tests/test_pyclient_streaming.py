"""Streams against a real server: typed events in order, result(), break, close, runs API."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest

from skillrun_client import (
    AsyncStream,
    ConflictError,
    DoneEvent,
    SkillStartEvent,
    Stream,
    StepCompletedEvent,
    StepDegradedEvent,
    StepSkippedEvent,
    StepStartEvent,
    StreamError,
)
from skillrun_client.models import Run, RunList

from .conftest import Server, call, collect, in_thread_or_loop, result_of

pytestmark = pytest.mark.anyio


def check_order(events: list[Any]) -> None:
    types = [e.type for e in events]
    assert types[0] == "skill_start" and types[-2:] == ["skill_completed", "done"], types
    assert types.count("done") == 1


async def test_stream_yields_typed_events_in_order(client: Any) -> None:
    stream = client.stream("text.summarize", {"text": "Cats purr. Dogs bark loudly. Cats sleep a lot.", "max_sentences": 1})
    events = await collect(stream)
    check_order(events)
    assert isinstance(events[0], SkillStartEvent) and events[0].data.steps == ["split", "summarize", "keywords"]
    assert all(isinstance(e, StepStartEvent | StepCompletedEvent) for e in events[1:-2])
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.status == "completed" and done.outputs["summary"]
    assert stream.finished and stream.run_id == done.run_id and stream.last_event_id == str(len(events))
    result = await result_of(stream)  # after iteration: the same done payload
    assert result.model_dump() == done.model_dump(exclude={"type", "message"})


async def test_every_kind_of_step_outcome_is_its_own_class(client: Any) -> None:
    events = await collect(client.stream("demo.showcase", {"text": "Mail me at a@b.co please. Thanks.", "fail": True}))
    by_type = {type(e) for e in events}
    assert StepSkippedEvent in by_type and StepDegradedEvent in by_type
    failed = [e for e in events if e.type == "step_failed"]
    assert failed and failed[0].data.error.kind
    assert events[-1].status == "failed"


async def test_result_before_iteration_drains_the_stream(client: Any) -> None:
    stream = client.stream("demo.ticker", {"steps": 3})
    result = await result_of(stream)
    assert result.status == "completed" and result.outputs == {"ticks": 3}
    assert await collect(stream) == []  # nothing is left to iterate


async def test_result_during_iteration_drains_the_rest(client: Any) -> None:
    def sync(stream: Stream) -> tuple[list[Any], Any]:
        seen = []
        with stream:
            for e in stream:
                seen.append(e)
                if len(seen) == 2:
                    result = stream.result()
        return seen, result

    async def run_async(stream: AsyncStream) -> tuple[list[Any], Any]:
        seen = []
        async with stream:
            async for e in stream:
                seen.append(e)
                if len(seen) == 2:
                    result = await stream.result()
        return seen, result

    seen, result = await in_thread_or_loop(client.stream("demo.ticker", {"steps": 4}), sync, run_async)
    assert len(seen) == 2 and result.outputs == {"ticks": 4}


async def test_break_closes_the_connection_and_iterating_again_resumes(client: Any) -> None:
    def sync(stream: Stream) -> tuple[list[Any], list[Any]]:
        with stream:
            first = []
            for e in stream:
                first.append(e)
                if len(first) == 3:
                    break
            assert stream._response is None  # leaving the loop closed the connection
            return first, list(stream)

    async def run_async(stream: AsyncStream) -> tuple[list[Any], list[Any]]:
        async with stream:
            first = []
            iterator = stream.__aiter__()
            async for e in iterator:
                first.append(e)
                if len(first) == 3:
                    break
            await iterator.aclose()  # what the event loop's finalizer does for a dropped async for
            assert stream._response is None
            return first, [e async for e in stream]

    first, rest = await in_thread_or_loop(client.stream("demo.ticker", {"steps": 5, "delay_ms": 20}), sync, run_async)
    events = first + rest
    check_order(events)
    assert len(events) == 13 and len({(e.type, getattr(e, "step_id", None), getattr(getattr(e, "data", None), "index", None)) for e in events}) == 13


async def test_break_then_result_resumes_after_the_last_event(client: Any) -> None:
    def sync(stream: Stream) -> tuple[int, Any]:
        with stream:
            for n, _ in enumerate(stream, 1):
                if n == 2:
                    break
            assert stream._response is None  # the loop's end closed the connection
            return n, stream.result()

    async def run_async(stream: AsyncStream) -> tuple[int, Any]:
        async with stream:
            n = 0
            async for _ in stream:
                n += 1
                if n == 2:
                    break
            # The dropped async generator is closed by the event loop's finalizer hook.
            for _ in range(50):
                if stream._response is None:
                    break
                await asyncio.sleep(0.01)
            assert stream._response is None
            return n, await stream.result()

    n, result = await in_thread_or_loop(client.stream("demo.ticker", {"steps": 3}), sync, run_async)
    assert n == 2 and result.status == "completed"


async def test_closed_stream_has_no_result(client: Any) -> None:
    stream = client.stream("demo.ticker", {"steps": 50, "delay_ms": 20})
    assert len(await collect(stream, limit=1)) == 1
    with pytest.raises(StreamError) as info:
        await result_of(stream)
    assert info.value.run_id == stream.run_id and info.value.last_event_id is not None


async def test_trace_id_option_reaches_every_event(client: Any) -> None:
    events = await collect(client.stream("demo.ticker", {"steps": 1}, trace_id="trace-abc"))
    assert {e.trace_id for e in events} == {"trace-abc"}


async def test_run_options_are_sent(client: Any) -> None:
    from skillrun_client.models import ExecuteOptions

    result = await call(client.execute, "demo.ticker", {"steps": 3, "delay_ms": 500}, options={"timeout_ms": 50})
    assert result.status == "failed" and result.error is not None and result.error.kind == "timeout"
    result = await call(client.execute, "demo.ticker", {"steps": 1}, options=ExecuteOptions(timeout_ms=60000))
    assert result.status == "completed"


async def test_heartbeats_are_never_events(make_client: Callable[..., Any], server_factory: Callable[..., Server]) -> None:
    srv = server_factory(env={"SKILLRUN_HEARTBEAT_S": "0.05"})
    events = await collect(make_client(srv.url).stream("demo.ticker", {"steps": 2, "delay_ms": 300}))
    check_order(events)
    assert len(events) == 7


async def test_runs_api(client: Any) -> None:
    run = await call(client.execute_async, "demo.ticker", {"steps": 3, "delay_ms": 50})
    assert isinstance(run, Run) and run.status in ("queued", "running") and run.skill_id == "demo.ticker"
    events = await collect(client.runs.events(run.run_id))
    check_order(events)
    later = await collect(client.runs.events(run.run_id, after=3))
    assert [e.model_dump() for e in later] == [e.model_dump() for e in events[3:]]
    got = await call(client.runs.get, run.run_id)
    assert got.status == "completed" and got.result is not None and got.result.outputs == {"ticks": 3}
    page = await call(client.runs.list, skill_id="demo.ticker", status="completed", limit=1)
    assert isinstance(page, RunList) and len(page.runs) == 1 and page.next_cursor
    more = await call(client.runs.list, skill_id="demo.ticker", limit=1, cursor=page.next_cursor)
    assert more.runs[0].run_id != page.runs[0].run_id
    with pytest.raises(ConflictError):
        await call(client.runs.cancel, run.run_id)


async def test_cancel_a_running_run(client: Any) -> None:
    run = await call(client.execute_async, "demo.ticker", {"steps": 100, "delay_ms": 50})
    cancelled = await call(client.runs.cancel, run.run_id)
    assert cancelled.run_id == run.run_id
    result = await result_of(client.runs.events(run.run_id))
    assert result.status == "cancelled"


async def test_a_stream_can_be_iterated_without_a_with_block(client: Any) -> None:
    stream = client.stream("demo.ticker", {"steps": 1})
    if isinstance(stream, AsyncStream):
        events = [e async for e in stream]
    else:
        events = await call(list, stream)
    check_order(events)
    assert stream._response is None  # closed once done arrived
