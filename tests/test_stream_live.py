"""The stream against a real uvicorn server: headers, trace ids, heartbeats,
events delivered as they happen, and the run's own timeout.

ASGITransport buffers whole responses, so everything about timing is measured
here against ``skillrun serve`` in a subprocess, read incrementally.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Iterator

import httpx
import pytest

from conftest import API_KEY, Server
from sse_util import check_order, parse_sse

TICKER = "/v1/skills/demo.ticker"
SUMMARIZE = "/v1/skills/text.summarize"
KEY = {"x-api-key": API_KEY}


@dataclass
class Arrival:
    """One SSE block (a frame or a comment) and when its last byte arrived."""

    at: float
    text: str

    @property
    def is_comment(self) -> bool:
        return all(line.startswith(":") for line in self.text.splitlines() if line)

    @property
    def event(self) -> dict[str, Any]:
        frames, _ = parse_sse(self.text + "\n\n")
        assert len(frames) == 1, self.text
        return dict(frames[0].json)


def read_blocks(r: httpx.Response, t0: float) -> Iterator[Arrival]:
    """Blocks as they arrive (a blank line ends each), timed from ``t0``."""
    buffer = ""
    for chunk in r.iter_raw():
        now = time.monotonic() - t0
        buffer += chunk.decode("utf-8").replace("\r\n", "\n")
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            yield Arrival(now, block)
    assert buffer.strip() == "", f"stream ended mid-frame: {buffer!r}"


def stream(url: str, body: dict[str, Any], headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[httpx.Response, list[Arrival]]:
    t0 = time.monotonic()
    with httpx.Client(timeout=timeout) as c:
        with c.stream("POST", url, json=body, headers={**KEY, **(headers or {})}) as r:
            assert r.status_code == 200, r.read()
            blocks = list(read_blocks(r, t0))
    return r, blocks


def events_of(blocks: list[Arrival]) -> list[dict[str, Any]]:
    return [b.event for b in blocks if not b.is_comment]


# -- headers -----------------------------------------------------------------------


def test_stream_headers_and_no_compression(server: Server) -> None:
    """The seed's headers plus X-Accel-Buffering; gzip would buffer events, so never."""
    with httpx.Client(timeout=10) as c:
        with c.stream(
            "POST",
            server.url + SUMMARIZE + "/execute/stream",
            json={"inputs": {"text": "Streams are not compressed. " * 200}},
            headers={**KEY, "Accept-Encoding": "gzip, deflate, br"},
        ) as r:
            raw = b"".join(r.iter_raw())
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0] == "text/event-stream"
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["x-accel-buffering"] == "no"
    assert r.headers["connection"] == "keep-alive"  # listed by the seed
    assert "content-encoding" not in r.headers
    assert "content-length" not in r.headers  # streamed, not sized up front
    assert raw.startswith(b"id: 1\nevent: skill_start\ndata: {")  # plain text on the wire
    assert r.headers["x-run-id"].startswith("run_")


