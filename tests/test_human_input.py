"""Issue 15, "Steps that wait for input": ``human.input``, ``step_waiting``, the
``waiting`` run status and ``POST /v1/runs/{run_id}/input``, against a real server."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from conftest import API_KEY, OTHER_KEY, Server, start_server
from sse_util import check_order, parse_sse

HEADERS = {"x-api-key": API_KEY}
SKILLS = Path(__file__).parent / "waiting_skills"
TEXT = "Skillrun runs skills. Each step is an event. Some steps wait for people. The rest run alone."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("waits"), args=["--skills", str(SKILLS), "--db", ":memory:"])
    yield s
    s.stop()


def _start(server: Server, skill: str, inputs: dict[str, Any]) -> str:
    r = httpx.post(f"{server.url}/v1/skills/{skill}/execute/async", json={"inputs": inputs}, headers=HEADERS,
                   timeout=10)
    assert r.status_code == 202, r.text
    return str(r.json()["run_id"])


def _run(server: Server, run_id: str, wait: float = 0) -> dict[str, Any]:
    r = httpx.get(f"{server.url}/v1/runs/{run_id}", params={"wait": wait} if wait else None, headers=HEADERS,
                  timeout=wait + 10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _events(server: Server, run_id: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{server.url}/v1/runs/{run_id}/events", headers=HEADERS, timeout=30)
    assert r.status_code == 200, r.text
    return [f.json for f in parse_sse(r.text)[0]]


def _until_waiting(server: Server, run_id: str, count: int = 1) -> list[dict[str, Any]]:
    """The run's ``step_waiting`` events once ``count`` are open and it is ``waiting``."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if _run(server, run_id)["status"] == "waiting":
            waits = [e for e in _open_log(server, run_id) if e["type"] == "step_waiting"]
            if len(waits) >= count:
                return waits
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never waited for {count} answer(s): {_run(server, run_id)}")


def _open_log(server: Server, run_id: str) -> list[dict[str, Any]]:
    """The events so far of a log still open (its stream would not end): read for a moment."""
    text = ""
    try:
        with httpx.stream("GET", f"{server.url}/v1/runs/{run_id}/events", headers=HEADERS,
                          timeout=httpx.Timeout(10, read=0.3)) as r:
            for chunk in r.iter_text():
                text += chunk
    except httpx.ReadTimeout:
        pass
    return [f.json for f in parse_sse(text)[0]]


def _answer(server: Server, run_id: str, body: dict[str, Any], key: str = API_KEY) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/runs/{run_id}/input", json=body, headers={"x-api-key": key}, timeout=40)


def test_approve_publishes_the_summary(server: Server) -> None:
    """demo.approval waits with step_waiting (prompt, schema, answer_url), the run is
    ``waiting``; answering {approve: true} is 202 and the run completes with the summary."""
    run_id = _start(server, "demo.approval", {"text": TEXT})
    (waiting,) = _until_waiting(server, run_id)
    assert waiting["step_id"] == "ask"
    assert waiting["data"]["answer_url"] == f"/v1/runs/{run_id}/input"
    assert waiting["data"]["prompt"].startswith("Publish this summary? ")
    assert waiting["data"]["schema"]["required"] == ["approve"]
    assert waiting["data"]["expires_at"].endswith("Z")
    r = _answer(server, run_id, {"step_id": "ask", "value": {"approve": True}})
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/v1/runs/{run_id}"
    assert r.json()["status"] in ("running", "completed")
    run = _run(server, run_id, wait=10)
    assert run["status"] == "completed"
    assert run["result"]["outputs"]["decision"] == "published"
    assert run["result"]["outputs"]["summary"]
    events = _events(server, run_id)
    check_order(events)
    done_ask = next(e for e in events if e["type"] == "step_completed" and e["step_id"] == "ask")
    assert done_ask["data"]["produced_output"] == {"approve": True}
    assert done_ask["data"]["waited_ms"] >= 0
    assert [e["step_id"] for e in events if e["type"] == "step_skipped"] == ["reject"]


def test_reject_ends_with_the_reason(server: Server) -> None:
    """{approve: false, comment: "too long"} -> the run completes rejected, reason "too long", nothing published."""
    run_id = _start(server, "demo.approval", {"text": TEXT})
    _until_waiting(server, run_id)
    r = _answer(server, run_id, {"step_id": "ask", "value": {"approve": False, "comment": "too long"}})
    assert r.status_code == 202, r.text
    run = _run(server, run_id, wait=10)
    assert run["status"] == "completed"
    assert run["result"]["outputs"] == {"decision": "rejected", "reason": "too long"}


