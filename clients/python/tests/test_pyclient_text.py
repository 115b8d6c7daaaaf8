"""``stream.text()`` and ``stream.final_text()``: a step's text as it is made, from ``step_delta``.

The server side of deltas is not needed here: a scripted server on a real socket serves
an event log with ``step_delta`` events, answers ``Last-Event-ID`` like the real one
(only the events after it), and cuts connections mid-frame where a test says.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

import pytest

from skillrun_client import AsyncStream, Stream, TextChunk

from .conftest import Request, ScriptServer, chunk, envelope, http_head, in_thread_or_loop, run_events

pytestmark = pytest.mark.anyio
RUN = "run_text"


def delta(step_id: str, attempt: int, sequence: int, text: str | None = None, progress: float | None = None, **place: Any) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if text is not None:
        body["text"] = text
    if progress is not None:
        body["progress"] = progress
    return envelope("step_delta", RUN, step_id, {"attempt": attempt, "sequence": sequence, "delta": body, **place})


def start(step_id: str, **place: Any) -> dict[str, Any]:
    return envelope("step_start", RUN, step_id, {"uses": "llm.chat", **place})


def completed(step_id: str, **place: Any) -> dict[str, Any]:
    return envelope("step_completed", RUN, step_id, {"produced_output": {}, "duration_ms": 1.0, **place})


ERROR = {"kind": "upstream", "message": "boom"}


def retrying(step_id: str, attempt: int) -> dict[str, Any]:
    return envelope("step_retrying", RUN, step_id, {"attempt": attempt, "error": ERROR, "delay_ms": 1})


def run(*middle: dict[str, Any]) -> list[dict[str, Any]]:
    """``middle`` between a run's skill_start and its skill_completed/done."""
    whole = run_events(RUN, steps=0)
    return [whole[0], *middle, *whole[1:]]


# The hostile log: a model answers in chunks, its first attempt fails after two chunks
# (a retry), a second step streams while the first waits, progress comes without text.
ANSWER = run(
    start("answer"),
    delta("answer", 1, 1, "Bonj"),
    delta("answer", 1, 2, "our, le"),
    retrying("answer", 1),
    start("other"),
    delta("other", 1, 1, progress=0.5),
    delta("other", 1, 2, "side "),
    delta("answer", 2, 1, "Hello, "),
    delta("answer", 2, 2, "wor", progress=0.7),
    delta("other", 1, 3, "text"),
    delta("answer", 2, 3, "ld!"),
    completed("answer"),
    completed("other"),
)


