"""Runs survive the process on the SQLite store: kill -9 mid-run then restart (the run
goes on from its log; or, where it cannot, is interrupted with its log closed with done),
finished runs and their events after a kill, SIGTERM drain, and a client that stops
reading is disconnected after send_timeout."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from conftest import API_KEY, Server
from sse_util import Frame, check_order, parse_sse

HEADERS = {"x-api-key": API_KEY}
TICKER = "/v1/skills/demo.ticker"


def _get_run(server: Server, run_id: str) -> dict[str, Any]:
    r = httpx.get(f"{server.url}/v1/runs/{run_id}", headers=HEADERS, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def _events(server: Server, run_id: str) -> list[Frame]:
    r = httpx.get(f"{server.url}/v1/runs/{run_id}/events", headers=HEADERS, timeout=30)
    assert r.status_code == 200, r.text
    return parse_sse(r.text)[0]


def _stream_some(server: Server, body: dict[str, Any], keep: int) -> tuple[str, list[Frame]]:
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", server.url + TICKER + "/execute/stream", json=body, headers=HEADERS) as r:
            text = ""
            for chunk in r.iter_text():
                text += chunk
                frames = parse_sse(text)[0]
                if len(frames) >= keep:
                    return r.headers["x-run-id"], frames
    raise AssertionError("stream ended early")


def _kill9(server: Server) -> None:
    server.terminate(signal.SIGKILL)
    server.proc.wait(10)


def test_kill_9_after_item_5_then_restart_finishes_the_run_without_running_items_0_to_4_again(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """Issue 15: a 10-item demo.ticker with delay_ms killed after item 5 -> on restart it
    finishes with items 0-4 not re-run, and a stream resumed with Last-Event-ID across
    the crash sees every event once."""
    first = server_factory()
    # skill_start, items 0-4 (start + completed each), item 5's start.
    run_id, seen = _stream_some(first, {"inputs": {"steps": 10, "delay_ms": 300}}, 12)
    _kill9(first)
    assert (tmp_path / ".skillrun" / "skillrun.db").exists()  # the default place, in the working dir

    second = server_factory()  # same working directory, so the same database
    r = httpx.get(f"{second.url}/v1/runs/{run_id}/events", headers={**HEADERS, "Last-Event-ID": seen[-1].id},
                  timeout=30)
    rest = parse_sse(r.text)[0]
    frames = [*seen, *rest]
    assert [int(f.id) for f in frames] == list(range(1, len(frames) + 1))  # each event once, none lost
    events = [f.json for f in frames]
    check_order(events)
    assert [e["type"] for e in events].count("skill_resumed") == 1
    seam = next(e for e in events if e["type"] == "skill_resumed")
    assert seam["data"] == {"restored": 5, "rerun": 1, "resumes": 1}
    starts = [e["data"]["index"] for e in events if e["type"] == "step_start"]
    assert sorted(starts) == [0, 1, 2, 3, 4, 5, 5, 6, 7, 8, 9]  # only item 5, in flight, ran twice
    run = _get_run(second, run_id)
    assert run["status"] == "completed" and run["result"]["outputs"] == {"ticks": 10}
    assert events[-1] == {**run["result"], "type": "done", "message": "Skill 'demo.ticker' completed."}
    assert "1 resumed" in second.log()


def test_kill_9_mid_run_then_restart_without_resumes_marks_it_interrupted_and_closes_its_log(
    server_factory: Callable[..., Server],
) -> None:
    """Where a run cannot go on (here: SKILLRUN_MAX_RESUMES=0), its log is closed."""
    first = server_factory()
    run_id, seen = _stream_some(first, {"inputs": {"steps": 1000, "delay_ms": 20}}, 9)
    _kill9(first)

    second = server_factory(env={"SKILLRUN_MAX_RESUMES": "0"})  # same working directory: same database
    run = _get_run(second, run_id)
    assert run["status"] == "interrupted"
    assert run["result"]["status"] == "interrupted" and run["result"]["error"]["kind"] == "interrupted"
    frames = _events(second, run_id)
    events = [f.json for f in frames]
    check_order(events)  # the open step got its step_failed; then skill_completed and done
    assert [int(f.id) for f in frames] == list(range(1, len(frames) + 1))
    assert events[-2]["data"]["status"] == "interrupted" and events[-1]["status"] == "interrupted"
    # Everything a client saw before the kill is in the log, unchanged.
    assert [(f.id, f.data) for f in frames[: len(seen)]] == [(f.id, f.data) for f in seen]
    assert "interrupted" in second.log()


def test_finished_runs_and_their_events_survive_kill_9(server_factory: Callable[..., Server]) -> None:
    first = server_factory()
    done = httpx.post(first.url + TICKER + "/execute", json={"inputs": {"steps": 3}}, headers=HEADERS, timeout=30)
    streamed = httpx.post(first.url + TICKER + "/execute/stream", json={"inputs": {"steps": 2}}, headers=HEADERS)
    before = parse_sse(streamed.text)[0]
    _kill9(first)  # no clean close: what was answered must already be on disk

    second = server_factory()
    run = _get_run(second, done.headers["x-run-id"])
    assert run["status"] == "completed" and run["result"] == done.json()
    after = _events(second, streamed.headers["x-run-id"])
    assert [(f.id, f.event, f.data) for f in after] == [(f.id, f.event, f.data) for f in before]
    listed = httpx.get(second.url + "/v1/runs", headers=HEADERS).json()["runs"]
    assert {r["run_id"] for r in listed} == {done.headers["x-run-id"], streamed.headers["x-run-id"]}


def test_sigterm_interrupts_runs_after_the_grace_and_every_stream_ends_with_done(
    server_factory: Callable[..., Server],
) -> None:
    first = server_factory(env={"SKILLRUN_SHUTDOWN_GRACE_S": "1"})
    with httpx.Client(timeout=30) as client:
        with client.stream(
            "POST", first.url + TICKER + "/execute/stream",
            json={"inputs": {"steps": 1000, "delay_ms": 20}}, headers=HEADERS,
        ) as r:
            run_id = r.headers["x-run-id"]
            text = ""
            signalled = None
            for chunk in r.iter_text():
                text += chunk
                if signalled is None and len(parse_sse(text)[0]) >= 5:
                    first.terminate(signal.SIGTERM)
                    signalled = time.monotonic()
    assert signalled is not None
    events = [f.json for f in parse_sse(text)[0]]
    check_order(events)
    assert events[-1]["status"] == "interrupted"
    first.proc.wait(15)
    assert time.monotonic() - signalled < 1 + 8  # grace + a few seconds

    second = server_factory(env={"SKILLRUN_SHUTDOWN_GRACE_S": "1"})
    assert _get_run(second, run_id)["status"] == "interrupted"
    assert [f.json for f in _events(second, run_id)] == events


def test_a_client_that_stops_reading_is_disconnected_after_send_timeout(
    server_factory: Callable[..., Server],
) -> None:
    server = server_factory(env={"SKILLRUN_SEND_TIMEOUT_S": "1"})
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fill up fast
    sock.connect(("127.0.0.1", server.port))
    body = b'{"inputs": {"steps": 10000, "delay_ms": 0}}'
    sock.sendall(
        b"POST " + TICKER.encode() + b"/execute/stream HTTP/1.1\r\nHost: x\r\n"
        b"x-api-key: " + API_KEY.encode() + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    head = sock.recv(2048).decode(errors="replace")
    run_id = head.lower().split("x-run-id: ", 1)[1].split("\r\n", 1)[0]
    # The run goes on without its stuck client ...
    deadline = time.monotonic() + 60
    while _get_run(server, run_id)["finished_at"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(2)
    # ... and the server has hung up on it: reading now drains the buffers and hits EOF
    # before the end of the stream.
    sock.settimeout(10)
    received = head.encode()
    while data := sock.recv(1 << 16):
        received += data
    sock.close()
    assert b"event: done" not in received
    assert _get_run(server, run_id)["status"] == "completed"


def test_finished_runs_older_than_the_retention_are_purged(server_factory: Callable[..., Server]) -> None:
    server = server_factory(env={"SKILLRUN_RUN_RETENTION": "1s"})
    r = httpx.post(server.url + TICKER + "/execute", json={"inputs": {"steps": 1}}, headers=HEADERS, timeout=30)
    run_id = r.headers["x-run-id"]
    assert _get_run(server, run_id)["status"] == "completed"
    deadline = time.monotonic() + 15
    while httpx.get(f"{server.url}/v1/runs/{run_id}", headers=HEADERS).status_code != 404:
        assert time.monotonic() < deadline, "never purged"
        time.sleep(0.25)
    assert httpx.get(f"{server.url}/v1/runs/{run_id}/events", headers=HEADERS).status_code == 404


def test_execute_with_on_disconnect_cancel_cancels_when_the_client_gives_up(
    server_factory: Callable[..., Server],
) -> None:
    server = server_factory()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            server.url + TICKER + "/execute",
            json={"inputs": {"steps": 500, "delay_ms": 20}, "options": {"on_disconnect": "cancel"}},
            headers=HEADERS,
            timeout=httpx.Timeout(30, read=0.5),
        )
    run_id = httpx.get(server.url + "/v1/runs", headers=HEADERS).json()["runs"][0]["run_id"]
    deadline = time.monotonic() + 10
    while (run := _get_run(server, run_id))["finished_at"] is None:
        assert time.monotonic() < deadline, "the run went on after its client left"
        time.sleep(0.1)
    assert run["status"] == "cancelled"


def test_bad_retention_setting_stops_serve_with_a_clear_message(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "skillrun", "serve", "--port", "0"],
        env={**os.environ, "SKILLRUN_API_KEYS": API_KEY, "SKILLRUN_RUN_RETENTION": "soon"},
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert out.returncode == 2
    assert "SKILLRUN_RUN_RETENTION" in out.stderr and "7d" in out.stderr
