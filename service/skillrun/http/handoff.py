"""A streaming answer's body, handed from inside the middleware chain to the edge once its head is sent.

An open stream held every layer's coroutine frame between uvicorn and the response
for as long as it was open: connexion's, starlette's and ours, ~15 frames (~5 KB a
stream; bench/stream.py (d): 10,000 idle streams). Their work is done once the head
is sent; only ``ObserveMiddleware`` has more to do at the end (duration, access log).

So the edge (``edge.EdgeProtocol``) runs each request through ``serve``, which puts
a ``Handoff`` in the scope's ``state``. A response that can (``EventStreamResponse``)
sends its head through the layers as before, then hands the rest of its body to
it (``take``) and returns; the layers return too, their frames freed, and ``serve``
awaits the body in the same task. The body sends and receives with the server's
own ``send`` and ``receive`` (``Handoff.send`` counts its bytes in ``sent``), not
through the layers' wrappers: their work was the head's (a header added, a status
noted), and the wrappers, their cells and what those hold (the request's headers,
for one) are freed with the frames (~1 KB a stream). A layer with work to do at
the body's end registers it (``at_end``): ``serve`` runs it after the body, as the
layer's ``finally`` would have (ObserveMiddleware logs the bytes: its own count of
the head's and ``sent``). A layer whose end cannot be moved (a tracing span,
entered in its frame) forbids the handoff (``forbid``) before calling in.

Without the edge (an ASGI test client, another server) there is no ``Handoff``
and a response streams inside the chain as before.

What differs: an error from the body after the head is no longer seen by the
exception layers on its way out (they could not answer it anyway, the head being
sent; starlette's turned it into a RuntimeError): uvicorn logs it and closes the
connection, as before.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

HANDOFF = "skillrun.handoff"


class Handoff:
    """One request's: the body handed to the edge, and what to run at its end."""

    __slots__ = ("body", "dropped", "ends", "allowed", "receive", "_send", "sent", "_flow")

    def __init__(self, receive: Any, send: Any, flow: Any = None) -> None:
        self.body: Callable[[], Awaitable[None]] | None = None
        self.dropped: Callable[[], Any] | None = None
        self.ends: list[Callable[[], Any]] | None = None
        self.allowed = True
        self.receive = receive  # the server's, for the handed body
        self._send = send
        self.sent = 0  # body bytes sent through ``send``
        # uvicorn's flow control of the connection (None: not known): ``send`` waits
        # only while its writing is paused (the client's buffers full).
        self._flow = flow

    def would_wait(self) -> bool:
        """A ``send`` now might wait for the client (false: it writes at once)."""
        flow = self._flow
        return flow is None or flow.write_paused

    async def send(self, message: Any) -> None:
        """The server's ``send``, for the handed body, counting the bytes it sends."""
        self.sent += len(message.get("body", b""))
        await self._send(message)

    def take(self, body: Callable[[], Awaitable[None]], dropped: Callable[[], Any] | None = None) -> None:
        """The rest of the answer: ``body()`` runs once the layers have returned;
        ``dropped()`` instead if they raise on their way out (the body never runs)."""
        assert self.allowed and self.body is None
        self.body, self.dropped = body, dropped

    def at_end(self, fn: Callable[[], Any]) -> None:
        """``fn()`` once the handed body has ended (however it ended)."""
        if self.ends is None:
            self.ends = [fn]
        else:
            self.ends.append(fn)

    def forbid(self) -> None:
        self.allowed = False


def handoff_of(scope: Any) -> Handoff | None:
    """The request's ``Handoff`` if a response may take it."""
    state = scope.get("state")
    handoff = state.get(HANDOFF) if state is not None else None
    return handoff if handoff is not None and handoff.allowed and handoff.body is None else None


def handed_off(scope: Any) -> Handoff | None:
    """The request's ``Handoff`` if a response took it (for a layer on its way out)."""
    state = scope.get("state")
    handoff = state.get(HANDOFF) if state is not None else None
    return handoff if handoff is not None and handoff.body is not None else None


async def serve(app: Any, scope: Any, receive: Any, send: Any, flow: Any = None) -> None:
    """``app`` for one request, then the body a response handed off, if one did
    (``flow``: the connection's flow control, if known: see ``Handoff.would_wait``)."""
    handoff = Handoff(receive, send, flow)
    state = scope.get("state")
    if state is not None:
        state[HANDOFF] = handoff
    try:
        await app(scope, receive, send)
        body = handoff.body
        if body is not None:
            handoff.body = None
            await body()
    except BaseException:
        if handoff.body is not None and handoff.dropped is not None:
            handoff.dropped()  # taken, but the layers raised on their way out: it never runs
        raise
    finally:
        handoff.body = handoff.dropped = handoff.receive = handoff._send = None
        ends, handoff.ends = handoff.ends, None
        handoff._flow = None
        for fn in reversed(ends or ()):  # innermost first, as the layers' finallies ran
            fn()


class HandingOff:
    """``app`` run through ``serve``: what the edge passes to uvicorn's request cycle
    (``flow_of(send)``: the connection's flow control, None if unknown)."""

    __slots__ = ("app", "flow_of")

    def __init__(self, app: Any, flow_of: Callable[[Any], Any] | None = None) -> None:
        self.app = app
        self.flow_of = flow_of

    def __call__(self, scope: Any, receive: Any, send: Any) -> Awaitable[None]:
        return serve(self.app, scope, receive, send, self.flow_of(send) if self.flow_of is not None else None)
