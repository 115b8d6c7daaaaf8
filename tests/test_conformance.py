"""``skillrun conformance``: passes against our server; names the broken rule against broken fakes.

The fakes are our real server behind a small fault-injecting proxy (a real uvicorn on
its own port): each breaks one thing a deployment can get wrong, frame by frame, on
the wire, so the command sees exactly what a user's CI would see behind a bad proxy
or in a broken implementation of the contract.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

import httpx
import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from conftest import API_KEY, OTHER_KEY, Server, free_port
from skillrun.conformance import Options, Result, run

Transform = Callable[[list[bytes]], list[bytes]]


class FaultProxy:
    """Forwards every request to ``upstream``; ``fault`` decides what breaks on the way back."""

    def __init__(self, upstream: str, fault: str) -> None:
        self.upstream = upstream
        self.fault = fault

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        if self.fault == "resume-repeats" and headers.get("last-event-id", "0") != "0":
            # Resume one event early: the event at the cursor comes again.
            headers["last-event-id"] = str(int(headers["last-event-id"]) - 1)
        client = httpx.AsyncClient(base_url=self.upstream, timeout=60)
        upstream = await client.send(
            client.build_request(request.method, request.url.path, params=request.query_params,
                                 headers=headers, content=await request.body()),
            stream=True,
        )
        kept = {k: v for k, v in upstream.headers.items() if k.lower() not in ("content-length", "transfer-encoding")}
        if not upstream.headers.get("content-type", "").startswith("text/event-stream"):
            body = await upstream.aread()
            await client.aclose()
            await Response(body, upstream.status_code, headers=kept)(scope, receive, send)
            return
        response = StreamingResponse(self._frames(upstream, client), upstream.status_code, headers=kept)
        await response(scope, receive, send)

    async def _frames(self, upstream: httpx.Response, client: httpx.AsyncClient) -> AsyncIterator[bytes]:
        buffered: list[bytes] = []
        n = 0
        try:
            async for frame in _split_frames(upstream.aiter_bytes()):
                n += 1
                if self.fault == "missing-done" and b"event: done" in frame:
                    continue
                if self.fault == "ids-out-of-order" and n == 2:
                    held = frame  # sent after the third
                    continue
                if self.fault == "buffering":
                    buffered.append(frame)
                    continue
                yield frame
                if self.fault == "ids-out-of-order" and n == 3:
                    yield held
            if buffered:
                yield b"".join(buffered)
            if self.fault == "never-closes":
                await asyncio.sleep(3600)
        finally:
            await upstream.aclose()
            await client.aclose()


async def _split_frames(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    pending = b""
    async for chunk in chunks:
        pending += chunk.replace(b"\r\n", b"\n")
        while b"\n\n" in pending:
            frame, pending = pending.split(b"\n\n", 1)
            yield frame + b"\n\n"
    if pending:
        yield pending


class Background:
    """A uvicorn server for ``app`` on a free port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "Background":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def fake(server: Server) -> Iterator[Callable[[str], str]]:
    """``fake(fault)``: the URL of our server behind a proxy with that fault."""
    started: list[Background] = []

    def make(fault: str) -> str:
        bg = Background(FaultProxy(server.url, fault)).__enter__()
        started.append(bg)
        return bg.url

    yield make
    for bg in started:
        bg.__exit__()


def _broken(results: list[Result]) -> set[str]:
    return {r.rule for r in results if r.outcome == "failed"}


def _behaviours(url: str) -> list[Result]:
    return run(Options(url, API_KEY, OTHER_KEY, fuzz=False, close_timeout_s=1.5))


def test_conformance_passes_against_our_server(server: Server) -> None:
    """Every check holds against a real `skillrun serve`: generated cases and live behaviours."""
    results = run(Options(server.url, API_KEY, OTHER_KEY, max_examples=3))
    assert _broken(results) == set(), [r for r in results if r.outcome == "failed"]
    ran = {r.rule for r in results if r.outcome == "passed"}
    assert {"contract.schemathesis", "sse.done-last", "resume.every-cut", "runs.second-viewer", "runs.cancel",
            "runs.owner-isolation", "ratelimit.headers", "http.problem-json", "resume.deltas"} <= ran


