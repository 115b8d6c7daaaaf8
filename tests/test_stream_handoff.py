"""A stream's body handed to the edge once its head is sent (``http/handoff.py``), against
the app served in-process by uvicorn with the edge protocol (what ``skillrun serve`` runs):
while it is open no middleware layer's coroutine is alive; its access log line, duration
and bytes are still taken at its end; ``on_disconnect: cancel`` still cancels its run;
a stream that ends by itself still gets its ``done``; a client's disconnect is seen
without a task listening for it."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import sys
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import uvicorn

from conftest import API_KEY, make_settings
from skillrun.http.app import create_app
from skillrun.http.edge import EdgeLimits, edge_protocol, flow_of
from skillrun.http.handoff import Handoff, serve
from skillrun.observe.logs import ACCESS_LOGGER

pytestmark = pytest.mark.anyio

PATH = "/v1/skills/demo.ticker/execute/stream"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Any, int]]:
    app = create_app(make_settings(db=str(tmp_path / "runs.db"), heartbeat_s=0.2, validate_responses=False))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="on",
        http=edge_protocol(EdgeLimits(max_header_bytes=65536, header_timeout_s=10, body_timeout_s=10,
                                      max_connections=1000)),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield app, port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def _open(port: int, body: dict[str, Any]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    raw = json.dumps(body).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST {PATH} HTTP/1.1\r\nHost: x\r\nx-api-key: {API_KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(raw)}\r\n\r\n".encode() + raw
    )
    await writer.drain()
    return reader, writer


async def _read_until(reader: asyncio.StreamReader, marker: bytes, seen: bytes = b"") -> bytes:
    while marker not in seen:
        chunk = await asyncio.wait_for(reader.read(65536), 10)
        assert chunk, seen
        seen += chunk
    return seen


def _alive(qualname: str) -> int:
    return sum(1 for o in gc.get_objects() if type(o).__name__ == "coroutine" and o.__qualname__ == qualname)


async def test_an_open_stream_holds_no_middleware_frame_and_is_logged_at_its_end(
    served: tuple[Any, int], caplog: pytest.LogCaptureFixture
) -> None:
    app, port = served
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    layers = ("ObserveMiddleware.__call__", "ServicesMiddleware.__call__", "ServerErrorMiddleware.__call__",
              "ExceptionMiddleware.__call__", "FastLaneMiddleware._lane", "ConnexionMiddleware.__call__")
    before = {layer: _alive(layer) for layer in layers}  # the lifespan's, for the server's life
    streams = [await _open(port, {"inputs": {"steps": 1, "delay_ms": 60_000}}) for _ in range(5)]
    heads = [await _read_until(reader, b": ping") for reader, _ in streams]
    assert all(h.startswith(b"HTTP/1.1 200 ") and b"event: skill_start" in h for h in heads)
    # Handed to the edge: the layers' frames are gone (before: one each per stream).
    assert {layer: _alive(layer) for layer in layers} == before
    assert _alive("serve") == 5 and _alive("EventStreamResponse._stream_until_disconnect") == 5
    # The body sends with the server's own ``send``: the layers' wrappers (and what their
    # cells hold) went with their frames.
    wrappers = [o for o in gc.get_objects() if type(o).__name__ == "function" and o.__qualname__ in (
        "ObserveMiddleware.__call__.<locals>.observed_send", "ServicesMiddleware.__call__.<locals>.send_with_headers")]
    assert wrappers == []
    # The edge calls back when a client goes: no task waits on ``receive`` per stream.
    assert _alive("EventStreamResponse._stream_until_disconnect.<locals>.until_disconnect") == 0
    # Nothing logged while open: the access line comes at the stream's end.
    assert not [r for r in caplog.records if r.name == ACCESS_LOGGER and getattr(r, "route", "").endswith("/stream")]
    await asyncio.sleep(0.5)  # the streams' durations outgrow the time to their heads
    for reader, writer in streams:
        await _read_until(reader, b": ping")  # still pinged
        writer.close()
    for _ in range(100):
        lines = [r for r in caplog.records if r.name == ACCESS_LOGGER and getattr(r, "route", "").endswith("/stream")]
        if len(lines) == 5:
            break
        await asyncio.sleep(0.05)
    assert len(lines) == 5
    for line in lines:
        assert line.status == 200 and line.duration_ms >= 500 and line.bytes > 100 and line.run_id  # type: ignore[attr-defined]
    assert _alive("serve") == 0


async def test_a_handed_stream_ends_with_done_and_a_disconnect_still_cancels(served: tuple[Any, int]) -> None:
    app, port = served
    reader, writer = await _open(port, {"inputs": {"steps": 2, "delay_ms": 10}})
    whole = await _read_until(reader, b"0\r\n\r\n")  # the chunked body's end
    assert b"event: done" in whole
    writer.close()
    reader, writer = await _open(port, {"inputs": {"steps": 1, "delay_ms": 60_000}, "options": {"on_disconnect": "cancel"}})
    head = await _read_until(reader, b": ping")
    run_id = next(line.split(b": ", 1)[1].strip().decode() for line in head.split(b"\r\n")
                  if line.lower().startswith(b"x-run-id"))
    writer.close()
    for _ in range(200):
        run = await app.services.store.get(run_id)
        if run.status == "cancelled":
            break
        await asyncio.sleep(0.05)
    assert run.status == "cancelled"


def _armed_by(monkeypatch: pytest.MonkeyPatch, name: str) -> list[str]:
    """Who arms ``asyncio.<name>`` (``timeout`` or ``timeout_at``) from now on: the
    calling functions' qualified names, in order."""
    armed: list[str] = []
    real = getattr(asyncio, name)

    def recording(when: float | None) -> Any:
        armed.append(sys._getframe(1).f_code.co_qualname)
        return real(when)

    monkeypatch.setattr(asyncio, name, recording)
    return armed


