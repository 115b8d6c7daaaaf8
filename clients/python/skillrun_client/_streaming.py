"""Event streams that resume by themselves: :class:`Stream` and :class:`AsyncStream`.

All decisions live in :class:`ResumeState` (sans-IO): which request opens the next
connection, which events are new, how long to wait after a drop, when to give up.
The two stream classes only move bytes and sleep, so sync and async cannot drift apart.

A connection that ends before ``done`` — reset, EOF, or ``idle_timeout`` without a single
byte (heartbeat comments count) — is resumed at ``GET /v1/runs/{run_id}/events`` with
``Last-Event-ID``; events already delivered are skipped by their sequence number, so the
consumer sees each event exactly once. Only an event whose *own* ``id:`` line names an id
already delivered is a repeat: one without an ``id:`` line keeps the previous last event
ID (WHATWG HTML 9.2.6) and is delivered.

An event the models cannot read arrives as an :class:`~skillrun_client.UnknownEvent`
(``strict=True``: a :class:`StreamError`); a ``done`` the models cannot read is always
an error, since the run's result is in it.
"""

from __future__ import annotations

import json
import time
from collections import deque
from types import TracebackType
from typing import Any, AsyncIterator, Callable, Iterator, cast

import anyio
import httpx
import pydantic

from ._decoder import SSEDecoder, ServerSentEvent
from ._exceptions import APIStatusError, SkillrunError, StreamError
from ._generated.models import DoneEvent
from ._generated import defaults
from ._retry import Backoff, RequestRetry, server_delay
from ._text import StepTexts, TextChunk
from ._transport import Call, asend, dropped, segment, send
from ._types import EVENT_ADAPTER, RunResult, StreamEvent, UnknownEvent, unknown_fields


class ResumeState:
    """The sans-IO core of a stream: cursor, dedupe, retry accounting."""

    def __init__(
        self,
        first: Call,
        *,
        max_retries: int,
        backoff: Backoff,
        run_id: str | None = None,
        last_event_id: str | None = None,
        max_retry_after: float = defaults.MAX_RETRY_AFTER_S,
        strict: bool = False,
    ) -> None:
        self.first = first
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self.strict = strict
        self.run_id = run_id
        self.last_event_id = last_event_id
        self.done: DoneEvent | None = None
        self.connected = False  # a connection has been opened once: the run exists
        self.failures = 0  # consecutive failed resumes; reset by every new event
        self.server_retry: float | None = None  # the server's `retry:`, in seconds
        self._first_retry = RequestRetry(max_retries, backoff, max_retry_after)
        self._last_seq = _seq(last_event_id)
        self._decoder = SSEDecoder()

    def next_call(self) -> Call:
        """The request for the next connection: the first one, or a resume."""
        if not self.connected:
            return self.first
        if self.run_id is None:
            raise StreamError("cannot resume: the server named no run", run_id=None, last_event_id=self.last_event_id)
        headers = dict(self.first.headers)
        headers.pop("Idempotency-Key", None)
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        return Call("GET", self.first.base_url, f"/v1/runs/{segment(self.run_id)}/events", headers=headers, timeout=self.first.timeout)

    def on_connect(self, headers: httpx.Headers) -> None:
        self.connected = True
        self.run_id = headers.get("x-run-id") or self.run_id
        # A fresh decoder per connection: a frame cut off by the drop is discarded (9.2.6).
        self._decoder = SSEDecoder(self.last_event_id or "")

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        """The new events in ``chunk``."""
        accept = self._accept
        events = [e for sse in self._decoder.feed(chunk) if (e := accept(sse)) is not None]
        if self._decoder.retry is not None:
            self.server_retry = self._decoder.retry / 1000
        return events

    def _accept(self, sse: ServerSentEvent) -> StreamEvent | None:
        seq = _seq(sse.id) if sse.has_id else None
        if self.done is not None or (seq is not None and self._last_seq is not None and seq <= self._last_seq):
            return None  # already delivered before a reconnect
        event = self._read(sse.data)
        if seq is not None:
            self._last_seq = seq
        if sse.id:
            self.last_event_id = sse.id
        if self.run_id is None:
            self.run_id = event.run_id
        self.failures = 0
        if event.type == "done":
            self.done = event
        return event

    def _read(self, data: str) -> StreamEvent:
        """``data`` as a typed event, or an :class:`UnknownEvent` (strict: a StreamError)."""
        try:
            event: StreamEvent = _validate_event(data)
        except pydantic.ValidationError as exc:
            raw = _object(data)
            if raw is None or self.strict or raw["type"] == "done":
                raise self._unreadable(str(exc)) from exc
            return UnknownEvent.from_raw(raw)
        if self.strict and (extra := list(unknown_fields(event, json.loads(data)))):
            raise self._unreadable(f"{event.type} has fields the models do not know: {', '.join(extra)}")
        return event

    def _unreadable(self, why: str) -> StreamError:
        return StreamError(f"the server sent an event this client cannot read: {why}", run_id=self.run_id, last_event_id=self.last_event_id)

    def next_delay(self, error: SkillrunError) -> float:
        """Seconds before the next connection attempt, or raise when there is none."""
        if not self.connected:
            return self._first_retry.next_delay(error)  # before the run exists: plain request rules
        if isinstance(error, APIStatusError) and error.status_code != 429 and error.status_code < 500:
            raise StreamError(f"cannot resume: {error}", run_id=self.run_id, last_event_id=self.last_event_id) from error
        self.failures += 1
        if self.failures > self.max_retries:
            raise StreamError(
                f"gave up after {self.max_retries} retries: {error}", run_id=self.run_id, last_event_id=self.last_event_id
            ) from error
        asked = server_delay(error)
        if asked is not None and asked > self.max_retry_after:
            raise StreamError(
                f"the server asked to wait {asked:.0f} s, longer than max_retry_after ({self.max_retry_after:.0f} s): {error}",
                run_id=self.run_id,
                last_event_id=self.last_event_id,
            ) from error
        return asked if asked is not None else self.backoff.delay(self.failures, first=self.server_retry)

    def result(self) -> RunResult:
        if self.done is None:
            raise StreamError("the stream was closed before its done event", run_id=self.run_id, last_event_id=self.last_event_id)
        return RunResult.from_done(self.done)


