"""The connection's own limits, below ASGI: head size, head and body read deadlines, a connection cap.

uvicorn (with httptools, which ``uvicorn[standard]`` brings) has none of them: a
request whose headers never end is held forever, and httptools buffers a header
of any size (twenty unfinished 4 MB headers cost +93 MB). h11 has a size cap
(``h11_max_incomplete_event_size``) but costs more CPU per request (see
bench/edge.py), so this keeps httptools and adds what it lacks in a protocol
subclass, passed to uvicorn as ``http=``:

- the head (request line and headers) must arrive within ``header_timeout_s`` of
  the connection's opening or the request's first byte, else 408 and close (a
  connection that sent nothing is just closed, as uvicorn's keep-alive timeout does);
- the head may be at most ``max_header_bytes`` (counted per read of the socket,
  so it may overshoot by the part of one read, at most 256 KiB, that follows a
  pipelined request), else 431 and close;
- a body must arrive within ``body_timeout_s`` of the head. Operations that read a
  body answer 408 themselves (``bodylimit.py``); this closes, a little later,
  the connection of a body that nothing reads;
- past ``max_connections`` open connections, a new one is answered 503 as soon as
  its head is in, and closed.

Every answer here is ``application/problem+json`` with ``Connection: close``.

A connection closed while its request is still arriving (these refusals, and the
ASGI layer's 408 and 413) closes *lingering*, as nginx's ``lingering_close`` does:
the answer is sent, the write side shut, and what the client still sends is read
and dropped for up to ``_LINGER_S`` or until it closes. Closing at once with
unread bytes makes the kernel answer them with a reset, which can destroy the
answer before the client reads it (a third of 1,000 slow clients saw a reset,
not their 408, on a loaded machine).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from ..slimevent import SlimEvent
from .errors import PROBLEM_JSON, TITLES, problem_body
from .handoff import HandingOff

# After the ASGI layer's 408 (bodylimit.py) has had its chance, even on a busy loop.
_BODY_BACKSTOP_S = 5.0
# The longest a refused connection is read and dropped before it is closed anyway.
_LINGER_S = 3.0
# In the request's ``scope["state"]``: the loop time its head was complete, so the
# ASGI layer's body deadline counts from there, not from when a busy loop got to it.
HEAD_DONE_AT = "skillrun.head_done_at"


@dataclass(frozen=True)
class EdgeLimits:
    max_header_bytes: int
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int


def raw_problem(status: int, detail: str, headers: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 problem response that closes the connection."""
    body = json.dumps(problem_body(status, detail)).encode()
    lines = [
        f"HTTP/1.1 {status} {TITLES[status]}",
        f"content-type: {PROBLEM_JSON}",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _LingeringTransport:
    """The connection's transport as uvicorn sees it: ``close`` asks the protocol,
    which lingers when the request is still arriving; everything else is the transport's."""

    __slots__ = ("_raw", "_protocol")

    def __init__(self, raw: asyncio.Transport, protocol: EdgeProtocol) -> None:
        self._raw = raw
        # None once the connection is lost: the protocol holds this transport (and the
        # request cycle, which holds it too), so a reference back would make every
        # connection a reference cycle, garbage only the collector could free.
        self._protocol: EdgeProtocol | None = protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def write(self, data: bytes) -> None:
        self._raw.write(data)

    def is_closing(self) -> bool:
        protocol = self._protocol
        return (protocol is not None and protocol._lingering) or self._raw.is_closing()

    def close(self) -> None:
        protocol = self._protocol
        if protocol is None:
            self._raw.close()
        else:
            protocol._close()

    def detach(self) -> None:
        """The connection is lost: let go of the protocol (see ``__init__``)."""
        self._protocol = None


class _Pipeline(list[Any]):
    """What uvicorn uses of the deque it queues pipelined requests in."""

    __slots__ = ()

    def appendleft(self, item: Any) -> None:
        self.insert(0, item)


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above (``limits`` set by ``edge_protocol``)."""

    limits: ClassVar[EdgeLimits]
    _handing_off: ClassVar[HandingOff | None] = None
    # Slots: uvicorn's protocol sets 28 attributes; past 30, an instance's dict no longer
    # shares its keys with the others' and costs ~1.5 KB more per connection.
    __slots__ = ("_timer", "_head_open", "_in_message", "_head_bytes", "_began_here", "_over_cap",
                 "_lingering", "_raw")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn's queue of pipelined requests: an empty deque is ~760 bytes, kept as
        # long as the connection is open; a list does the same for the few ever queued.
        self.pipeline = _Pipeline()  # type: ignore[assignment]
        self._timer: asyncio.TimerHandle | None = None
        self._head_open = False  # between a request's first byte and its headers' end
        self._in_message = False  # between its first byte and its body's end
        self._head_bytes = 0
        self._began_here = False  # this read holds the request's first byte
        self._over_cap = False
        self._lingering = False
        self._raw: asyncio.Transport | None = None

    # -- connection ------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow._is_writable_event = SlimEvent(self.flow._is_writable_event.is_set())  # type: ignore[assignment]
        self._raw = transport
        self.transport = _LingeringTransport(transport, self)  # type: ignore[assignment]
        self._over_cap = len(self.connections) > self.limits.max_connections
        self._arm(self.limits.header_timeout_s, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
        if isinstance(self.transport, _LingeringTransport):
            self.transport.detach()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # refused: what still arrives is dropped
        between = not self._in_message
        super().data_received(data)
        if self.transport.is_closing():
            return
        # Deadlines are armed here, after the parser, not in its callbacks: a request
        # that arrives whole in one read (most do) never arms or cancels a timer.
        if self._head_open:
            # This read is all head if the request began with it (before it, at most the
            # blank lines llhttp skips); after a pipelined request's end, count none of it.
            if between or not self._began_here:
                self._head_bytes += len(data)
            self._began_here = False
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(431, f"The request's headers are larger than the limit of {self.limits.max_header_bytes} bytes.")
            elif self._timer is None:
                self._arm(self.limits.header_timeout_s, self._head_timed_out)
        elif self._in_message and self._timer is None:
            self._arm(self.limits.body_timeout_s + _BODY_BACKSTOP_S, self._body_timed_out)

    # -- parser callbacks ------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = self._in_message = self._began_here = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._disarm()  # the head deadline (a first request's runs from the connection's opening)
        if self._over_cap:
            self._refuse(503, "The server has too many open connections; retry shortly.", {"Retry-After": "1"})
            return
        self.scope["state"][HEAD_DONE_AT] = self.loop.time()
        before = self.cycle
        super().on_headers_complete()
        if self.cycle is not before and self.cycle is not None:  # a new request: nothing waits on its event yet
            self.cycle.message_event = SlimEvent(self.cycle.message_event.is_set())  # type: ignore[assignment]

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        # Each request through ``handoff.serve``: a stream's body runs after the
        # middleware layers have returned (``handoff.py``). One wrapper per app.
        wrapped = EdgeProtocol._handing_off
        if wrapped is None or wrapped.app is not app:
            wrapped = EdgeProtocol._handing_off = HandingOff(app, flow_of)
        super()._start_asgi_task(cycle, wrapped)

    def on_body(self, body: bytes) -> None:
        if not self.transport.is_closing():  # refused (431/503): no request to feed
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        self._disarm()
        if not self.transport.is_closing():
            super().on_message_complete()

    # -- deadlines -------------------------------------------------------------

    def _arm(self, delay: float, callback: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timed_out(self) -> None:
        self._timer = None
        if not self._head_open:
            self.transport.close()  # nothing sent yet: nobody to answer
            return
        self._refuse(408, f"The request's headers did not arrive within {self.limits.header_timeout_s:g} s.")

    def _body_timed_out(self) -> None:
        self._timer = None
        self.logger.warning("closing a connection whose request body did not arrive in time")
        self.transport.close()

    def _close(self) -> None:
        """Close, lingering if the request is still arriving (see the module's doc)."""
        raw = self._raw
        assert raw is not None
        if self._lingering or raw.is_closing():
            return
        if not self._in_message or not raw.can_write_eof():
            raw.close()
            return
        self._lingering = True
        self._disarm()
        raw.write_eof()
        raw.resume_reading()  # a paused body (flow control) must drain too
        self._timer = self.loop.call_later(_LINGER_S, raw.close)

    def eof_received(self) -> None:
        # The client is done sending: a lingering close is over. Otherwise as
        # uvicorn (None: asyncio closes the transport).
        if self._lingering and self._raw is not None:
            self._raw.close()

    def _refuse(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        self._disarm()
        self._head_open = False
        if not self.transport.is_closing():
            self.transport.write(raw_problem(status, detail, headers))
            self.transport.close()


class _GoneWatch:
    """``when_gone``'s: what a task looping on ``receive`` until ``http.disconnect`` did,
    as a callback on the request's message event."""

    __slots__ = ("_cycle", "_gone", "_fut")

    def __init__(self, cycle: RequestResponseCycle, gone: Callable[[], Any]) -> None:
        self._cycle = cycle
        self._gone = gone
        self._fut: asyncio.Future[bool] | None = None
        self._arm()

    def _arm(self) -> None:
        self._cycle.flow.resume_reading()  # as ``receive`` does: a closed socket is seen
        self._fut = self._cycle.message_event.waiter()  # type: ignore[attr-defined]
        self._fut.add_done_callback(self._woken)

    def _woken(self, fut: asyncio.Future[bool]) -> None:
        if fut.cancelled() or fut is not self._fut:
            return
        cycle = self._cycle
        cycle.message_event.clear()
        if cycle.disconnected or cycle.response_complete:
            self._fut = None
            self._gone()
        else:
            self._arm()

    def stop(self) -> None:
        fut, self._fut = self._fut, None
        if fut is not None:
            self._cycle.message_event.forget(fut)  # type: ignore[attr-defined]


def when_gone(receive: Any, gone: Callable[[], Any]) -> Callable[[], None] | None:
    """For uvicorn's own ``receive`` of a request whose body is all read (through this
    edge: its message event a ``SlimEvent``): calls ``gone()`` (from the loop) once the
    client disconnects, without a task awaiting ``receive`` (a task, its coroutines and
    its context: ~1.5 KB an idle stream); returns what stops watching. None for any
    other ``receive``: the caller listens with a task."""
    cycle = _cycle_of(receive, RequestResponseCycle.receive)
    if (
        cycle is None
        or not isinstance(cycle.message_event, SlimEvent)
        or cycle.more_body or cycle.body or cycle.waiting_for_100_continue
    ):
        return None
    return _GoneWatch(cycle, gone).stop


def _cycle_of(bound: Any, method: Any) -> RequestResponseCycle | None:
    """The request cycle whose own ``method`` ``bound`` is (uvicorn's ``receive`` or
    ``send``), else None (a layer's wrapper, a test client's)."""
    cycle = getattr(bound, "__self__", None)
    if isinstance(cycle, RequestResponseCycle) and getattr(bound, "__func__", None) is method:
        return cycle
    return None


def body_arrived(receive: Any) -> bool:
    """For uvicorn's own ``receive``: the request's whole body has arrived (the usual
    case, a small body in the head's packet), so reading it waits for nothing and needs
    no deadline. False for any other ``receive``, or while the body is still coming."""
    cycle = _cycle_of(receive, RequestResponseCycle.receive)
    return cycle is not None and cycle.message_event.is_set() and not cycle.more_body


def flow_of(send: Any) -> Any:
    """uvicorn's flow control of the connection that its own ``send`` writes to (None for
    any other ``send``): that ``send`` waits only while ``flow.write_paused``."""
    cycle = _cycle_of(send, RequestResponseCycle.send)
    return cycle.flow if cycle is not None else None


def edge_protocol(limits: EdgeLimits) -> type[EdgeProtocol]:
    """The protocol class for uvicorn's ``http=``: uvicorn builds one per connection."""
    return type("EdgeProtocol", (EdgeProtocol,), {"limits": limits})
