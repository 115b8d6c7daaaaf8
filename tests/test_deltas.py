"""``step_delta``: a running step's partial output, in the engine and through real servers.

Coalescing bounds the events a fast model writes; attempts and sequences number them;
a resume with Last-Event-ID loses and repeats none; deltas from worker processes reach
the log like the others; none is written outside its step's life; their text is bounded.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from conftest import Server
from engine_util import engine_for, registry_with, run, skill
from fake_llm import FakeLLM, Reply
from llm_util import KEY, assert_sequences, chat_skill, checked, deltas, joined, serve, stream, terminal
from skillrun import events as ev
from skillrun.engine import Capability, emit_delta
from skillrun.engine.deltas import DeltaPolicy
from sse_util import parse_sse


def llm_env(fake: FakeLLM, **more: str) -> dict[str, str]:
    return {"SKILLRUN_LLM_BASE_URL": fake.base_url, **more}


# ---------------------------------------------------------------- through real servers


def test_ten_thousand_tiny_chunks_in_a_second_become_at_most_one_event_per_window(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """10,000 one-character chunks streamed over ~1 s with a 25 ms window: at most one
    step_delta per window of the step's life (+2 slack: the first goes out at once, the
    last is flushed before the terminal event), and the joined text equals the model's."""
    chunks = [str(i % 10) for i in range(10_000)]
    with FakeLLM([Reply(chunks, batch=100, pace_s=0.01)]) as fake:
        events = stream(serve(server_factory, chat_skill(tmp_path), llm_env(fake, SKILLRUN_DELTA_WINDOW_MS="25")),
                        "t.chat", {})
    end = terminal(events)
    found = deltas(events)
    assert len(found) <= math.ceil(end["data"]["duration_ms"] / 25) + 2, (len(found), end["data"]["duration_ms"])
    assert len(found) < 200, len(found)  # 10,000 chunks did not become 10,000 events
    assert joined(found) == "".join(chunks) == end["data"]["produced_output"]["text"]
    assert_sequences(found)