async def test_a_stream_to_a_reading_client_arms_no_send_timer(
    served: tuple[Any, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the edge, a send to a connection whose writing is not paused writes at once:
    the body arms ``send_timeout_s``'s timer only when a send might wait (a client that
    stops reading is still cut off: test_runs_durability.py)."""
    armed = _armed_by(monkeypatch, "timeout")
    reader, writer = await _open(port=served[1], body={"inputs": {"steps": 20, "delay_ms": 5}})
    whole = await _read_until(reader, b"0\r\n\r\n")
    writer.close()
    assert whole.count(b"event: step_completed") == 20
    assert "EventStreamResponse._body" not in armed
    # Without the edge's flow control, every send is timed, as before.
    assert Handoff(None, None).would_wait()
    assert flow_of(lambda message: None) is None


async def test_serve_runs_the_ends_after_the_body_and_drops_a_body_the_layers_raise_over() -> None:
    order: list[str] = []

    async def body() -> None:
        order.append("body")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        handoff: Handoff = scope["state"]["skillrun.handoff"]
        handoff.take(body, lambda: order.append("dropped"))
        handoff.at_end(lambda: order.append("outer end"))
        handoff.at_end(lambda: order.append("inner end"))

    await serve(app, {"state": {}}, None, None)
    assert order == ["body", "inner end", "outer end"]

    order.clear()

    async def raising(scope: Any, receive: Any, send: Any) -> None:
        await app(scope, receive, send)
        raise RuntimeError("a layer broke on its way out")

    with pytest.raises(RuntimeError):
        await serve(raising, {"state": {}}, None, None)
    assert order == ["dropped", "inner end", "outer end"]


async def test_the_fast_lane_arms_no_body_timer_for_a_body_that_came_with_the_head(
    served: tuple[Any, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body all in by the time the lane reads it waits for nothing: no ``body_timeout_s``
    timer. One still coming is read under it (one past its deadline gets a 408:
    test_fastlane.py), and still starts its run."""
    armed = _armed_by(monkeypatch, "timeout_at")
    reader, writer = await _open(served[1], {"inputs": {"steps": 1, "delay_ms": 1}})
    assert b"event: done" in await _read_until(reader, b"0\r\n\r\n")
    writer.close()
    assert "FastLaneMiddleware._lane" not in armed

    raw = json.dumps({"inputs": {"steps": 1, "delay_ms": 1}}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", served[1])
    writer.write(f"POST {PATH} HTTP/1.1\r\nHost: x\r\nx-api-key: {API_KEY}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(raw)}\r\n\r\n".encode() + raw[:5])
    await writer.drain()
    await asyncio.sleep(0.2)  # the head, and part of the body, read by the server
    writer.write(raw[5:])
    assert b"event: done" in await _read_until(reader, b"0\r\n\r\n")
    writer.close()
    assert armed.count("FastLaneMiddleware._lane") == 1


@pytest.mark.parametrize("headers", [
    {"x-trace-id": "t1", "X-Run-Id": "r1"},
    {"x-trace-id": "t1", "X-Run-Id": "r1", "Idempotent-Replayed": "true"},
    {},
    {"X-Run-Id": "r1", "Cache-Control": "no-store"},  # a fixed one given: Starlette's merge
    {"Content-Type": "text/event-stream"},
])
def test_a_stream_s_head_is_the_one_starlette_would_build(headers: dict[str, str]) -> None:
    """The SSE head's fixed part is encoded once; the head is still byte for byte what
    ``StreamingResponse.init_headers`` builds from the same headers."""
    from starlette.responses import StreamingResponse

    from skillrun.http import sse
    from skillrun.http.handlers._stream import EventStreamResponse

    ours = EventStreamResponse(None, headers=headers, send_timeout_s=1.0)  # type: ignore[arg-type]
    theirs = StreamingResponse(iter(()), headers={**sse.HEADERS, **headers}, media_type=sse.MEDIA_TYPE)
    assert ours.raw_headers == theirs.raw_headers


async def test_served_requests_leave_no_garbage_only_the_collector_could_free(served: tuple[Any, int]) -> None:
    """Every object of a request (its connection, protocol, request cycle, scope, run,
    stream) is freed when its last reference goes: none is left in a reference cycle.
    The collector's young collections then find nothing to free, which is what lets
    them be rare (``cli._settle_the_heap``). Regression: the edge's transport held its
    protocol, which held it: every connection was garbage only the collector freed."""
    port = served[1]

    async def exchange(path: str, body: bytes, requests: int = 1, cut_at: bytes | None = None) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nx-api-key: {API_KEY}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        for _ in range(requests):  # on one connection (keep-alive)
            writer.write(head + body)
            seen = b""
            while not (cut_at is not None and cut_at in seen or seen.endswith(b"0\r\n\r\n") or seen.endswith(b"}")):
                chunk = await asyncio.wait_for(reader.read(65536), 10)
                assert chunk, seen
                seen += chunk
        writer.close()

    async def all_kinds() -> None:
        await asyncio.gather(
            exchange(PATH, json.dumps({"inputs": {"steps": 2, "delay_ms": 5}}).encode()),
            exchange("/v1/skills/demo.ticker/execute", json.dumps({"inputs": {"steps": 1}}).encode(), requests=3),
            exchange("/v1/skills/nope/execute", b'{"inputs": {}}', requests=2),
            exchange("/v1/skills/demo.ticker/execute", b'{"inputs": {"steps": "x"}}', requests=2),
            exchange(PATH, json.dumps({"inputs": {"steps": 2, "delay_ms": 10_000},
                                       "options": {"on_disconnect": "cancel"}}).encode(), cut_at=b"step_start"),
        )

    await all_kinds()  # first requests fill caches (compiled validators, ...)
    await asyncio.sleep(0.3)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        await all_kinds()
        await asyncio.sleep(0.3)  # the cut stream's end
        gc.collect()
        ours = [o for o in gc.garbage
                if type(o).__module__.split(".")[0] in ("skillrun", "uvicorn", "starlette", "connexion", "httptools")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert ours == [], sorted({type(o).__qualname__ for o in ours})