def test_execute_is_json_and_keeps_its_content_type(server: Server) -> None:
    r = httpx.post(server.url + SUMMARIZE + "/execute", json={"inputs": {"text": "One. Two."}}, headers=KEY, timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"


# -- trace ids -----------------------------------------------------------------------


def test_trace_id_from_header_is_everywhere_on_the_stream(server: Server) -> None:
    r, blocks = stream(
        server.url + "/v1/skills/demo.showcase/execute/stream",
        {"inputs": {"text": "Mail bob@example.com please. Then stop.", "detailed": True}},
        headers={"x-trace-id": "trace-from-client-42"},
    )
    events = events_of(blocks)
    check_order(events)
    assert r.headers["x-trace-id"] == "trace-from-client-42"
    assert [e["trace_id"] for e in events] == ["trace-from-client-42"] * len(events)
    assert events[-1]["type"] == "done"


def test_trace_id_from_header_on_execute(server: Server) -> None:
    r = httpx.post(
        server.url + SUMMARIZE + "/execute",
        json={"inputs": {"text": "One. Two."}},
        headers={**KEY, "x-trace-id": "exec-trace-7"},
        timeout=10,
    )
    assert r.status_code == 200
    assert r.headers["x-trace-id"] == "exec-trace-7"
    assert r.json()["trace_id"] == "exec-trace-7"


def test_trace_id_is_generated_when_absent(server: Server) -> None:
    seen = set()
    for _ in range(2):
        r, blocks = stream(server.url + TICKER + "/execute/stream", {"inputs": {"steps": 2}})
        events = events_of(blocks)
        trace = r.headers["x-trace-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", trace), trace
        assert {e["trace_id"] for e in events} == {trace}
        seen.add(trace)
    r = httpx.post(server.url + TICKER + "/execute", json={"inputs": {"steps": 1}}, headers=KEY, timeout=10)
    assert r.headers["x-trace-id"] == r.json()["trace_id"]
    seen.add(r.headers["x-trace-id"])
    assert len(seen) == 3, "every run gets its own trace id"


# -- delivery as it happens ---------------------------------------------------------------


def test_events_arrive_spaced_in_time_not_buffered(server: Server) -> None:
    """demo.ticker sleeps 300 ms a step: each step_completed arrives ~300 ms after the last."""
    steps, delay = 4, 0.3
    _, blocks = stream(server.url + TICKER + "/execute/stream", {"inputs": {"steps": steps, "delay_ms": int(delay * 1000)}})
    frames = [b for b in blocks if not b.is_comment]
    types = [b.event["type"] for b in frames]
    assert types == ["skill_start"] + ["step_start", "step_completed"] * steps + ["skill_completed", "done"]
    completed = [b.at for b in frames if b.event["type"] == "step_completed"]
    # The first event comes at once, long before the run ends.
    assert frames[0].at < delay, frames[0].at
    assert frames[-1].at >= steps * delay * 0.95
    gaps = [b - a for a, b in zip(completed, completed[1:])]
    assert all(g >= delay * 0.7 for g in gaps), gaps
    # Spread across the run, not bunched at its end.
    assert completed[0] < frames[-1].at - (steps - 1) * delay * 0.7


# -- heartbeat ---------------------------------------------------------------


@pytest.fixture(scope="module")
def ping_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from conftest import start_server

    s = start_server(tmp_path_factory.mktemp("ping"), env={"SKILLRUN_HEARTBEAT_S": "0.15"})
    yield s
    s.stop()


def test_heartbeat_ping_while_idle(ping_server: Server) -> None:
    """With SKILLRUN_HEARTBEAT_S=0.15, a step sleeping 0.7 s gets `: ping` comments meanwhile."""
    _, blocks = stream(ping_server.url + TICKER + "/execute/stream", {"inputs": {"steps": 2, "delay_ms": 700}})
    kinds = ["ping" if b.is_comment else b.event["type"] for b in blocks]
    assert all(b.text == ": ping" for b in blocks if b.is_comment)
    # Pings fall inside each step (between its start and its end), several per second.
    first_start = kinds.index("step_start")
    first_end = kinds.index("step_completed")
    assert kinds[first_start + 1 : first_end].count("ping") >= 3, kinds
    assert kinds.count("ping") >= 6, kinds
    assert kinds[-1] == "done"
    pings = [b.at for b in blocks if b.is_comment]
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    assert max(gaps) < 0.45, gaps  # regular, not one burst at the end
    check_order(events_of(blocks))


def test_no_ping_when_events_keep_flowing(ping_server: Server) -> None:
    _, blocks = stream(ping_server.url + TICKER + "/execute/stream", {"inputs": {"steps": 20, "delay_ms": 0}})
    assert not [b for b in blocks if b.is_comment]


def test_default_heartbeat_is_quiet_for_short_gaps(server: Server) -> None:
    """The default (15 s) sends no ping during a 0.5 s step."""
    _, blocks = stream(server.url + TICKER + "/execute/stream", {"inputs": {"steps": 1, "delay_ms": 500}})
    assert not [b for b in blocks if b.is_comment]


# -- the run's own time limit -----------------------------------------------------------


def test_timeout_ms_fails_the_run_with_kind_timeout_on_the_stream(server: Server) -> None:
    t0 = time.monotonic()
    _, blocks = stream(
        server.url + TICKER + "/execute/stream",
        {"inputs": {"steps": 5, "delay_ms": 400}, "options": {"timeout_ms": 600}},
    )
    elapsed = time.monotonic() - t0
    events = events_of(blocks)
    check_order(events)
    types = [e["type"] for e in events]
    assert types[-2:] == ["skill_completed", "done"]
    # The step running at the deadline fails; the steps that never started are skipped.
    (failed,) = [e for e in events if e["type"] == "step_failed"]
    assert failed["data"]["error"]["kind"] == "timeout"
    not_run = types[types.index("step_failed") + 1 : -2]
    assert not_run and set(not_run) == {"step_skipped"}, not_run
    assert events[-2]["data"]["status"] == "failed"
    done = events[-1]
    assert done["status"] == "failed"
    assert done["error"]["kind"] == "timeout"
    assert 0.55 <= elapsed < 1.5, elapsed  # ended by the timeout, not by running all 2 s


def test_timeout_ms_fails_the_run_with_kind_timeout_on_execute(server: Server) -> None:
    r = httpx.post(
        server.url + TICKER + "/execute",
        json={"inputs": {"steps": 3, "delay_ms": 500}, "options": {"timeout_ms": 300}},
        headers=KEY,
        timeout=10,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "failed"
    assert body["error"]["kind"] == "timeout"
    assert body["duration_ms"] < 1000


def test_timeout_ms_not_reached_completes(server: Server) -> None:
    r = httpx.post(
        server.url + TICKER + "/execute",
        json={"inputs": {"steps": 2, "delay_ms": 10}, "options": {"timeout_ms": 5000}},
        headers=KEY,
        timeout=10,
    )
    assert r.json()["status"] == "completed"


# -- the stream ends by itself ----------------------------------------------------------


def test_server_closes_the_response_after_done(server: Server) -> None:
    """The response ends right after `done`: a reader without a timeout does not hang."""
    t0 = time.monotonic()
    with httpx.Client(timeout=None) as c:
        with c.stream("POST", server.url + TICKER + "/execute/stream", json={"inputs": {"steps": 3}}, headers=KEY) as r:
            blocks = list(read_blocks(r, t0))
            ended = time.monotonic() - t0
    events = events_of(blocks)
    assert events[-1]["type"] == "done"
    assert ended - blocks[-1].at < 0.5
    ids = [int(parse_sse(b.text + "\n\n")[0][0].id or 0) for b in blocks if not b.is_comment]
    assert ids == list(range(1, len(ids) + 1))