class LogServer:
    """Serves ``log`` as SSE from after ``Last-Event-ID``; connection *i* is cut after ``cuts[i]`` bytes."""

    def __init__(self, log: list[dict[str, Any]], cuts: list[int] | None = None) -> None:
        self.frames = [f"id: {i}\nevent: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for i, e in enumerate(log, 1)]
        self.cuts = list(cuts or [])
        self.script = ScriptServer([self.serve])

    @property
    def requests(self) -> list[Request]:
        return self.script.requests

    async def serve(self, req: Request, w: asyncio.StreamWriter) -> None:
        after = int(req.headers.get("last-event-id", "0"))
        body = b"".join(self.frames[after:])
        cut = self.cuts.pop(0) if self.cuts else None
        w.write(http_head(200, {"Content-Type": "text/event-stream", "X-Run-Id": RUN}, chunked=True))
        if cut is None:
            w.write(chunk(body) + b"0\r\n\r\n")
        else:
            w.write(chunk(body[:cut])[:-2])  # the chunk as announced never completes
            await w.drain()
            w.transport.abort()  # a reset, mid-frame
        await w.drain()

    def offset(self, k: int, extra: int) -> int:
        """The byte offset ``extra`` bytes into frame ``k`` (1-based)."""
        return sum(len(f) for f in self.frames[: k - 1]) + extra


def texts(stream: Stream | AsyncStream, step_id: str | None = None, index: int | None = None) -> Any:
    def sync(s: Stream) -> list[TextChunk]:
        with s:
            return list(s.text(step_id, index=index))

    async def async_(s: AsyncStream) -> list[TextChunk]:
        async with s:
            return [c async for c in s.text(step_id, index=index)]

    return in_thread_or_loop(stream, sync, async_)


def final(stream: Stream | AsyncStream, step_id: str, index: int | None = None) -> Any:
    return in_thread_or_loop(stream, lambda s: s.final_text(step_id, index=index), lambda s: s.final_text(step_id, index=index))


def joined(chunks: list[TextChunk], step_id: str) -> str:
    """What a UI shows for ``step_id`` at the end: restarts clear it."""
    shown = ""
    for c in chunks:
        if c.step_id == step_id:
            shown = "" if c.restart else shown + str(c)
    return shown


async def test_text_yields_every_chunk_live_and_marks_the_restart_when_a_retry_voids_yielded_text(make_client: Callable[..., Any]) -> None:
    """An attempt streams "Bonj", "our, le" and then fails (step_retrying): text() has yielded both
    live, then yields one restart marker, then only the second attempt's chunks; the joined
    text a UI shows is "Hello, world!", and progress-only deltas yield nothing."""
    srv = LogServer(ANSWER)
    async with srv.script:
        got = await texts(make_client(srv.script.url).runs.events(RUN), "answer")
    assert [(c.text, c.attempt, c.restart) for c in got] == [
        ("Bonj", 1, False), ("our, le", 1, False), ("", 1, True), ("Hello, ", 2, False), ("wor", 2, False), ("ld!", 2, False),
    ]  # fmt: skip
    assert all(c.step_id == "answer" and c.index is None for c in got)
    assert joined(got, "answer") == "Hello, world!"


async def test_text_of_all_steps_interleaves_them_in_event_order(make_client: Callable[..., Any]) -> None:
    """text() without a step_id yields the chunks of every step in the log's order, each tagged with its step."""
    srv = LogServer(ANSWER)
    async with srv.script:
        got = await texts(make_client(srv.script.url).runs.events(RUN))
    assert [(c.step_id, c.text) for c in got] == [
        ("answer", "Bonj"), ("answer", "our, le"), ("answer", ""), ("other", "side "), ("answer", "Hello, "), ("answer", "wor"),
        ("other", "text"), ("answer", "ld!"),
    ]  # fmt: skip
    assert joined(got, "other") == "side text"


@pytest.mark.parametrize("extra", [3, 40], ids=["in-id-line", "in-data"])
async def test_text_across_a_cut_connection_loses_and_repeats_nothing(make_client: Callable[..., Any], extra: int) -> None:
    """The connection is reset inside each delta frame in turn (in its id line, in its data):
    the stream resumes with Last-Event-ID and text() yields exactly the chunks of an uninterrupted stream."""
    whole = LogServer(ANSWER)
    async with whole.script:
        expected = await texts(make_client(whole.script.url).runs.events(RUN))
    delta_frames = [k for k, e in enumerate(ANSWER, 1) if e["type"] == "step_delta"]
    for k in delta_frames:
        srv = LogServer(ANSWER)
        srv.cuts = [srv.offset(k, extra)]
        async with srv.script:
            got = await texts(make_client(srv.script.url).runs.events(RUN))
        assert got == expected, f"cut in frame {k}"
        assert [r.headers.get("last-event-id") for r in srv.requests] == [None, str(k - 1)]


async def test_text_across_several_cuts_joins_to_the_uninterrupted_text(make_client: Callable[..., Any]) -> None:
    """Every connection is cut in a new place (four resets in one stream): the joined text is still "Hello, world!"."""
    srv = LogServer(ANSWER)
    srv.cuts = [srv.offset(3, 50), 200, 30, 260]
    async with srv.script:
        stream = make_client(srv.script.url).runs.events(RUN)
        got = await texts(stream, "answer")
    assert joined(got, "answer") == "Hello, world!"
    assert len(srv.requests) == 5
    assert [c.text for c in got if not c.restart] == ["Bonj", "our, le", "Hello, ", "wor", "ld!"]


async def test_final_text_is_only_the_attempt_that_produced_the_output_and_leaves_the_rest(make_client: Callable[..., Any]) -> None:
    """final_text("answer") after a failed first attempt is "Hello, world!" (not "Bonjour, leHello, world!");
    it returns at the step's end, and the rest of the stream (the other step, the result) stays readable."""
    srv = LogServer(ANSWER)
    async with srv.script:
        stream = make_client(srv.script.url).runs.events(RUN)

        def sync(s: Stream) -> tuple[Any, ...]:
            with s:
                text = s.final_text("answer")
                rest = [e.type for e in s]
                return text, rest, s.final_text("other"), s.final_text("answer")

        async def async_(s: AsyncStream) -> tuple[Any, ...]:
            async with s:
                text = await s.final_text("answer")
                rest = [e.type async for e in s]
                return text, rest, await s.final_text("other"), await s.final_text("answer")

        text, rest, other, again = await in_thread_or_loop(stream, sync, async_)
    assert text == "Hello, world!"
    assert rest == ["step_completed", "skill_completed", "done"]
    assert (other, again) == ("side text", "Hello, world!")


async def test_final_text_after_a_fallback_and_for_steps_without_output(make_client: Callable[..., Any]) -> None:
    """A step whose model streams "draft" and then falls back (step_fallback) to a capability that streams
    nothing: final_text is "" and text() yields "draft" then a restart. A failed step's text ("oops") is
    None, a skipped step's None, a step that never ran None."""
    log = run(
        start("a"),
        delta("a", 1, 1, "draft"),
        envelope("step_fallback", RUN, "a", {"error": ERROR, "uses": "text.extract"}),
        completed("a"),
        start("b"),
        delta("b", 1, 1, "oops"),
        envelope("step_failed", RUN, "b", {"error": ERROR, "duration_ms": 1.0, "on_error": "continue"}),
        envelope("step_skipped", RUN, "c", {"reason": "condition"}),
    )
    srv = LogServer(log)
    async with srv.script:
        c = make_client(srv.script.url)
        assert [(x.text, x.restart) for x in await texts(c.runs.events(RUN), "a")] == [("draft", False), ("", True)]
        assert await final(c.runs.events(RUN), "a") == ""
        assert await final(c.runs.events(RUN), "b") is None
        assert await final(c.runs.events(RUN), "c") is None
        assert await final(c.runs.events(RUN), "never") is None


async def test_text_of_one_foreach_item_and_a_step_that_starts_over(make_client: Callable[..., Any]) -> None:
    """Items 0 and 1 of a foreach step stream at once ("zero", "one"): text(index=1) yields only "one".
    Item 0 then starts over (a second step_start, as after a server restart) and streams "ZERO": its
    text is void at once (a restart marker) and final_text(index=0) is "ZERO"."""
    log = run(
        start("each", index=0),
        start("each", index=1),
        delta("each", 1, 1, "zero", index=0),
        delta("each", 1, 1, "one", index=1),
        completed("each", index=1),
        envelope("skill_resumed", RUN, None, {"restored": 1, "rerun": 1, "resumes": 1}),
        start("each", index=0),
        delta("each", 1, 1, "ZERO", index=0),
        completed("each", index=0),
    )
    srv = LogServer(log)
    async with srv.script:
        c = make_client(srv.script.url)
        assert [x.text for x in await texts(c.runs.events(RUN), "each", index=1)] == ["one"]
        item0 = await texts(c.runs.events(RUN), "each", index=0)
        assert [(x.text, x.restart) for x in item0] == [("zero", False), ("", True), ("ZERO", False)]
        assert await final(c.runs.events(RUN), "each", index=0) == "ZERO"
        assert await final(c.runs.events(RUN), "each", index=1) == "one"
        assert len(await texts(c.runs.events(RUN), "each")) == 4


async def test_a_new_attempt_without_a_retry_event_still_restarts(make_client: Callable[..., Any]) -> None:
    """Deltas of attempt 1 ("a") followed directly by attempt 2 ("b"), no step_retrying between:
    the attempt number alone voids the old text (a restart marker, then "b")."""
    srv = LogServer(run(start("s"), delta("s", 1, 1, "a"), delta("s", 2, 1, "b"), completed("s")))
    async with srv.script:
        c = make_client(srv.script.url)
        assert [(x.text, x.attempt, x.restart) for x in await texts(c.runs.events(RUN))] == [("a", 1, False), ("", 1, True), ("b", 2, False)]
        assert await final(c.runs.events(RUN), "s") == "b"


async def test_a_second_text_after_a_break_goes_on_where_the_first_stopped(make_client: Callable[..., Any]) -> None:
    """A `break` after the first chunk ("Bonj"); a second text() on the same stream yields the chunks
    after it ("our, le" …), none twice."""
    srv = LogServer(ANSWER)
    async with srv.script:
        stream = make_client(srv.script.url).runs.events(RUN)

        def sync(s: Stream) -> tuple[list[str], list[str]]:
            first: list[str] = []
            for c in s.text("answer"):
                first.append(c.text)
                break
            return first, [c.text for c in s.text("answer")]

        async def async_(s: AsyncStream) -> tuple[list[str], list[str]]:
            first: list[str] = []
            async for c in s.text("answer"):
                first.append(c.text)
                break
            return first, [c.text async for c in s.text("answer")]

        first, rest = await in_thread_or_loop(stream, sync, async_)
    assert first == ["Bonj"]
    assert rest == ["our, le", "", "Hello, ", "wor", "ld!"]
