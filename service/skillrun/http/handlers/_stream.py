"""The SSE answer shared by ``/execute/stream`` and ``/runs/{id}/events``: a view of a run's log.

It follows the log from a cursor (heartbeats come from ``Follower``'s idle
batches), disconnects a client that stops reading for ``send_timeout_s`` (its
socket buffers full, uvicorn's ``send`` waits on flow control: without a limit
the view would hang there forever), and tells the caller when the client left
before ``done`` (for ``options.on_disconnect: cancel``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, Awaitable, Callable, Protocol

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ...observe.hub import StreamWatch
from ...runs import EventRecord, Follower
from .. import sse
from ..edge import when_gone
from ..handoff import handoff_of
from ..services import Services

log = logging.getLogger(__name__)


class Frames(Protocol):
    """What an ``EventStreamResponse`` sends: ``next()`` gives an item (None: the end),
    ``frame(item)`` its bytes; ``open``/``close`` around the body."""

    def open(self) -> None: ...
    def next(self) -> Awaitable[Any]: ...
    def frame(self, item: Any) -> bytes: ...
    def close(self) -> None: ...


class RunFrames(Follower):
    """A run's log from a cursor as SSE frames: its batches (``Follower``), a ping for
    an idle one (heartbeats come from ``Follower``'s empty batches)."""

    __slots__ = ("observe", "watch")

    def __init__(self, s: Services, run_id: str, after: int) -> None:
        super().__init__(s.store, run_id, after, idle_s=s.settings.heartbeat_s)
        self.observe = s.observe
        self.watch: StreamWatch | None = None

    def open(self) -> None:
        # Open streams, events sent, time to the first: from the body's start.
        self.watch = self.observe.stream(resumed=self.cursor > 0)

    def frame(self, batch: list[EventRecord]) -> bytes:
        if not batch:
            return sse.PING
        assert self.watch is not None
        self.watch.sent(batch)
        return sse.encode(batch)

    def close(self) -> None:
        if self.watch is not None:
            self.watch.closed()


# The SSE head's fixed part, as Starlette's ``init_headers`` encodes it (the answer's own
# headers go between, as there): encoded once, not at every stream's start.
_FIXED_HEAD = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in sse.HEADERS.items()]
_CONTENT_TYPE = (b"content-type", f"{sse.MEDIA_TYPE}; charset=utf-8".encode("latin-1"))
_FIXED_NAMES = frozenset({name.decode() for name, _ in _FIXED_HEAD} | {"content-type", "content-length"})


class EventStreamResponse(StreamingResponse):
    def __init__(
        self,
        frames: Frames,
        headers: dict[str, str],
        send_timeout_s: float,
        on_abandon: Callable[[], Any] | None = None,
    ) -> None:
        # Not ``StreamingResponse.__init__``: the body comes from ``frames``, not an iterator.
        self.frames = frames
        self.status_code = 200
        self.media_type = sse.MEDIA_TYPE
        self.background = None
        if _FIXED_NAMES.isdisjoint(map(str.lower, headers)):
            self.raw_headers = [
                *_FIXED_HEAD, *[(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
                _CONTENT_TYPE,
            ]
        else:  # one of the fixed ones given: Starlette's merge
            self.init_headers({**sse.HEADERS, **headers})
        self.send_timeout_s = send_timeout_s
        self.on_abandon = on_abandon
        self.complete = False
        # Through the edge: whether a send now might wait for the client (None: unknown,
        # every send under ``send_timeout_s``). Most sends write at once and need no timer.
        self.would_wait: Callable[[], bool] | None = None

    async def stream_response(self, send: Send) -> None:
        await self._start(send)
        await self._body(send)

    async def _start(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        self.raw_headers = []  # sent: not kept for as long as the stream is open (~1 KB)

    async def _body(self, send: Send) -> None:
        # A client that goes away cancels this: that ends the view, not the run.
        frames = self.frames
        would_wait = self.would_wait
        frames.open()
        try:
            while True:
                item = await frames.next()
                if item is None:
                    break
                chunk = frames.frame(item)
                # Neither is held while the next is awaited (hours, for a run waiting
                # for input): sent, the events' text is ~1 KB a stream for nothing.
                del item
                message = {"type": "http.response.body", "body": chunk, "more_body": True}
                try:
                    if would_wait is not None and not would_wait():
                        await send(message)  # written at once (the edge's): no timer to arm
                    else:
                        async with asyncio.timeout(self.send_timeout_s):
                            await send(message)
                except TimeoutError:
                    # Returning without ending the body makes uvicorn close the connection.
                    log.info("closing a stream whose client read nothing for %.1f s", self.send_timeout_s)
                    return
                del chunk, message
            self.complete = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            frames.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("asgi", {}).get("spec_version", "2.0") not in ("2.0", "2.1", "2.2", "2.3"):
            # A server that raises OSError from ``send`` once the client is gone.
            try:
                await super().__call__(scope, receive, send)
            finally:
                self._ended()
            return
        handoff = handoff_of(scope)
        if handoff is None:
            try:
                await self._stream_until_disconnect(receive, send, self.stream_response)
            finally:
                self._ended()
            return
        # The edge's: the head through the layers (their errors answered as before),
        # then the body after they have returned (``http/handoff.py``).
        try:
            await self._start(send)
        except BaseException:
            self._ended()
            raise
        # ``_ended`` at the body's end, however it ended, or if it never runs (the
        # layers raised on their way out): not a coroutine of its own around the body.
        self.would_wait = handoff.would_wait
        handoff.take(functools.partial(self._stream_until_disconnect, handoff.receive, handoff.send, self._body))
        handoff.at_end(self._ended)

    def _ended(self) -> None:
        abandon, self.on_abandon = self.on_abandon, None  # once
        if not self.complete and abandon is not None:
            abandon()

    async def _stream_until_disconnect(
        self, receive: Receive, send: Send, stream: Callable[[Send], Awaitable[None]]
    ) -> None:
        """``StreamingResponse.__call__`` without its anyio task group: the body is sent
        in this task, and one task waits for the client's ``http.disconnect`` and then
        cancels it. The task group (two tasks, two cancel scopes, their sets, an anyio
        Event with its asyncio Event) cost ~4 KB per open stream, held as long as it
        is open (bench/stream.py (d): 10,000 idle streams). As there: a disconnect ends the body
        quietly, and an error from ``receive`` ends it with that error.

        Through the edge, with the request's body all read, not even that task: the
        edge calls back when the client is gone (``edge.when_gone``)."""
        task = asyncio.current_task()
        assert task is not None
        sending, stopped = True, False

        def gone(_listener: object = None) -> None:  # also the listener task's done callback
            nonlocal stopped
            if sending:
                stopped = True
                task.cancel()

        unwatch = when_gone(receive, gone)
        if unwatch is not None:
            try:
                await stream(send)
            except asyncio.CancelledError:
                if not stopped or task.uncancel() > 0:
                    raise  # not (only) ours: the request itself is being cancelled
            finally:
                sending = False
                unwatch()
            return

        async def until_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        listener = asyncio.create_task(until_disconnect())
        listener.add_done_callback(gone)
        try:
            await stream(send)
        except asyncio.CancelledError:
            if not stopped or task.uncancel() > 0:
                raise  # not (only) ours: the request itself is being cancelled
            error = None if listener.cancelled() else listener.exception()
            if error is not None:
                raise error from None
        finally:
            sending = False
            listener.remove_done_callback(gone)
            if listener.done():
                if not listener.cancelled():
                    listener.exception()  # retrieved (raised above if it ended the body)
            else:
                listener.cancel()
