"""The CLI and ``step_delta``: a running step's text grows under its row, progress beside it;
``--json`` prints the deltas as events. The log is served by the scripted log server of
``test_pyclient_text`` (a real socket, resume included)."""

from __future__ import annotations

import io
import json
from typing import Any

import anyio
import pytest
from rich.console import Console

from skillrun_client import Event, StepDeltaEvent
from skillrun_client._types import EVENT_ADAPTER
from skillrun_client._cli import TEXT_LINES, LiveView, main

from .conftest import API_KEY
from .test_pyclient_text import ANSWER, RUN, LogServer, delta, start

pytestmark = pytest.mark.anyio


def watch(url: str, *args: str, live: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=100) if live else None
    code = main(["--base-url", url, "--api-key", API_KEY, "watch", RUN, *args], stdout=out, console=console)
    return code, out.getvalue()


def shown(view: LiveView) -> str:
    out = io.StringIO()
    Console(file=out, force_terminal=False, width=100).print(view.render())
    return out.getvalue()


async def test_json_prints_every_delta_as_an_event_line_even_across_a_cut() -> None:
    """`watch RUN --json` on a log with eight step_delta events, its connection reset inside the
    fourth event: every delta is one JSON line, once, with attempt, sequence and delta as sent."""
    srv = LogServer(ANSWER)
    srv.cuts = [srv.offset(4, 30)]
    async with srv.script:
        code, out = await anyio.to_thread.run_sync(lambda: watch(srv.script.url, "--json"))
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [e["type"] for e in lines] == [e["type"] for e in ANSWER]
    deltas = [_sent(e["data"]) for e in lines if e["type"] == "step_delta"]
    assert deltas == [e["data"] for e in ANSWER if e["type"] == "step_delta"]
    assert len(srv.requests) == 2


def test_live_view_grows_a_steps_text_under_its_row_and_clears_a_failed_attempts() -> None:
    """The live view after each event of the hostile log: "Bonj" then "Bonjour, le" under `answer`'s
    row; after step_retrying that text is gone; then "Hello, wor" with "running 70%" beside the row;
    `other` shows "running 50%" while only progress has come; once a step ends its text leaves the view."""
    view = LiveView("demo.chat")
    s = []  # the screen after each step event
    for raw in ANSWER:
        if raw.get("step_id") is not None:
            view.apply(_typed(raw))
            s.append(shown(view))
    assert "Bonj" in s[1] and "Bonjour, le" in s[2]
    assert "Bonj" not in s[3] and "running" in s[3]  # step_retrying cleared the failed attempt's text
    assert "running 50%" in s[5] and "side" not in s[5]  # progress only, no text yet
    assert "Hello, wor" in s[8] and "running 70%" in s[8]
    assert "Hello, world!" in s[10]
    assert "Hello" not in s[11] and "✓" in s[11]  # ended: the outputs table shows the result
    # The text sits on a line of its own under the row.
    row_line = next(i for i, line in enumerate(s[10].splitlines()) if "answer" in line)
    assert "Hello, world!" in s[10].splitlines()[row_line + 1]


def test_live_view_shows_only_the_tail_of_a_long_text() -> None:
    """A model that streams 50 lines: the view shows the last TEXT_LINES of them, so it keeps its height."""
    view = LiveView("s")
    view.apply(_typed(start("long")))
    view.apply(StepDeltaEvent.model_validate(delta("long", 1, 1, "".join(f"line {i}\n" for i in range(50)))))
    screen = shown(view)
    assert "line 49" in screen and f"line {49 - TEXT_LINES + 1}" in screen and f"line {49 - TEXT_LINES}" not in screen


async def test_live_watch_of_a_streaming_run_ends_with_its_outcome() -> None:
    """`watch RUN` (live, no terminal) on the hostile log exits 0 and prints the outcome, not the
    transient text of a step that has ended."""
    srv = LogServer(ANSWER)
    async with srv.script:
        code, out = await anyio.to_thread.run_sync(lambda: watch(srv.script.url, live=True))
    assert code == 0 and "answer" in out and "other" in out and "completed" in out
    assert "Hello" not in out


def _sent(value: object) -> object:
    """``value`` without the nulls the models print for fields the server did not send."""
    if isinstance(value, dict):
        return {k: _sent(v) for k, v in value.items() if v is not None}
    return value


def _typed(raw: dict[str, Any]) -> Event:
    return EVENT_ADAPTER.validate_python(raw)
