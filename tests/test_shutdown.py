"""SIGTERM with open streams: each ends with its final events, and the process exits
within the grace period plus a few seconds (uvicorn alone would wait forever)."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any, Callable

import httpx
import pytest

from conftest import API_KEY, Server
from sse_util import check_order, parse_sse

GRACE_S = 1.0
TICKER = "/v1/skills/demo.ticker/execute/stream"


def open_stream(url: str, inputs: dict[str, Any], out: dict[str, Any], started: threading.Event) -> None:
    try:
        with httpx.Client(timeout=30) as c:
            with c.stream("POST", url + TICKER, json={"inputs": inputs}, headers={"x-api-key": API_KEY}) as r:
                out["status"] = r.status_code
                text = ""
                for chunk in r.iter_text():
                    text += chunk
                    if "event: skill_start" in text:
                        started.set()
                out["text"] = text
                out["ended_at"] = time.monotonic()
    except Exception as exc:  # recorded and asserted on, so a cut connection fails the test
        out["error"] = repr(exc)
        started.set()


def test_sigterm_ends_every_open_stream_with_done_and_exits(server_factory: Callable[..., Server]) -> None:
    s = server_factory(env={"SKILLRUN_SHUTDOWN_GRACE_S": str(GRACE_S)})
    long_runs = [{"steps": 100, "delay_ms": 200}] * 3
    short_run = {"steps": 2, "delay_ms": 200}  # ends within the grace: completes normally
    results: list[dict[str, Any]] = [{} for _ in range(4)]
    started = [threading.Event() for _ in range(4)]
    threads = [
        threading.Thread(target=open_stream, args=(s.url, inputs, results[i], started[i]), daemon=True)
        for i, inputs in enumerate([*long_runs, short_run])
    ]
    for t in threads:
        t.start()
    assert all(e.wait(15) for e in started), results

    t0 = time.monotonic()
    s.terminate(signal.SIGTERM)
    for t in threads:
        t.join(GRACE_S + 10)
    code = s.proc.wait(GRACE_S + 10)
    exited = time.monotonic() - t0

    assert code == 0, s.log()
    assert exited < GRACE_S + 5, exited
    for i, res in enumerate(results):
        assert "error" not in res, (i, res.get("error"), s.log())
        assert res["status"] == 200
        frames, _ = parse_sse(res["text"])
        events = [f.json for f in frames]
        check_order(events)  # skill_completed then exactly one done, last
        done = events[-1]
        want = "completed" if i == 3 else "interrupted"
        assert done["status"] == want, (i, done)
        assert events[-2]["data"]["status"] == want
        if want == "interrupted":
            assert done["error"]["kind"] == "interrupted"
            # The open step is closed (step_failed, interrupted), not dropped; steps
            # that never started are step_skipped after it.
            failed = [e for e in events if e["type"] == "step_failed"]
            assert len(failed) == 1 and failed[0]["data"]["error"]["kind"] == "interrupted", failed
            tail = events[events.index(failed[0]) + 1 : -2]
            assert tail and {e["type"] for e in tail} == {"step_skipped"}, tail
        # The stream closed by itself, before the process exited.
        assert res["ended_at"] - t0 < GRACE_S + 5


def test_sigterm_with_no_streams_exits_at_once(server_factory: Callable[..., Server]) -> None:
    s = server_factory(env={"SKILLRUN_SHUTDOWN_GRACE_S": "30"})
    t0 = time.monotonic()
    s.terminate(signal.SIGTERM)
    assert s.proc.wait(10) == 0
    assert time.monotonic() - t0 < 3, "an idle server does not wait out the grace period"


def test_second_signal_interrupts_runs_at_once(server_factory: Callable[..., Server]) -> None:
    """Ctrl-C twice: no waiting out a long grace, streams still end with done, no traceback."""
    s = server_factory(env={"SKILLRUN_SHUTDOWN_GRACE_S": "30"})
    result: dict[str, Any] = {}
    started = threading.Event()
    t = threading.Thread(target=open_stream, args=(s.url, {"steps": 100, "delay_ms": 200}, result, started), daemon=True)
    t.start()
    assert started.wait(15), result
    t0 = time.monotonic()
    s.terminate(signal.SIGINT)
    time.sleep(0.3)
    s.terminate(signal.SIGINT)
    t.join(15)
    code = s.proc.wait(15)
    assert time.monotonic() - t0 < 4
    assert code == 0
    assert "Traceback" not in s.log(), s.log()
    assert "error" not in result, result
    events = [f.json for f in parse_sse(result["text"])[0]]
    check_order(events)
    assert events[-1]["status"] == "interrupted"


def test_sigterm_stops_accepting_refuses_new_runs_and_ends_followers_too(
    server_factory: Callable[..., Server],
) -> None:
    """During the grace: no new connection is accepted, a new run on a kept-alive
    connection is a 503 problem, and a second viewer (GET /v1/runs/{id}/events) of an
    async run gets its final events like the run's own stream."""
    grace = 2.0
    s = server_factory(env={"SKILLRUN_SHUTDOWN_GRACE_S": str(grace)})
    headers = {"x-api-key": API_KEY}
    with httpx.Client(base_url=s.url, headers=headers, timeout=30) as kept:
        run_id = kept.post("/v1/skills/demo.ticker/execute/async",
                           json={"inputs": {"steps": 100, "delay_ms": 200}}).json()["run_id"]
        follower: dict[str, Any] = {}

        def follow() -> None:
            with httpx.stream("GET", f"{s.url}/v1/runs/{run_id}/events", headers=headers, timeout=30) as r:
                follower["text"] = "".join(r.iter_text())

        t = threading.Thread(target=follow, daemon=True)
        t.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        s.terminate(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.ConnectError):
            httpx.get(s.url + "/v1/health/live", timeout=2)
        refused = kept.post(TICKER, json={"inputs": {"steps": 1}})
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.headers["retry-after"]
        t.join(grace + 10)
    assert s.proc.wait(grace + 10) == 0
    assert time.monotonic() - t0 < grace + 5
    events = [f.json for f in parse_sse(follower["text"])[0]]
    check_order(events)
    assert events[-1]["status"] == "interrupted" and events[-1]["run_id"] == run_id