def _seq(event_id: str | None) -> int | None:
    return int(event_id) if event_id and event_id.isascii() and event_id.isdigit() else None


def _object(data: str) -> dict[str, Any] | None:
    """``data`` as a JSON object with a string ``type``, or None: then it is no event at all."""
    try:
        raw: Any = json.loads(data)
    except ValueError:
        return None
    return cast(dict[str, Any], raw) if isinstance(raw, dict) and isinstance(raw.get("type"), str) else None


# The core validator itself: TypeAdapter.validate_json adds a Python call per event.
_validate_event: Callable[[str], Any] = EVENT_ADAPTER.validator.validate_json


class _StreamBase:
    def __init__(self, state: ResumeState) -> None:
        self._state = state
        self._pending: deque[StreamEvent] = deque()
        self._delay = 0.0
        self._closed = False
        self._texts = StepTexts()
        self._fresh_text: list[TextChunk] = []  # the chunks the event delivered last means

    @property
    def run_id(self) -> str | None:
        """The run's id, once the server has named it."""
        return self._state.run_id

    @property
    def last_event_id(self) -> str | None:
        """The id of the last event delivered (the resume cursor)."""
        return self._state.last_event_id

    @property
    def finished(self) -> bool:
        """True once the ``done`` event has arrived."""
        return self._state.done is not None

    def _deliver(self, event: StreamEvent) -> StreamEvent:
        """Every event passes here on its way out: the step texts follow it."""
        self._fresh_text = self._texts.observe(event)
        return event

    def _text_of(self, step_id: str | None, index: int | None) -> list[TextChunk]:
        """The chunks of the event delivered last that ``text(step_id, index=index)`` yields."""
        return [
            c for c in self._fresh_text if (step_id is None or c.step_id == step_id) and (index is None or c.index == index)
        ]