def test_an_answer_that_breaks_the_schema_is_422_naming_the_field(server: Server) -> None:
    """{approve: "yes"} is 422 naming value.approve ({} names value, a body without
    step_id names step_id); the step still waits and takes a good answer."""
    run_id = _start(server, "demo.approval", {"text": TEXT})
    _until_waiting(server, run_id)
    r = _answer(server, run_id, {"step_id": "ask", "value": {"approve": "yes"}})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"][0]["field"] == "value.approve"
    assert _run(server, run_id)["status"] == "waiting"
    missing = _answer(server, run_id, {"step_id": "ask", "value": {}})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "value"
    no_step = _answer(server, run_id, {"value": {"approve": True}})
    assert no_step.status_code == 422 and no_step.json()["errors"][0]["field"] == "step_id", no_step.text
    assert _answer(server, run_id, {"step_id": "ask", "value": {"approve": True}}).status_code == 202
    assert _run(server, run_id, wait=10)["status"] == "completed"


def test_a_second_answer_is_409(server: Server) -> None:
    """Answering the same step twice: 202, then 409 (the step no longer waits)."""
    run_id = _start(server, "demo.approval", {"text": TEXT})
    _until_waiting(server, run_id)
    assert _answer(server, run_id, {"step_id": "ask", "value": {"approve": True}}).status_code == 202
    again = _answer(server, run_id, {"step_id": "ask", "value": {"approve": False}})
    assert again.status_code == 409, again.text
    assert _run(server, run_id, wait=10)["result"]["outputs"]["decision"] == "published"


def test_an_answer_to_a_step_that_is_not_waiting_is_409(server: Server) -> None:
    """step_id "draft" (a step that never waits) and "nope" (no such step) are 409."""
    run_id = _start(server, "demo.approval", {"text": TEXT})
    _until_waiting(server, run_id)
    for step_id in ("draft", "nope"):
        r = _answer(server, run_id, {"step_id": step_id, "value": {"approve": True}})
        assert r.status_code == 409, r.text
        assert "does not wait for input" in r.json()["detail"]
    httpx.post(f"{server.url}/v1/runs/{run_id}/cancel", headers=HEADERS, timeout=10)


def test_another_key_cannot_answer_404(server: Server) -> None:
    """Another key's answer is 404 (the run is not visible to it) and changes nothing."""
    run_id = _start(server, "demo.approval", {"text": TEXT})
    _until_waiting(server, run_id)
    r = _answer(server, run_id, {"step_id": "ask", "value": {"approve": True}}, key=OTHER_KEY)
    assert r.status_code == 404, r.text
    assert _run(server, run_id)["status"] == "waiting"
    httpx.post(f"{server.url}/v1/runs/{run_id}/cancel", headers=HEADERS, timeout=10)
    assert _run(server, run_id, wait=10)["status"] == "cancelled"


def test_timeout_fails_the_step_with_kind_timeout_and_on_error_applies(server: Server) -> None:
    """timeout: 0.3 and no answer -> step_failed kind timeout (with waited_ms); on_error:
    continue lets the run complete; a late answer is 409."""
    run_id = _start(server, "test.wait_timeout", {})
    run = _run(server, run_id, wait=15)
    assert run["status"] == "completed", run
    assert run["result"]["outputs"] == {"after": True}
    events = _events(server, run_id)
    check_order(events)
    failed = next(e for e in events if e["type"] == "step_failed")
    assert failed["data"]["error"]["kind"] == "timeout" and failed["data"]["on_error"] == "continue"
    assert failed["data"]["waited_ms"] >= 250
    assert _answer(server, run_id, {"step_id": "ask", "value": {}}).status_code == 409


def test_foreach_items_are_answered_by_step_id_and_index(server: Server) -> None:
    """Two items wait at once (the run is ``waiting`` until both are answered); each
    is answered by step_id + index, and the outputs keep the item order."""
    run_id = _start(server, "test.wait_each", {"items": ["a", "b"]})
    waits = _until_waiting(server, run_id, 2)
    assert sorted(w["data"]["index"] for w in waits) == [0, 1]
    assert _answer(server, run_id, {"step_id": "ask", "index": 1, "value": {"n": 11}}).status_code == 202
    assert _run(server, run_id)["status"] == "waiting"  # item 0 still waits
    assert _answer(server, run_id, {"step_id": "ask", "value": {"n": 0}}).status_code == 409  # no index
    assert _answer(server, run_id, {"step_id": "ask", "index": 0, "value": {"n": 10}}).status_code == 202
    run = _run(server, run_id, wait=10)
    assert run["status"] == "completed"
    assert run["result"]["outputs"]["answers"] == [{"n": 10}, {"n": 11}]


def test_a_nested_step_is_answered_by_its_full_step_id(server: Server) -> None:
    """A nested skill's waiting step is answered as "inner/ask"; plain "ask" is 409."""
    run_id = _start(server, "test.wait_nested", {})
    (waiting,) = _until_waiting(server, run_id)
    assert waiting["step_id"] == "inner/ask" and waiting["data"]["parent_step_id"] == "inner"
    assert _answer(server, run_id, {"step_id": "ask", "value": {"ok": True}}).status_code == 409
    assert _answer(server, run_id, {"step_id": "inner/ask", "value": {"ok": True}}).status_code == 202
    run = _run(server, run_id, wait=10)
    assert run["status"] == "completed" and run["result"]["outputs"] == {"ok": True}


