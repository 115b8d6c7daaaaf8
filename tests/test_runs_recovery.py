"""After a kill -9 and a restart, every step and every ``foreach`` item of an
interrupted run has exactly one fate.

The finding (issue 10): "After a kill -9 and restart, steps and `foreach` items
that never started get their `step_skipped` as the docs promise (today recovery
skips none; no event records how many items a `foreach` had)." Before, recovery
gave the open steps `step_failed` and closed the log: later steps and the items
that had not started had no event at all, so a client drawing the run waited for
them forever. Now each item's first event carries ``data.items`` and recovery
skips what never started, nested skills included.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
from conftest import API_KEY, Server, make_settings
from engine_util import engine_for, run, skill
from skillrun.http.app import build_services
from skillrun.runs import EventRecord, RunManager, RunRecord, SqliteStore, follow
from spec_tools import event_validator
from sse_util import check_order, item_keys, parse_sse

HEADERS = {"x-api-key": API_KEY}
ITEMS = 500
INNER_ITEMS = 5
OUTCOMES = ("step_completed", "step_degraded", "step_failed", "step_skipped")

OUTER = f"""\
id: crash.outer
version: "1.0.0"
description: Steps after a wide foreach, and a nested skill beside it.
on_restart: interrupt
steps:
  - id: first
    uses: util.sleep
    input: {{ ms: 0 }}
  - id: fan
    needs: [first]
    uses: util.sleep
    foreach: range({ITEMS})
    max_parallel: 4
    input: {{ ms: 20 }}
  - id: side
    needs: [first]
    uses: skill:crash.inner
    input: {{}}
  - id: after
    needs: [fan, side]
    uses: util.echo
    input: {{ x: 1 }}
  - id: last
    uses: util.echo
    input: {{ y: 2 }}
"""

INNER = f"""\
id: crash.inner
version: "1.0.0"
description: A nested skill whose foreach is in flight when the server dies.
steps:
  - id: wait
    uses: util.sleep
    foreach: range({INNER_ITEMS})
    input: {{ ms: 60000 }}
  - id: later
    uses: util.echo
    input: {{ z: 3 }}