class Stream(_StreamBase):
    """A run's events, in order, each once. Iterate it; ``result()`` drains it.

    Use it as a context manager: leaving the block closes the connection. Leaving a
    ``for`` loop early (``break``) also closes the connection; iterating again, or
    ``result()``, resumes where it stopped.
    """

    def __init__(self, http: httpx.Client, state: ResumeState) -> None:
        super().__init__(state)
        self._http = http
        self._response: httpx.Response | None = None
        self._chunks: Iterator[bytes] | None = None

    def __enter__(self) -> Stream:
        if self._chunks is None and not self._state.connected:
            self._connect()  # so HTTP errors surface here, before the first event
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __iter__(self) -> Iterator[StreamEvent]:
        try:
            while (event := self._next()) is not None:
                yield event
        finally:
            self._disconnect()

    def result(self) -> RunResult:
        """The ``done`` payload; reads (and drops) the events not yet iterated."""
        while self._next() is not None:
            pass
        return self._state.result()

    def text(self, step_id: str | None = None, *, index: int | None = None) -> Iterator[TextChunk]:
        """The text of one step (``step_id``; ``index``: one ``foreach`` item), or of all steps, as it is made.

        Yields a :class:`TextChunk` per ``delta.text`` until the stream ends (at ``done``),
        reading (and dropping) the events in between; resumes underneath like iteration.
        A chunk with ``restart=True`` (and no text) says the text yielded so far for its
        step is void: that attempt failed and a retry or fallback follows. Leaving the
        loop early closes the connection, like ``break`` in ``for event in stream``.
        """
        try:
            while self._next() is not None:
                yield from self._text_of(step_id, index)
        finally:
            self._disconnect()

    def final_text(self, step_id: str, *, index: int | None = None) -> str | None:
        """The step's text once it has ended: the attempt that produced its output, joined.

        Reads (and drops) events until the step (``index``: its ``foreach`` item) ends;
        the rest of the stream stays readable. ``""``: it completed without text;
        ``None``: it failed, was skipped, or the run ended without it.
        """
        key = (step_id, index)
        while not self._texts.ended(key) and self._next() is not None:
            pass
        return self._texts.final(key)

    def close(self) -> None:
        """Close the connection for good; the run itself goes on."""
        self._closed = True
        self._disconnect()

    def _next(self) -> StreamEvent | None:
        while True:
            if self._closed:
                return None
            if self._pending:
                return self._deliver(self._pending.popleft())
            if self.finished:
                self._disconnect()
                return None
            if self._chunks is None:
                self._connect()
                continue
            try:
                chunk = next(self._chunks)
            except StopIteration:
                error = dropped(None)
            except httpx.TransportError as exc:
                error = dropped(exc)
            else:
                self._pending.extend(self._state.feed(chunk))
                continue
            self._disconnect()
            self._delay = self._state.next_delay(error)

    def _connect(self) -> None:
        if self._delay:
            time.sleep(self._delay)
            self._delay = 0.0
        response = send(self._http, self._state.next_call, self._state, stream=True)
        self._state.on_connect(response.headers)
        self._response, self._chunks = response, response.iter_bytes()

    def _disconnect(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = self._chunks = None


class AsyncStream(_StreamBase):
    """The ``async`` twin of :class:`Stream` (``async with``, ``async for``, ``await``)."""

    def __init__(self, http: httpx.AsyncClient, state: ResumeState) -> None:
        super().__init__(state)
        self._http = http
        self._response: httpx.Response | None = None
        self._chunks: AsyncIterator[bytes] | None = None

    async def __aenter__(self) -> AsyncStream:
        if self._chunks is None and not self._state.connected:
            await self._connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        try:
            while (event := await self._next()) is not None:
                yield event
        finally:
            await self._disconnect()

    async def result(self) -> RunResult:
        """The ``done`` payload; reads (and drops) the events not yet iterated."""
        while await self._next() is not None:
            pass
        return self._state.result()

    async def text(self, step_id: str | None = None, *, index: int | None = None) -> AsyncIterator[TextChunk]:
        """The ``async`` twin of :meth:`Stream.text` (``async for chunk in stream.text(...)``)."""
        try:
            while await self._next() is not None:
                for chunk in self._text_of(step_id, index):
                    yield chunk
        finally:
            await self._disconnect()

    async def final_text(self, step_id: str, *, index: int | None = None) -> str | None:
        """The ``async`` twin of :meth:`Stream.final_text`."""
        key = (step_id, index)
        while not self._texts.ended(key) and await self._next() is not None:
            pass
        return self._texts.final(key)

    async def close(self) -> None:
        """Close the connection for good; the run itself goes on."""
        self._closed = True
        await self._disconnect()

    async def _next(self) -> StreamEvent | None:
        while True:
            if self._closed:
                return None
            if self._pending:
                return self._deliver(self._pending.popleft())
            if self.finished:
                await self._disconnect()
                return None
            if self._chunks is None:
                await self._connect()
                continue
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                error = dropped(None)
            except httpx.TransportError as exc:
                error = dropped(exc)
            else:
                self._pending.extend(self._state.feed(chunk))
                continue
            await self._disconnect()
            self._delay = self._state.next_delay(error)

    async def _connect(self) -> None:
        if self._delay:
            await anyio.sleep(self._delay)
            self._delay = 0.0
        response = await asend(self._http, self._state.next_call, self._state, stream=True)
        self._state.on_connect(response.headers)
        self._response, self._chunks = response, response.aiter_bytes()

    async def _disconnect(self) -> None:
        if self._response is not None:
            await self._response.aclose()
            self._response = self._chunks = None
