"""The SSE answer shared by ``/execute/stream`` and ``/runs/{id}/events``: a view of a run's log.

It follows the log from a cursor (heartbeats come from ``follow``'s idle
batches), disconnects a client that stops reading for ``send_timeout_s`` (its
socket buffers full, uvicorn's ``send`` waits on flow control: without a limit
the view would hang there forever), and tells the caller when the client left
before ``done`` (for ``options.on_disconnect: cancel``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, AsyncIterator, Awaitable, Callable

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ...runs import follow
from .. import sse
from ..edge import when_gone
from ..handoff import handoff_of
from ..services import Services

log = logging.getLogger(__name__)


async def frames(s: Services, run_id: str, after: int) -> AsyncIterator[bytes]:
    # A client that goes away cancels this generator: that ends the view, not the run.
    watch = s.observe.stream(resumed=after > 0)  # open streams, events sent, time to first
    try:
        async for batch in follow(s.store, run_id, after, idle_s=s.settings.heartbeat_s):
            if batch:
                watch.sent(batch)
            yield sse.encode(batch) if batch else sse.PING
    finally:
        watch.closed()


class EventStreamResponse(StreamingResponse):
    def __init__(
        self,
        content: AsyncIterator[bytes],
        headers: dict[str, str],
        send_timeout_s: float,
        on_abandon: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(content, media_type=sse.MEDIA_TYPE, headers={**sse.HEADERS, **headers})
        self.send_timeout_s = send_timeout_s
        self.on_abandon = on_abandon
        self.complete = False

    async def stream_response(self, send: Send) -> None:
        await self._start(send)
        await self._body(send)

    async def _start(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        self.raw_headers = []  # sent: not kept for as long as the stream is open (~1 KB)

    async def _body(self, send: Send) -> None:
        async for chunk in self.body_iterator:
            try:
                async with asyncio.timeout(self.send_timeout_s):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except TimeoutError:
                # Returning without ending the body makes uvicorn close the connection.
                log.info("closing a stream whose client read nothing for %.1f s", self.send_timeout_s)
                return
        self.complete = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})

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
        handoff.take(functools.partial(self._handed_body, receive, send), self._ended)

    async def _handed_body(self, receive: Receive, send: Send) -> None:
        try:
            await self._stream_until_disconnect(receive, send, self._body)
        finally:
            self._ended()

    def _ended(self) -> None:
        if not self.complete and self.on_abandon is not None:
            self.on_abandon()

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

        def gone() -> None:
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

        def stop(_listener: asyncio.Task[None]) -> None:
            nonlocal stopped
            if sending:
                stopped = True
                task.cancel()

        listener = asyncio.create_task(until_disconnect())
        listener.add_done_callback(stop)
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
            listener.remove_done_callback(stop)
            if listener.done():
                if not listener.cancelled():
                    listener.exception()  # retrieved (raised above if it ended the body)
            else:
                listener.cancel()