def test_a_stream_that_never_closes_breaks_sse_closes_after_done(fake: Callable[[str], str]) -> None:
    """A proxy that keeps the response open after `done`."""
    assert "sse.closes-after-done" in _broken(_behaviours(fake("never-closes")))


def test_a_stream_without_done_breaks_sse_done_last(fake: Callable[[str], str]) -> None:
    """A proxy that drops the `done` frame."""
    assert "sse.done-last" in _broken(_behaviours(fake("missing-done")))


def test_ids_out_of_order_break_sse_ids_increasing(fake: Callable[[str], str]) -> None:
    """A proxy that sends the second frame after the third."""
    assert "sse.ids-increasing" in _broken(_behaviours(fake("ids-out-of-order")))


def test_a_buffering_proxy_breaks_stream_incremental(fake: Callable[[str], str]) -> None:
    """A proxy that holds the whole stream and sends it at the end."""
    broken = _broken(_behaviours(fake("buffering")))
    assert "stream.incremental" in broken
    assert "sse.done-last" not in broken  # the stream itself is whole


def test_a_resume_that_repeats_an_event_breaks_resume_every_cut(fake: Callable[[str], str]) -> None:
    """A server that resumes one event early: the event at `Last-Event-ID` comes again."""
    broken = _broken(_behaviours(fake("resume-repeats")))
    assert broken == {"resume.every-cut", "resume.deltas"}  # the repeated event is a delta in the progress run


def test_the_command_exits_1_and_names_the_rule_in_junit(fake: Callable[[str], str], tmp_path: Path) -> None:
    report = tmp_path / "conformance.xml"
    done = subprocess.run(
        [sys.executable, "-m", "skillrun", "conformance", fake("missing-done"), "--key", API_KEY,
         "--no-fuzz", "--junit-xml", str(report)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "sse.done-last" in done.stdout
    failed = [case.get("classname") for case in ET.parse(report).iter("testcase") if case.find("failure") is not None]
    assert "sse.done-last" in failed
    skipped = [case.get("classname") for case in ET.parse(report).iter("testcase") if case.find("skipped") is not None]
    assert "runs.owner-isolation" in skipped  # no --other-key


def test_without_demo_ticker_the_long_run_checks_say_they_were_skipped(app_factory: Callable[..., Any],
                                                                      tmp_path: Path) -> None:
    (tmp_path / "user.echo.yaml").write_text(USER_SKILL)
    app = app_factory(include_bundled_skills=False, skill_dirs=[tmp_path], db=":memory:")
    with Background(app) as bare:
        results = run(Options(bare.url, API_KEY, fuzz=False))
        aimed = run(Options(bare.url, API_KEY, skills=["user.echo"], fuzz=False))
    skipped = [r for r in results if r.outcome == "skipped"]
    assert skipped and "demo.ticker is not loaded" in skipped[0].detail
    assert _broken(aimed) == set(), aimed
    assert {"sse.done-last", "resume.every-cut", "runs.second-viewer"} <= {r.rule for r in aimed if r.outcome == "passed"}
    # A quick skill cannot show buffering, and a user's skill is not known to run long: both said.
    assert {"stream.incremental", "runs.cancel"} <= {r.rule for r in aimed if r.outcome == "skipped"}


USER_SKILL = """\
id: user.echo
version: "0.1.0"
description: A user's own skill for --skill.
inputs:
  type: object
  additionalProperties: false
  required: [text]
  properties:
    text: { type: string, minLength: 1, maxLength: 200 }
outputs:
  sentences:
    value: ${steps.split.sentences}
    schema: { type: array, items: { type: string } }
steps:
  - id: split
    uses: text.split_sentences
    input: { text: "${inputs.text}" }
"""
