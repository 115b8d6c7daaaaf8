"""Streams heal: a connection cut anywhere mid-stream, reset, or silent for idle_timeout is
resumed with Last-Event-ID, and the consumer sees every event exactly once."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Callable

import pytest

from skillrun_client import NotFoundError, StreamError, UnknownEvent

from .conftest import (
    Proxy,
    Request,
    ScriptServer,
    Server,
    answer,
    collect,
    envelope,
    frames,
    result_of,
    run_events,
    sse_stream,
)

pytestmark = pytest.mark.anyio

TICKER = {"steps": 3, "delay_ms": 5}


def key(e: Any) -> tuple[Any, ...]:
    return (e.type, getattr(e, "step_id", None), getattr(getattr(e, "data", None), "index", None))


async def reference(make_client: Callable[..., Any], server: Server) -> tuple[list[tuple[Any, ...]], int]:
    """The uncut run's events and the size of its answer (through the proxy)."""
    async with Proxy(int(server.url.rsplit(":", 1)[1])) as proxy:
        events = await collect(make_client(proxy.url).stream("demo.ticker", TICKER))
    return [key(e) for e in events], proxy.sent[0]


@pytest.mark.parametrize("reset", [False, True], ids=["eof", "reset"])
async def test_cut_anywhere_mid_stream_resumes_exactly_once(make_client: Callable[..., Any], server: Server, reset: bool) -> None:
    expected, total = await reference(make_client, server)
    port = int(server.url.rsplit(":", 1)[1])
    # Past the response headers (~400 bytes) up to the last bytes, at 30 points; cuts in
    # the last ~450 bytes (the done frame and the chunked ending) need no resume at all.
    cuts = sorted({420 + (total - 421) * i // 29 for i in range(30)})
    with_id = 0
    for cut in cuts:
        async with Proxy(port, cuts=[cut], reset=reset) as proxy:
            stream = make_client(proxy.url).stream("demo.ticker", TICKER)
            events = await collect(stream)
        assert [key(e) for e in events] == expected, cut
        assert stream.last_event_id == str(len(expected))
        resumed = [r for r in proxy.requests[1:] if r.startswith(b"GET /v1/runs/")]
        if cut < total - 450:
            assert resumed, f"cut at {cut} of {total}: no resume"
            assert resumed[0].startswith(f"GET /v1/runs/{stream.run_id}/events".encode())
            # A cut before the first whole frame resumes from the start, any later one after its last id.
            with_id += b"\r\nlast-event-id: " in resumed[0].lower()
        assert len({e.run_id for e in events}) == 1
    assert with_id >= len(cuts) // 2


async def test_several_cuts_in_a_row_heal(make_client: Callable[..., Any], server: Server) -> None:
    expected, total = await reference(make_client, server)
    async with Proxy(int(server.url.rsplit(":", 1)[1]), cuts=[total // 2, 450, 600, 700]) as proxy:
        events = await collect(make_client(proxy.url).stream("demo.ticker", TICKER))
    assert [key(e) for e in events] == expected
    assert len(proxy.requests) >= 3


async def test_cut_before_the_answer_retries_the_start_with_its_idempotency_key(make_client: Callable[..., Any], server: Server) -> None:
    expected, _ = await reference(make_client, server)
    async with Proxy(int(server.url.rsplit(":", 1)[1]), cuts=[20]) as proxy:
        events = await collect(make_client(proxy.url).stream("demo.ticker", TICKER))
    assert [key(e) for e in events] == expected
    posts = [r for r in proxy.requests if r.startswith(b"POST")]
    keys = [line for r in posts for line in r.split(b"\r\n") if line.lower().startswith(b"idempotency-key")]
    assert len(posts) == 2 and len(set(keys)) == 1


def done_frame(seq: int, run_id: str = "run_x") -> bytes:
    return frames([run_events(run_id)[-1]], first_id=seq)[0]


@pytest.mark.parametrize("where", ["client", "call"])
async def test_idle_timeout_resumes_a_silent_stream(make_client: Callable[..., Any], where: str) -> None:
    all_frames = frames(run_events())
    async with ScriptServer([sse_stream(*all_frames[:2], end="hang"), sse_stream(*all_frames[2:], end="finish")]) as srv:
        started = time.monotonic()
        if where == "client":
            stream = make_client(srv.url, idle_timeout=0.3).stream("s", {})
        else:  # the call's option overrides the client's
            stream = make_client(srv.url, idle_timeout=60).stream("s", {}, idle_timeout=0.3)
        events = await collect(stream)
    assert len(events) == len(all_frames) and events[-1].type == "done"
    assert 0.3 <= time.monotonic() - started < 5
    assert srv.requests[1].method == "GET" and srv.requests[1].path == "/v1/runs/run_x/events"
    assert srv.requests[1].headers["last-event-id"] == "2"
    assert "idempotency-key" not in srv.requests[1].headers


async def test_heartbeats_keep_a_slow_stream_alive(make_client: Callable[..., Any]) -> None:
    pings = [b": ping\n\n"] * 6
    all_frames = frames(run_events())
    async with ScriptServer([sse_stream(all_frames[0], *pings, *all_frames[1:], end="finish", pause=0.1)]) as srv:
        events = await collect(make_client(srv.url, idle_timeout=0.5).stream("s", {}))
    assert len(events) == len(all_frames) and len(srv.requests) == 1


async def test_server_retry_field_sets_the_first_delay(make_client: Callable[..., Any]) -> None:
    all_frames = frames(run_events())
    times: list[float] = []

    def timed(handler: Any) -> Any:
        async def h(req: Request, w: asyncio.StreamWriter) -> None:
            times.append(time.monotonic())
            await handler(req, w)

        return h

    first = sse_stream(b"retry: 400\n\n", all_frames[0])
    async with ScriptServer([timed(first), timed(sse_stream(*all_frames[1:], end="finish"))]) as srv:
        events = await collect(make_client(srv.url).stream("s", {}))
    assert len(events) == len(all_frames)
    assert times[1] - times[0] >= 0.4


async def test_gives_up_after_max_retries_with_how_far_it_got(make_client: Callable[..., Any]) -> None:
    all_frames = frames(run_events())
    async with ScriptServer([sse_stream(*all_frames[:3]), sse_stream()]) as srv:
        stream = make_client(srv.url, max_retries=2).stream("s", {})
        with pytest.raises(StreamError) as info:
            await collect(stream)
    assert info.value.run_id == "run_x" and info.value.last_event_id == "3"
    assert "gave up after 2 retries" in str(info.value)
    assert len(srv.requests) == 3  # the start, then max_retries resumes


async def test_progress_resets_the_retry_budget(make_client: Callable[..., Any]) -> None:
    all_frames = frames(run_events(steps=3))
    # Each connection delivers one event, then drops: never two failures in a row.
    handlers = [sse_stream(f) for f in all_frames[:-1]] + [sse_stream(all_frames[-1], end="finish")]
    async with ScriptServer(handlers) as srv:
        events = await collect(make_client(srv.url, max_retries=1).stream("s", {}))
    assert len(events) == len(all_frames)


async def test_a_server_that_ignores_last_event_id_causes_no_duplicates(make_client: Callable[..., Any]) -> None:
    all_frames = frames(run_events())
    async with ScriptServer([sse_stream(*all_frames[:4]), sse_stream(*all_frames, end="finish")]) as srv:
        events = await collect(make_client(srv.url).stream("s", {}))
    assert [key(e) for e in events] == [key(e) for e in await_parse(all_frames)]


def await_parse(raw: list[bytes]) -> list[Any]:
    from skillrun_client._types import EVENT_ADAPTER

    return [EVENT_ADAPTER.validate_json(f.split(b"data: ", 1)[1].strip()) for f in raw]


async def test_resume_that_finds_no_run_is_a_stream_error(make_client: Callable[..., Any]) -> None:
    all_frames = frames(run_events())
    async with ScriptServer([sse_stream(*all_frames[:2]), answer(404, {"title": "Not Found", "status": 404})]) as srv:
        with pytest.raises(StreamError) as info:
            await collect(make_client(srv.url).stream("s", {}))
    assert isinstance(info.value.__cause__, NotFoundError) and info.value.last_event_id == "2"


async def test_resume_retries_unavailable_answers(make_client: Callable[..., Any]) -> None:
    all_frames = frames(run_events())
    handlers = [
        sse_stream(*all_frames[:2]),
        answer(503, {"title": "x", "status": 503}, {"Retry-After": "0"}),
        answer(500, {"title": "x", "status": 500}),
        sse_stream(*all_frames[2:], end="finish"),
    ]
    async with ScriptServer(handlers) as srv:
        events = await collect(make_client(srv.url).stream("s", {}))
    assert len(events) == len(all_frames)


async def test_drop_before_any_event_without_run_id_is_a_stream_error(make_client: Callable[..., Any]) -> None:
    async def no_run_id(req: Request, w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        w.close()

    async with ScriptServer([no_run_id]) as srv:
        with pytest.raises(StreamError) as info:
            await collect(make_client(srv.url).stream("s", {}))
    assert info.value.run_id is None and "named no run" in str(info.value)


async def test_run_id_comes_from_events_when_the_header_is_missing(make_client: Callable[..., Any]) -> None:
    all_frames = frames(run_events("run_from_event"))

    async def first(req: Request, w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 100000\r\n\r\n" + all_frames[0])
        w.close()

    async with ScriptServer([first, sse_stream(*all_frames[1:], end="finish")]) as srv:
        events = await collect(make_client(srv.url).stream("s", {}))
    assert len(events) == len(all_frames) and srv.requests[1].path == "/v1/runs/run_from_event/events"


async def test_unknown_event_types_arrive_as_unknown_events_and_nothing_follows_done(make_client: Callable[..., Any]) -> None:
    evs = run_events()
    future = envelope("step_teleported", "run_x", "a", {"to": "mars"})
    raw = frames(evs[:1]) + frames([future], first_id=2) + frames(evs[1:], first_id=3) + frames(evs[:1], first_id=99)
    # The unknown event (id 2) is delivered in its place: a resume after it starts after it.
    async with ScriptServer([sse_stream(*raw[:2]), sse_stream(*raw[2:], end="finish")]) as srv:
        events = await collect(make_client(srv.url).stream("s", {}))
    assert [e.type for e in events] == ["skill_start", "unknown"] + [e["type"] for e in evs[1:]]
    unknown = events[1]
    assert isinstance(unknown, UnknownEvent)
    assert (unknown.event_type, unknown.message, unknown.data, unknown.run_id) == ("step_teleported", "step_teleported", {"to": "mars"}, "run_x")
    assert unknown.raw == future
    assert srv.requests[1].headers["last-event-id"] == "2"


async def test_an_event_the_models_cannot_read_arrives_as_an_unknown_event(make_client: Callable[..., Any]) -> None:
    bad = {**run_events()[1], "data": {"no_uses": True}}
    async with ScriptServer([sse_stream(*frames([run_events()[0], bad, *run_events()[1:]]), end="finish")]) as srv:
        events = await collect(make_client(srv.url).stream("s", {}))
    assert isinstance(events[1], UnknownEvent) and events[1].event_type == "step_start" and events[1].raw == bad
    assert events[-1].type == "done"


async def test_strict_makes_an_unreadable_event_a_stream_error(make_client: Callable[..., Any]) -> None:
    bad = {**run_events()[1], "data": {"no_uses": True}}
    async with ScriptServer([sse_stream(*frames([run_events()[0], bad]), end="finish")]) as srv:
        with pytest.raises(StreamError) as info:
            await collect(make_client(srv.url, strict=True).stream("s", {}))
    assert "cannot read" in str(info.value) and info.value.last_event_id == "1"


async def test_events_after_a_cursor_from_the_start(make_client: Callable[..., Any]) -> None:
    all_frames = frames(run_events())
    async with ScriptServer([sse_stream(*all_frames[5:], end="finish")]) as srv:
        stream = make_client(srv.url).runs.events("run_x", after=5)
        result = await result_of(stream)
    assert result.status == "completed" and srv.requests[0].headers["last-event-id"] == "5"
    assert json.loads(all_frames[-1].split(b"data: ")[1])["run_id"] == stream.run_id


async def test_a_response_that_ends_cleanly_before_done_is_resumed(make_client: Callable[..., Any]) -> None:
    all_frames = frames(run_events())
    async with ScriptServer([sse_stream(*all_frames[:2], end="finish"), sse_stream(*all_frames[2:], end="finish")]) as srv:
        events = await collect(make_client(srv.url).stream("s", {}))
    assert len(events) == len(all_frames) and srv.requests[1].headers["last-event-id"] == "2"


async def test_events_without_ids_are_delivered(make_client: Callable[..., Any]) -> None:
    raw = [f.split(b"\n", 1)[1] for f in frames(run_events())]  # drop the `id:` lines
    async with ScriptServer([sse_stream(*raw, end="finish")]) as srv:
        stream = make_client(srv.url).stream("s", {})
        events = await collect(stream)
    assert len(events) == len(raw) and stream.last_event_id is None


async def test_idle_timeout_against_a_real_server_between_slow_steps(make_client: Callable[..., Any], server: Server) -> None:
    # No heartbeat comes within 0.3 s (the server pings every 15 s), so every slow step
    # drops the connection at least once; the stream still delivers each event once.
    async with Proxy(int(server.url.rsplit(":", 1)[1])) as proxy:
        stream = make_client(proxy.url, idle_timeout=0.3, max_retries=10).stream("demo.ticker", {"steps": 2, "delay_ms": 700})
        events = await collect(stream)
    assert [e.type for e in events] == ["skill_start"] + ["step_start", "step_completed"] * 2 + ["skill_completed", "done"]
    assert stream.last_event_id == "7"
    assert sum(r.startswith(b"GET /v1/runs/") for r in proxy.requests) >= 2