def test_with_the_window_at_zero_every_chunk_is_its_own_delta(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """SKILLRUN_DELTA_WINDOW_MS=0 turns coalescing off: 50 chunks, 50 step_delta events."""
    chunks = [f"w{i} " for i in range(50)]
    with FakeLLM([Reply(chunks)]) as fake:
        events = stream(serve(server_factory, chat_skill(tmp_path), llm_env(fake, SKILLRUN_DELTA_WINDOW_MS="0")),
                        "t.chat", {})
    assert [e["data"]["delta"]["text"] for e in deltas(events)] == chunks


def _frames(text: str) -> list[tuple[int, dict[str, Any]]]:
    return [(int(f.id or 0), dict(f.json)) for f in parse_sse(text)[0]]


def test_a_resume_mid_delta_run_loses_and_repeats_no_delta(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """The stream drops after the 5th step_delta of a model streaming 400 chunks over
    ~1 s; resuming with Last-Event-ID gives the rest: ids follow without a gap or a
    repeat, and the joined text equals an uninterrupted stream's and the model's."""
    chunks = [f"<{i}>" for i in range(400)]
    with FakeLLM([Reply(chunks, batch=4, pace_s=0.01)]) as fake:
        server = serve(server_factory, chat_skill(tmp_path), llm_env(fake, SKILLRUN_DELTA_WINDOW_MS="10"))
        with httpx.Client(base_url=server.url, headers=KEY, timeout=30) as c:
            first: list[tuple[int, dict[str, Any]]] = []
            with c.stream("POST", "/v1/skills/t.chat/execute/stream", json={"inputs": {}}) as r:
                run_id, buffer = r.headers["x-run-id"], ""
                for piece in r.iter_text():
                    buffer += piece.replace("\r\n", "\n")
                    complete, _, buffer = buffer.rpartition("\n\n")
                    first += _frames(complete + "\n\n") if complete else []
                    if len([e for _, e in first if e["type"] == "step_delta"]) >= 5:
                        break
            assert first[-1][1]["type"] != "done"
            rest = _frames(c.get(f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": str(first[-1][0])}).text)
            whole = _frames(c.get(f"/v1/runs/{run_id}/events").text)
    resumed = first + rest
    assert [i for i, _ in resumed] == list(range(1, len(resumed) + 1))
    assert resumed == whole
    events = checked([e for _, e in resumed])
    assert joined(deltas(events)) == "".join(chunks) == joined(deltas(checked([e for _, e in whole])))
    assert_sequences(deltas(events))


def test_a_failed_attempts_deltas_keep_their_attempt_and_the_retry_counts_afresh(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """Attempt 1 streams "a1", "a2" and is cut; attempt 2 streams "b1", "b2": deltas of
    attempt 1 (sequence 1..) all come before step_retrying, those of attempt 2 after it,
    numbered from 1 again, and attempt 2's joined text is the step's output."""
    skills = chat_skill(tmp_path, "retry: { max_attempts: 2, backoff: { initial_ms: 10 } }")
    plan = [Reply(["a1", "a2", "a3"], cut_after=2, pace_s=0.05), Reply(["b1", "b2"])]
    with FakeLLM(plan) as fake:
        events = stream(serve(server_factory, skills, llm_env(fake, SKILLRUN_DELTA_WINDOW_MS="0")), "t.chat", {})
    mine = [e for e in events if e.get("step_id") == "answer"]
    at = [e["type"] for e in mine].index("step_retrying")
    assert {e["data"]["attempt"] for e in mine[:at] if e["type"] == "step_delta"} == {1}
    assert {e["data"]["attempt"] for e in mine[at:] if e["type"] == "step_delta"} == {2}
    found = deltas(events)
    assert [(e["data"]["attempt"], e["data"]["sequence"]) for e in found] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert joined(found, 1) == "a1a2" and joined(found) == "b1b2" == terminal(events)["data"]["produced_output"]["text"]


def test_deltas_of_a_nested_skills_step_carry_its_place(server_factory: Callable[..., Server], tmp_path: Path) -> None:
    """t.chat nested under a foreach of two items: its deltas are `ask[i]/answer` with
    parent_step_id, parent_index and path, each item's text whole."""
    skills = chat_skill(tmp_path)
    (skills / "t.outer.yaml").write_text(
        'id: t.outer\nversion: "1"\nsteps:\n  - id: ask\n    uses: skill:t.chat\n    foreach: "[1, 2]"\n'
        '    max_parallel: 1\n    input: { question: "q${item}" }\n'
    )
    with FakeLLM([Reply(["x", "y"])]) as fake:
        events = stream(serve(server_factory, skills, llm_env(fake)), "t.outer", {})
    for i in (0, 1):
        found = deltas(events, f"ask[{i}]/answer")
        assert found and joined(found) == "xy"
        place = found[0]["data"]
        assert (place["parent_step_id"], place["parent_index"], place["path"]) == ("ask", i, ["ask", "answer"])


def test_deltas_from_a_worker_process_reach_the_log_inside_the_steps_life(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """text.summarize over 3,000 sentences with one worker process and inline work up to
    100 characters: text.extractive_summary runs in the worker, and its progress comes
    back as step_delta events between the step's start and end, rising to 1."""
    server = server_factory(env={"SKILLRUN_WORKER_PROCS": "1", "SKILLRUN_INLINE_MAX_CHARS": "100"},
                            args=["--db", ":memory:"])
    text = " ".join(f"Sentence {i} is about cats and dogs." for i in range(3000))
    events = stream(server, "text.summarize", {"text": text})
    found = deltas(events, "summarize")
    progress = [e["data"]["delta"]["progress"] for e in found]
    assert progress and progress == sorted(progress) and progress[-1] == 1.0, progress
    assert all("text" not in e["data"]["delta"] for e in found)


def test_demo_ticker_reports_progress_per_item_when_asked(server_factory: Callable[..., Server], tmp_path: Path) -> None:
    """demo.ticker with `progress: true` and 4 steps: item i reports (i + 1) / 4; without
    it, no step_delta at all."""
    server = server_factory(args=["--db", ":memory:"])
    events = stream(server, "demo.ticker", {"steps": 4, "progress": True})
    assert [(e["data"]["index"], e["data"]["delta"]) for e in deltas(events, "tick")] == [
        (i, {"progress": (i + 1) / 4}) for i in range(4)]
    assert not deltas(stream(server, "demo.ticker", {"steps": 4}), "tick")


# ---------------------------------------------------------------- the engine alone


async def _late(args: dict[str, Any]) -> dict[str, Any]:
    """Returns at once, leaving a task and a timer that emit deltas for 100 ms more."""

    async def go_on() -> None:
        for _ in range(20):
            emit_delta("late ")
            await asyncio.sleep(0.005)

    emit_delta("early ")
    asyncio.get_running_loop().call_later(0.03, emit_delta, "timer ")
    args["_keep"] = asyncio.get_running_loop().create_task(go_on())
    return {"ok": True}


@pytest.mark.anyio
async def test_a_delta_emitted_after_its_step_ended_is_never_written() -> None:
    """A capability returns while a task and a timer it started keep emitting deltas for
    100 ms: none is written after the step's terminal event (the next step waits 200 ms)."""
    reg = registry_with(Capability("t.late", _late))
    s = skill("""
        id: t
        version: "1"
        steps:
          - id: a
            uses: t.late
          - id: b
            uses: util.sleep
            input: { ms: 200 }
    """, reg)
    _, rec, _ = await run(engine_for(s, registry=reg), s)
    types = rec.types("a")
    assert types == ["step_start", "step_delta", "step_completed"], types
    assert rec.of("step_delta", "a")[0]["data"]["delta"] == {"text": "early "}


async def _flood(args: dict[str, Any]) -> dict[str, Any]:
    for _ in range(100):
        emit_delta("x" * 100)
        await asyncio.sleep(0)
    return {"chars": 10_000}


@pytest.mark.anyio
async def test_a_steps_delta_text_is_bounded() -> None:
    """A capability emits 100 deltas of 100 characters under a bound of 1,000: the
    deltas' text is 1,000 characters, and the step still completes with its output."""
    reg = registry_with(Capability("t.flood", _flood))
    s = skill('id: t\nversion: "1"\nsteps:\n  - id: a\n    uses: t.flood\n', reg)
    outcome, rec, _ = await run(engine_for(s, registry=reg, deltas=DeltaPolicy(0.0, 1000)), s)
    text = "".join(e["data"]["delta"].get("text", "") for e in rec.of("step_delta"))
    assert text == "x" * 1000 and outcome.status == "completed"


def test_the_run_record_ignores_deltas() -> None:
    """A step_delta (even one carrying "waited_ms" in its text) changes nothing in the
    run record: not its status, not its waits."""
    data = json.dumps({"type": "step_delta", "data": {"attempt": 1, "sequence": 1, "delta": {"text": '"waited_ms"'}}})
    assert ev.projection(5, ev.STEP_DELTA, data) == ev.Projection(False, None)


async def _chatty(args: dict[str, Any]) -> dict[str, Any]:
    emit_delta("mail me at a@example.com", progress=1.0)
    return {"text": "mail me at a@example.com"}


@pytest.mark.anyio
async def test_a_step_with_a_post_gate_sends_progress_but_no_delta_text() -> None:
    """A step whose output the pii gate redacts emits "mail me at a@example.com" as a
    delta: the address never reaches the log (no delta text, only its progress), and
    the output is redacted."""
    reg = registry_with(Capability("t.chatty", _chatty))
    s = skill("""
        id: t
        version: "1"
        steps:
          - id: a
            uses: t.chatty
            gate: { uses: pii }
    """, reg)
    _, rec, _ = await run(engine_for(s, registry=reg), s)
    assert [e["data"]["delta"] for e in rec.of("step_delta", "a")] == [{"progress": 1.0}]
    assert "a@example.com" not in json.dumps(rec.events)


@pytest.mark.anyio
async def test_a_runs_delta_text_is_bounded_across_its_items() -> None:
    """A `foreach` of 20 items, each emitting 10,000 characters under a per-step bound
    of 10,000 and a per-run bound of 25,000: the run's deltas hold 25,000 characters
    (the items cannot multiply the step's bound), and every item completes."""
    reg = registry_with(Capability("t.flood", _flood))
    s = skill('id: t\nversion: "1"\nsteps:\n  - id: a\n    uses: t.flood\n    foreach: "range(20)"\n', reg)
    outcome, rec, _ = await run(engine_for(s, registry=reg, deltas=DeltaPolicy(0.0, 10_000, 25_000)), s)
    text = "".join(e["data"]["delta"].get("text", "") for e in rec.of("step_delta"))
    assert len(text) == 25_000 and outcome.status == "completed"
    assert len(rec.of("step_completed")) == 20
