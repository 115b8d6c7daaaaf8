"""A fake OpenAI-compatible Chat Completions server of the tests' own (no real model runs here).

A real TCP server on a free port (raw asyncio streams, HTTP/1.1, its own event loop in
a thread), speaking the real wire format: ``POST /v1/chat/completions`` answers a
chunked ``text/event-stream`` of ``data: {chat.completion.chunk}\\n\\n`` frames ending
with ``data: [DONE]``, or an error status. Each request takes the next ``Reply`` of
the plan (the last one repeats). It records what it was asked (headers, JSON body,
when) and when each client went away mid-answer, so tests can check that a cancel
closed the upstream request.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    """One answer. ``status`` != 200: an error (with ``retry_after``, ``error`` message).
    Else a stream of ``chunks`` (content strings), ``batch`` of them per write every
    ``pace_s``; usage in a last chunk; ``cut_after``: close the connection after that
    many chunks (no terminating chunk, no [DONE]); ``forever``: never end;
    ``raw``: frames' data sent as they are (malformed streams)."""

    chunks: list[str] = field(default_factory=list)
    status: int = 200
    retry_after: str | None = None
    error: str = "something went wrong"
    model: str = "fake-model-1"
    usage: tuple[int, int] = (11, 7)
    finish_reason: str = "stop"
    pace_s: float = 0.0
    batch: int = 1
    cut_after: int | None = None
    forever: bool = False
    raw: list[str] | None = None


@dataclass
class Request:
    headers: dict[str, str]
    body: dict[str, Any]
    at: float
    disconnected_at: float | None = None  # the client closed the connection mid-answer


def _chunk(model: str, content: str | None = None, finish: str | None = None,
           usage: tuple[int, int] | None = None) -> str:
    choices = [] if usage is not None else [{"index": 0, "delta": {} if content is None else {"content": content},
                                              "finish_reason": finish}]
    body: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
                            "choices": choices}
    if usage is not None:
        body["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    return f"data: {json.dumps(body)}\n\n"


class FakeLLM:
    """Start with ``with FakeLLM() as fake:``; ``fake.base_url`` is SKILLRUN_LLM_BASE_URL."""

    def __init__(self, plan: list[Reply] | None = None) -> None:
        self.plan: list[Reply] = list(plan or [Reply(["Hello", ", world", "!"])])
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "FakeLLM":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)
        return self

    def __exit__(self, *exc: Any) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("the fake LLM never saw what the test waited for")
            time.sleep(0.01)

    def _next(self) -> Reply:
        with self._lock:
            return self.plan.pop(0) if len(self.plan) > 1 else self.plan[0]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
            body = json.loads(await reader.readexactly(int(headers.get("content-length", "0"))) or b"{}")
            request = Request(headers, body, time.monotonic())
            with self._lock:
                self.requests.append(request)
            reply = self._next()
            if reply.status != 200:
                await self._error(writer, reply)
                return
            watch = asyncio.ensure_future(reader.read(1))  # b"" once the client closes
            try:
                await self._stream(writer, reply, watch)
            except (ConnectionError, _Gone):
                request.disconnected_at = time.monotonic()
            finally:
                watch.cancel()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _error(self, writer: asyncio.StreamWriter, reply: Reply) -> None:
        payload = json.dumps({"error": {"message": reply.error, "type": "error"}}).encode()
        extra = f"Retry-After: {reply.retry_after}\r\n" if reply.retry_after is not None else ""
        writer.write(f"HTTP/1.1 {reply.status} Error\r\nContent-Type: application/json\r\n{extra}"
                     f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode() + payload)
        await writer.drain()

    async def _stream(self, writer: asyncio.StreamWriter, reply: Reply, watch: asyncio.Future[bytes]) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
                     b"Connection: close\r\n\r\n")

        async def send(frames: str) -> None:
            if watch.done():
                raise _Gone
            data = frames.encode()
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()

        frames = list(reply.raw) if reply.raw is not None else [_chunk(reply.model, c) for c in reply.chunks]
        sent = 0
        while frames:
            group, frames = frames[: reply.batch], frames[reply.batch:]
            await send("".join(group))
            sent += len(group)
            if reply.cut_after is not None and sent >= reply.cut_after:
                writer.transport.abort()  # mid-answer: no last chunk, no [DONE]
                return
            if reply.pace_s:
                await asyncio.sleep(reply.pace_s)
        while reply.forever:
            await send(_chunk(reply.model, "."))
            await asyncio.sleep(0.01)
        if reply.raw is None:
            await send(_chunk(reply.model, finish=reply.finish_reason) + _chunk(reply.model, usage=reply.usage))
            await send("data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()


class _Gone(Exception):
    """The client closed the connection."""
