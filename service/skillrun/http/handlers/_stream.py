"""The SSE answer shared by ``/execute/stream`` and ``/runs/{id}/events``: a view of a run's log.

It follows the log from a cursor (heartbeats come from ``follow``'s idle
batches), disconnects a client that stops reading for ``send_timeout_s`` (its
socket buffers full, uvicorn's ``send`` waits on flow control: without a limit
the view would hang there forever), and tells the caller when the client left
before ``done`` (for ``options.on_disconnect: cancel``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator, Callable

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ...runs import follow
from .. import sse
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
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
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
        try:
            await super().__call__(scope, receive, send)
        finally:
            if not self.complete and self.on_abandon is not None:
                self.on_abandon()