"""


def _fates(events: list[dict[str, Any]]) -> Counter[tuple[str, Any]]:
    return Counter(k for e in events if e["type"] in OUTCOMES for k in item_keys(e))


def _stream_until(server: Server, enough: Callable[[list[dict[str, Any]]], bool]) -> tuple[str, list[dict[str, Any]]]:
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", server.url + "/v1/skills/crash.outer/execute/stream",
                           json={"inputs": {}}, headers=HEADERS) as r:
            text = ""
            for chunk in r.iter_text():
                text += chunk
                events = [f.json for f in parse_sse(text)[0]]
                if enough(events):
                    return r.headers["x-run-id"], events
    raise AssertionError("the run ended before the kill")


def test_kill_9_mid_foreach_then_restart_gives_every_step_and_item_one_fate(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """"After a kill -9 and restart, steps and `foreach` items that never started get
    their `step_skipped` as the docs promise (today recovery skips none; no event
    records how many items a `foreach` had)." Killed with 500 items mostly unstarted,
    two later steps and a nested skill in flight."""
    skills = tmp_path / "skills"
    skills.mkdir()
    (skills / "crash.outer.yaml").write_text(OUTER)
    (skills / "crash.inner.yaml").write_text(INNER)
    first = server_factory(args=["--skills", str(skills)])

    def mid_run(events: list[dict[str, Any]]) -> bool:
        fan_done = sum(1 for e in events if e["step_id"] == "fan" and e["type"] == "step_completed")
        return fan_done >= 20 and any(e["step_id"] == "side/wait" for e in events)

    run_id, seen = _stream_until(first, mid_run)
    first.terminate(signal.SIGKILL)
    first.proc.wait(10)
    fan_start = next(e for e in seen if e["step_id"] == "fan" and e["type"] == "step_start")
    assert fan_start["data"]["items"] == ITEMS  # the log knows how many items there are

    second = server_factory(args=["--skills", str(skills)])
    r = httpx.get(f"{second.url}/v1/runs/{run_id}/events", headers=HEADERS, timeout=30)
    frames = parse_sse(r.text)[0]
    events = [f.json for f in frames]
    assert [int(f.id) for f in frames] == list(range(1, len(frames) + 1))
    check_order(events)
    check = event_validator()
    for e in events:
        check(e)
    assert [e["type"] for e in events].count("done") == 1 and events[-1]["status"] == "interrupted"
    # What a client saw before the kill is unchanged.
    assert events[: len(seen)] == seen

    fates = _fates(events)
    assert all(n == 1 for n in fates.values()), [k for k, n in fates.items() if n > 1]
    expected = {("first", None), ("side", None), ("after", None), ("last", None), ("side/later", None)}
    expected |= {("fan", i) for i in range(ITEMS)} | {("side/wait", i) for i in range(INNER_ITEMS)}
    assert set(fates) == expected

    def fate(step_id: str, index: Any = None) -> dict[str, Any]:
        return next(e for e in events if e["type"] in OUTCOMES and (step_id, index) in item_keys(e))

    for step_id in ("after", "last"):
        assert fate(step_id)["type"] == "step_skipped"
        assert fate(step_id)["data"]["reason"] == "not run: the run was interrupted"
    fan = [fate("fan", i)["type"] for i in range(ITEMS)]
    assert fan.count("step_skipped") >= ITEMS - 100  # the kill came early in the fan
    assert set(fan) <= {"step_completed", "step_failed", "step_skipped"}
    # The nested skill in flight: its open item failed, the rest and its later step skipped,
    # all placed under their parent step, and before the parent step's own fate.
    assert fate("side/wait", 0)["data"]["error"]["kind"] == "interrupted"
    for i in range(1, INNER_ITEMS):
        skipped = fate("side/wait", i)
        assert skipped["type"] == "step_skipped" and skipped["data"]["path"] == ["side", "wait"]
    later = fate("side/later")
    assert later["type"] == "step_skipped"
    assert later["data"]["parent_step_id"] == "side" and later["data"]["path"] == ["side", "later"]
    assert fate("side")["type"] == "step_failed"
    assert events.index(fate("side")) > events.index(later)

    run = httpx.get(f"{second.url}/v1/runs/{run_id}", headers=HEADERS).json()
    assert run["status"] == "interrupted"
    assert {s["id"]: s["status"] for s in run["result"]["steps"]} == {
        "first": "completed", "fan": "interrupted", "side": "interrupted", "after": "skipped", "last": "skipped",
    }


@pytest.mark.anyio
async def test_recovery_skips_every_step_of_a_run_killed_before_its_first_event(tmp_path: Path) -> None:
    """A run created but never started (no event at all), where runs are not resumed,
    is closed with a start and a ``step_skipped`` for each of its skill's steps."""
    path = tmp_path / "runs.db"
    dead = SqliteStore(path)
    await dead.open()
    created = "2026-01-01T00:00:00.000Z"
    await dead.create(RunRecord("run_new", "o", "text.summarize", "t", "http", {"text": "x"}, created))
    await dead.close()

    s = build_services(make_settings())
    store = SqliteStore(path)
    await store.open()
    try:
        assert await RunManager(store, s.engine, s.catalog, max_resumes=0).recover() == 1
        events = [json.loads(e.data) async for batch in follow(store, "run_new") for e in batch]
    finally:
        await store.close()
    check_order(events)
    steps = events[0]["data"]["steps"]
    assert steps and [e["step_id"] for e in events if e["type"] == "step_skipped"] == steps
    assert {st["status"] for st in events[-1]["steps"]} == {"skipped"}