def test_waiting_runs_are_listed_with_status_waiting(server: Server) -> None:
    """?status=waiting lists the waiting run (and not after it was answered)."""
    run_id = _start(server, "demo.approval", {"text": TEXT})
    _until_waiting(server, run_id)

    def listed() -> list[str]:
        r = httpx.get(f"{server.url}/v1/runs", params={"status": "waiting", "limit": 100}, headers=HEADERS,
                      timeout=10)
        assert r.status_code == 200, r.text
        assert all(run["status"] == "waiting" for run in r.json()["runs"])
        return [run["run_id"] for run in r.json()["runs"]]

    assert run_id in listed()
    assert _answer(server, run_id, {"step_id": "ask", "value": {"approve": True}}).status_code == 202
    _run(server, run_id, wait=10)
    assert run_id not in listed()


def test_kill_9_while_waiting_then_restart_and_answer_completes_once(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """kill -9 while demo.approval waits, restart, answer -> completes; the log has
    exactly one done, no step that completed before the crash ran again, and the step
    waits again with the same expires_at."""
    first = server_factory()
    run_id = _start(first, "demo.approval", {"text": TEXT})
    _until_waiting(first, run_id)
    first.terminate(signal.SIGKILL)
    first.proc.wait(10)

    second = server_factory()  # same working directory, so the same SQLite database
    waits = _until_waiting(second, run_id, 2)  # the step started over and waits again
    assert waits[-1]["step_id"] == "ask"
    assert waits[-1]["data"]["expires_at"] == waits[0]["data"]["expires_at"]  # the wait keeps its deadline
    r = _answer(second, run_id, {"step_id": "ask", "value": {"approve": True}})
    assert r.status_code == 202, r.text
    run = _run(second, run_id, wait=10)
    assert run["status"] == "completed" and run["result"]["outputs"]["decision"] == "published"
    events = _events(second, run_id)
    check_order(events)
    assert [e["type"] for e in events].count("done") == 1
    assert [e["type"] for e in events].count("skill_resumed") == 1
    starts = [e["step_id"] for e in events if e["type"] == "step_start"]
    assert starts.count("split") == 1 and starts.count("draft") == 1  # completed before the crash: kept
    assert starts.count("ask") == 2 and starts.count("publish") == 1


def test_a_waiting_run_holds_no_running_place(server_factory: Callable[..., Server]) -> None:
    """SKILLRUN_MAX_RUNNING_PER_KEY=1: while demo.approval waits, the key starts another
    run (202, not 429); once the answer makes it run again, it holds its place again."""
    srv = server_factory(env={"SKILLRUN_MAX_RUNNING_PER_KEY": "1"}, args=["--db", ":memory:"])
    run_id = _start(srv, "demo.approval", {"text": TEXT})
    _until_waiting(srv, run_id)
    other = _start(srv, "demo.ticker", {"steps": 1})
    assert _run(srv, other, wait=10)["status"] == "completed"
    assert _answer(srv, run_id, {"step_id": "ask", "value": {"approve": True}}).status_code == 202
    assert _run(srv, run_id, wait=10)["status"] == "completed"
    busy = _start(srv, "demo.ticker", {"steps": 1, "delay_ms": 2000})
    refused = httpx.post(f"{srv.url}/v1/skills/demo.ticker/execute/async", json={"inputs": {"steps": 1}},
                         headers=HEADERS, timeout=10)
    assert refused.status_code == 429, refused.text  # the limit itself still holds
    assert _run(srv, busy, wait=10)["status"] == "completed"


def test_sigterm_while_waiting_parks_the_run_and_the_next_start_resumes_it(
    server_factory: Callable[..., Server],
) -> None:
    """A graceful restart (SIGTERM) does not end a waiting run as interrupted: it stays
    `waiting` with its log open, the next start resumes it, and the answer completes it."""
    first = server_factory(env={"SKILLRUN_SHUTDOWN_GRACE_S": "30"})
    run_id = _start(first, "demo.approval", {"text": TEXT})
    _until_waiting(first, run_id)
    began = time.monotonic()
    first.terminate(signal.SIGTERM)
    first.proc.wait(20)
    assert time.monotonic() - began < 10  # a waiting run does not hold the shutdown for the grace
    second = server_factory()
    assert len(_until_waiting(second, run_id, 2)) == 2
    assert _answer(second, run_id, {"step_id": "ask", "value": {"approve": False}}).status_code == 202
    run = _run(second, run_id, wait=10)
    assert run["status"] == "completed" and run["result"]["outputs"]["decision"] == "rejected"
    events = _events(second, run_id)
    check_order(events)
    assert [e["type"] for e in events].count("done") == 1
    assert not any(e["type"] == "step_failed" for e in events)  # nothing was interrupted
