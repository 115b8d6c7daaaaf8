"""Issue 13 §5: the client reads every valid stream. An event without its own ``id:`` line
is delivered; an event the models cannot read arrives as an ``UnknownEvent`` (``strict``:
an error); a ``done`` it cannot read is always an error."""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest

from skillrun_client import StreamError, UnknownEvent

from .conftest import ScriptServer, collect, envelope, frames, run_events, sse_stream

pytestmark = pytest.mark.anyio


def without_id(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


async def test_an_event_without_its_own_id_after_one_with_an_id_is_delivered(make_client: Callable[..., Any]) -> None:
    """Both clients dropped an id-less event that followed an event with an id as a repeat:
    per WHATWG HTML 9.2.6 it keeps the previous last event ID, and it is a new event."""
    evs = run_events()
    raw = frames(evs[:2]) + [without_id(evs[2])] + frames(evs[3:], first_id=3)
    async with ScriptServer([sse_stream(*raw, end="finish")]) as srv:
        stream = make_client(srv.url).stream("s", {})
        events = await collect(stream)
    assert [e.type for e in events] == [e["type"] for e in evs]
    assert stream.last_event_id == str(len(evs) - 1)  # one event carried no id


async def test_after_a_resume_only_an_event_whose_own_id_was_delivered_is_a_repeat(make_client: Callable[..., Any]) -> None:
    """A server that replays from the start after a resume: the events carrying ids 1 and 2
    are repeats and skipped; the id-less event after them is new (it was never delivered)."""
    evs = run_events()
    first = frames(evs[:2])
    again = frames(evs[:2]) + [without_id(evs[2])] + frames(evs[3:], first_id=3)
    async with ScriptServer([sse_stream(*first), sse_stream(*again, end="finish")]) as srv:
        events = await collect(make_client(srv.url).stream("s", {}))
    assert [e.type for e in events] == [e["type"] for e in evs]
    assert srv.requests[1].headers["last-event-id"] == "2"


async def test_an_event_with_fields_the_models_do_not_know_is_typed_unless_strict(make_client: Callable[..., Any]) -> None:
    """A newer server adds members (``data.shard``, ``region``): a lenient client reads the
    event as its typed class (pydantic ignores the members); strict names every one."""
    evs = run_events()
    newer = {**evs[1], "region": "eu", "data": {**evs[1]["data"], "shard": 3}}
    raw = frames([evs[0], newer, *evs[2:]])
    async with ScriptServer([sse_stream(*raw, end="finish")]) as srv:
        events = await collect(make_client(srv.url).stream("s", {}))
    assert events[1].type == "step_start" and not isinstance(events[1], UnknownEvent)
    async with ScriptServer([sse_stream(*raw, end="finish")]) as srv:
        with pytest.raises(StreamError) as info:
            await collect(make_client(srv.url, strict=True).stream("s", {}))
    assert "region" in str(info.value) and "data.shard" in str(info.value)


async def test_strict_accepts_a_stream_the_models_read_completely(make_client: Callable[..., Any]) -> None:
    evs = run_events()
    evs[-1]["steps"][0]["error"] = None  # a list of models, walked member by member
    async with ScriptServer([sse_stream(*frames(evs), end="finish")]) as srv:
        events = await collect(make_client(srv.url, strict=True).stream("s", {}))
    assert len(events) == len(evs)


async def test_strict_makes_an_unknown_type_a_stream_error(make_client: Callable[..., Any]) -> None:
    raw = frames([run_events()[0], envelope("step_teleported", "run_x", "a", {})])
    async with ScriptServer([sse_stream(*raw, end="finish")]) as srv:
        with pytest.raises(StreamError, match="cannot read"):
            await collect(make_client(srv.url, strict=True).stream("s", {}))


@pytest.mark.parametrize(
    "data", ['{"type": "done", "status": "teleported"}', "not json", '["a"]', '{"message": "no type"}'], ids=["done", "text", "array", "untyped"]
)
async def test_a_done_or_a_non_event_it_cannot_read_is_always_an_error(make_client: Callable[..., Any], data: str) -> None:
    """An unreadable ``done`` holds the run's result, and a frame that is no JSON object with
    a ``type`` is no event at all: neither can be passed on as an UnknownEvent."""
    raw = frames(run_events()[:1]) + [f"id: 2\ndata: {data}\n\n".encode()]
    async with ScriptServer([sse_stream(*raw, end="finish")]) as srv:
        with pytest.raises(StreamError, match="cannot read"):
            await collect(make_client(srv.url).stream("s", {}))


async def test_an_unknown_event_without_message_or_run_id() -> None:
    event = UnknownEvent.from_raw({"type": "x", "message": 3, "run_id": None})
    assert (event.message, event.run_id, event.data) == ("", None, None)