@pytest.mark.anyio
async def test_a_run_killed_before_its_first_event_runs_after_the_restart(tmp_path: Path) -> None:
    """Nothing of it ran, so resuming it is running it: it completes, one log, one done."""
    path = tmp_path / "runs.db"
    dead = SqliteStore(path)
    await dead.open()
    await dead.create(RunRecord("run_new", "o", "text.summarize", "t", "http", {"text": "One. Two. Three."},
                                "2026-01-01T00:00:00.000Z"))
    await dead.close()

    s = build_services(make_settings())
    store = SqliteStore(path)
    await store.open()
    try:
        manager = RunManager(store, s.engine, s.catalog)
        assert await manager.recover() == 1
        events = [json.loads(e.data) async for batch in follow(store, "run_new") for e in batch]
    finally:
        await store.close()
    check_order(events)
    assert events[0]["type"] == "skill_start" and events[-1]["status"] == "completed"


@pytest.mark.anyio
async def test_recovery_of_a_foreach_item_gated_off_still_knows_the_item_count(tmp_path: Path) -> None:
    """An item's first event may be a ``step_skipped`` (a pre gate): it carries
    ``data.items`` too, so the items after it are skipped at recovery."""
    path = tmp_path / "runs.db"
    dead = SqliteStore(path)
    await dead.open()
    await dead.create(RunRecord("run_g", "o", "demo.ticker", "t", "http", {}, "2026-01-01T00:00:00.000Z"))
    env = {"message": "m", "timestamp": "2026-01-01T00:00:00.000Z", "trace_id": "t", "run_id": "run_g"}
    start = {"skill_id": "demo.ticker", "version": "1", "execution_channel": "http", "steps": ["tick"]}
    gated = {"reason": "gate pii found email", "index": 0, "items": 3}
    dead.append("run_g", EventRecord(1, "skill_start", json.dumps(
        {"type": "skill_start", **env, "step_id": None, "data": start})))
    dead.append("run_g", EventRecord(2, "step_skipped", json.dumps(
        {"type": "step_skipped", **env, "step_id": "tick", "data": gated})))
    await dead.close()

    s = build_services(make_settings())
    store = SqliteStore(path)
    await store.open()
    try:
        assert await RunManager(store, s.engine, s.catalog).recover() == 1
        events = [json.loads(e.data) async for batch in follow(store, "run_g") for e in batch]
    finally:
        await store.close()
    check_order(events)
    # The items that never started: one event for the run of them, as the engine says it.
    assert [(e["type"], e["data"].get("index"), e["data"].get("last_index")) for e in events[2:-2]] == [
        ("step_skipped", 1, 2)]
    interrupted = {"kind": "interrupted", "message": "the run was interrupted"}
    assert events[-1]["steps"] == [{"id": "tick", "status": "interrupted", "error": interrupted}]


@pytest.mark.anyio
async def test_every_foreach_items_first_event_carries_the_item_count() -> None:
    """The contract's ``data.items``: on each item's ``step_start`` and on the
    ``step_skipped`` of an item that never had one (gated off, or not run)."""
    s = skill("""
        id: t
        version: "1"
        inputs: {type: object, properties: {texts: {type: array}}}
        steps:
          - id: each
            uses: util.echo
            foreach: ${inputs.texts}
            max_parallel: 2
            gate: {uses: pii, stage: pre, policy: skip}
            input: {text: "${item}"}
          - id: boom
            uses: util.fail
            foreach: range(6)
            input: {}
    """)
    outcome, rec, events = await run(engine_for(s), s, {"texts": ["plain", "mail me at a@example.com", "plain"]})
    check = event_validator()
    for e in events:
        check(e)
    firsts: dict[tuple[str, int], dict[str, Any]] = {}
    for e in rec.events:
        if "index" in (e["data"] or {}):
            for key in item_keys(e):
                firsts.setdefault(key, e)
    assert {k: e["data"]["items"] for k, e in firsts.items()} == {
        **{("each", i): 3 for i in range(3)}, **{("boom", i): 6 for i in range(6)}}
    assert firsts[("each", 1)]["type"] == "step_skipped"  # gated off before it started
    assert [firsts[("boom", i)]["type"] for i in range(6)] == ["step_start"] + ["step_skipped"] * 5  # not run
    assert outcome.status == "failed"
