"""Bounded runs and fairness between keys (issue 10).

Findings this file guards against:
- ``doc.pipeline`` with 500 KB wrote 182,061 events (92 MB) for one request: a run's log
  and a ``foreach``'s fan-out had no bound.
- One key could starve all others: 256 ``demo.ticker`` runs with ``delay_ms: 30000`` held
  every server-wide capability slot (``util.sleep`` held a slot), and another key's 11 ms
  ``/execute`` took 25.8 s.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable

import httpx
import pytest

from conftest import API_KEY, OTHER_KEY, Server, asgi_client
from engine_util import engine_for, registry_with, run, skill
from skillrun.engine import Capability
from sse_util import check_order, parse_sse

pytestmark = pytest.mark.anyio

TICKER = "/v1/skills/demo.ticker"
SUMMARIZE = "/v1/skills/text.summarize"


async def _events(client: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"/v1/runs/{run_id}/events")
    assert r.status_code == 200, r.text
    frames, _ = parse_sse(r.text)
    return [f.json for f in frames]


def _is_limit_problem(r: httpx.Response, status: int, setting: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert int(r.headers["retry-after"]) >= 1
    assert setting in r.json()["detail"]  # says which limit


# ---------------------------------------------------------------- bounded runs


async def test_a_run_past_the_events_cap_fails_with_limit_exceeded_and_a_bounded_log(
    app_factory: Callable[..., Any],
) -> None:
    """The cap on events per run stops the run (not the server): ``step_failed`` for the
    open item, the rest skipped, ``skill_completed`` and ``done`` with status failed."""
    async with asgi_client(app_factory(max_events_per_run=100)) as client:
        r = await client.post(f"{TICKER}/execute", json={"inputs": {"steps": 1000}})
        assert r.status_code == 200, r.text
        result = r.json()
        assert result["status"] == "failed"
        assert result["error"]["kind"] == "limit_exceeded"
        assert "100 events" in result["error"]["message"]
        events = await _events(client, result["run_id"])
    check_order(events)
    assert [e["type"] for e in events[-2:]] == ["skill_completed", "done"]
    assert events[-2]["data"]["status"] == "failed"
    assert any(e["type"] == "step_failed" and e["data"]["error"]["kind"] == "limit_exceeded" for e in events)
    ran = sum(1 for e in events if e["type"] == "step_completed")
    assert ran < 100  # the steps stopped at the cap ...
    # ... and the log is the cap plus each item's one fate and the closing events.
    assert len(events) <= 100 + 1000 + 3


async def test_a_run_under_the_events_cap_is_untouched(app_factory: Callable[..., Any]) -> None:
    async with asgi_client(app_factory(max_events_per_run=2 * 50 + 3)) as client:
        r = await client.post(f"{TICKER}/execute", json={"inputs": {"steps": 50}})
    assert r.json()["status"] == "completed", r.text


async def test_a_foreach_past_the_fan_out_cap_fails_the_run_before_any_item(
    app_factory: Callable[..., Any],
) -> None:
    async with asgi_client(app_factory(max_foreach_items=5)) as client:
        ok = await client.post(f"{TICKER}/execute", json={"inputs": {"steps": 5}})
        assert ok.json()["status"] == "completed", ok.text
        r = await client.post(f"{TICKER}/execute", json={"inputs": {"steps": 6}})
        result = r.json()
        assert result["status"] == "failed", r.text
        assert result["error"]["kind"] == "limit_exceeded"
        assert "6 items" in result["error"]["message"] and "SKILLRUN_MAX_FOREACH_ITEMS" in result["error"]["message"]
        events = await _events(client, result["run_id"])
    check_order(events)
    assert [e["type"] for e in events] == ["skill_start", "step_start", "step_failed", "skill_completed", "done"]


async def test_a_500_kb_document_of_small_sections_ends_with_a_bounded_log(
    app_factory: Callable[..., Any],
) -> None:
    """Regression (issue 10): "``doc.pipeline`` with 500 KB writes 182,061 events (92 MB)
    for one request". The document here is 500,000 characters of small sections
    (``"word.\n\n"`` repeated): with the default limits its ``foreach`` of ~71,000
    sections is refused before any item runs, and the run fails with
    ``limit_exceeded`` within its time limit, its log a handful of events."""
    document = ("word.\n\n" * 71_429)[:500_000]
    async with asgi_client(app_factory()) as client:
        r = await client.post("/v1/skills/doc.pipeline/execute", json={"inputs": {"document": document}})
        assert r.status_code == 200, r.text
        result = r.json()
        assert result["status"] == "failed" and result["error"]["kind"] == "limit_exceeded", result["error"]
        assert "SKILLRUN_MAX_FOREACH_ITEMS" in result["error"]["message"]
        events = await _events(client, result["run_id"])
    check_order(events)
    assert len(events) < 50
    # The sections step's output carries the document once (as sections): the log is a
    # small multiple of the input, no longer events per section.
    assert sum(len(str(e)) for e in events) < 5 * len(document)


async def test_the_fan_out_cap_fails_the_run_even_when_the_step_continues_on_error() -> None:
    s = skill(
        """
        id: fan
        version: "1"
        steps:
          - id: each
            uses: util.echo
            foreach: range(10)
            on_error: continue
            input: {x: "${item}"}
          - id: after
            uses: util.echo
            input: {}
        """
    )
    outcome, rec, _ = await run(engine_for(s, max_foreach_items=3), s)
    assert outcome.status == "failed" and outcome.error == {"kind": "limit_exceeded", "message": outcome.error["message"]}
    assert rec.types("after") == ["step_skipped"]


# ---------------------------------------------------------------- capability slots


class Gate:
    """A capability that holds its caller until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0

    async def __call__(self, args: dict[str, Any]) -> dict[str, Any]:
        self.entered += 1
        await self.release.wait()
        return {}


WAIT_THEN_ECHO = """
    id: pair
    version: "1"
    inputs: {type: object, properties: {ms: {type: integer}}}
    steps:
      - id: call
        uses: CAP
        input: {ms: "${inputs.ms}"}
"""


async def test_a_sleeping_run_holds_no_capability_slot() -> None:
    """With one server-wide slot, a run in ``util.sleep`` still lets another run's call through."""
    sleeper = skill(WAIT_THEN_ECHO.replace("CAP", "util.sleep"))
    echo = skill(WAIT_THEN_ECHO.replace("CAP", "util.echo").replace("id: pair", "id: echo"))
    engine = engine_for(sleeper, echo, max_parallel=1)
    sleeping = asyncio.create_task(run(engine, sleeper, {"ms": 60_000}))
    await asyncio.sleep(0.05)
    outcome, _, _ = await asyncio.wait_for(run(engine, echo, {"ms": 0}), 5)
    assert outcome.status == "completed"
    assert not sleeping.done()
    sleeping.cancel()
    await asyncio.gather(sleeping, return_exceptions=True)


async def test_one_key_holds_at_most_its_share_of_the_capability_slots() -> None:
    """Key A's calls beyond its share wait in A's own queue; key B's call still gets a slot."""
    gate = Gate()
    registry = registry_with(Capability("test.gate", gate))
    s = skill(WAIT_THEN_ECHO.replace("CAP", "test.gate"), registry)
    engine = engine_for(s, registry=registry, max_parallel=3, max_parallel_per_key=2)

    async def as_tenant(tenant: str) -> Any:
        return await run(engine, s, {"ms": 0}, tenant=tenant)

    a_runs = [asyncio.create_task(as_tenant("A")) for _ in range(4)]
    await asyncio.sleep(0.05)
    assert gate.entered == 2 and engine.slots.held_by("A") == 2
    b_run = asyncio.create_task(as_tenant("B"))
    await asyncio.sleep(0.05)
    assert gate.entered == 3  # B's call got the slot A's share left free
    gate.release.set()
    outcomes = await asyncio.wait_for(asyncio.gather(*a_runs, b_run), 5)
    assert [o[0].status for o in outcomes] == ["completed"] * 5
    assert engine.slots.held_by("A") == 0 and not engine.slots._keys  # no state left for idle keys


async def test_slots_taken_at_once_are_holds_slots_and_never_pass_a_waiting_call() -> None:
    """``take_now`` takes both slots only when ``hold`` would get them without waiting;
    with a call queued for them it takes nothing (no call jumps the queue)."""
    from skillrun.engine.slots import CapabilitySlots

    slots = CapabilitySlots(2, 1)
    assert slots.take_now("A") and slots.held_by("A") == 1
    assert not slots.take_now("A")  # A's share is used up
    entered = asyncio.Event()

    async def hold_b(slots: CapabilitySlots = slots) -> None:
        async with slots.hold("B"):
            entered.set()
            await asyncio.sleep(0.05)

    held = asyncio.create_task(hold_b())
    await entered.wait()
    assert not slots.take_now("C")  # both server-wide slots are in use
    queued = asyncio.create_task(hold_b())  # B waits for its own share
    await asyncio.sleep(0)
    slots.give_back("A")  # a server-wide slot is free again, but B's share is not
    assert slots.take_now("C")
    slots.give_back("C")
    await asyncio.wait_for(asyncio.gather(held, queued), 5)
    assert slots.held_by("A") == slots.held_by("B") == 0 and not slots._keys
    assert slots._all._value == 2

    one = CapabilitySlots(1, 1)
    assert one.take_now("A")
    waiting = asyncio.create_task(hold_b(one))  # B waits for the server-wide slot
    await asyncio.sleep(0)
    one.give_back("A")  # the slot is B's (woken, not yet running): C does not take it
    assert not one.take_now("C")
    await asyncio.wait_for(waiting, 5)
    assert not one._keys and one._all._value == 1


# ---------------------------------------------------------------- admission (real server)


@pytest.fixture
async def capped(server_factory: Callable[..., Server]) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """A real server whose every capability slot a key's sleeping runs would fill if
    sleeping held a slot: per-key running cap 3, server-wide cap 5, 3 slots."""
    srv = server_factory(env={
        "SKILLRUN_MAX_RUNNING_PER_KEY": "3",
        "SKILLRUN_MAX_RUNNING": "5",
        "SKILLRUN_MAX_PARALLEL": "3",
        "SKILLRUN_MAX_PARALLEL_PER_KEY": "3",
        "SKILLRUN_DB": ":memory:",
    })
    async with (
        httpx.AsyncClient(base_url=srv.url, headers={"x-api-key": API_KEY}, timeout=30) as a,
        httpx.AsyncClient(base_url=srv.url, headers={"x-api-key": OTHER_KEY}, timeout=30) as b,
    ):
        yield a, b


async def _sleeping_run(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post(f"{TICKER}/execute/async", json={"inputs": {"steps": 1, "delay_ms": 60_000}})


async def test_one_key_sleeping_at_its_running_cap_does_not_starve_another_key(
    capped: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    """Regression (issue 10): "256 ``demo.ticker`` runs with ``delay_ms: 30000`` hold every
    server-wide capability slot (``util.sleep`` holds a slot), and another key's 11 ms
    ``/execute`` takes 25.8 s". Scaled down with the limits set explicitly: 3 slots and
    key A's 3 running ``demo.ticker`` runs with ``{"steps": 1, "delay_ms": 60000}``
    (its per-key cap). Key B's ``/execute`` completes while A's runs still sleep, and A's
    next run is a 429 problem naming the limit, with ``Retry-After``."""
    a, b = capped
    runs = [await _sleeping_run(a) for _ in range(3)]
    assert [r.status_code for r in runs] == [202] * 3
    r = await b.post(f"{SUMMARIZE}/execute", json={"inputs": {"text": "One sentence. Another one here."}})
    assert r.status_code == 200 and r.json()["status"] == "completed", r.text
    for started in runs:
        assert (await a.get(f"/v1/runs/{started.json()['run_id']}")).json()["status"] == "running"
    _is_limit_problem(await _sleeping_run(a), 429, "SKILLRUN_MAX_RUNNING_PER_KEY")


async def test_a_key_at_its_running_cap_may_start_again_once_a_run_ends(
    capped: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, _ = capped
    runs = [(await _sleeping_run(a)).json()["run_id"] for _ in range(3)]
    refused = await a.post(f"{TICKER}/execute/stream", json={"inputs": {"steps": 1}})
    _is_limit_problem(refused, 429, "SKILLRUN_MAX_RUNNING_PER_KEY")
    assert (await a.post(f"/v1/runs/{runs[0]}/cancel")).status_code == 202
    for _ in range(100):  # the place frees when the run's task has ended
        r = await a.post(f"{TICKER}/execute", json={"inputs": {"steps": 1}})
        if r.status_code != 429:
            break
        await asyncio.sleep(0.05)
    assert r.status_code == 200 and r.json()["status"] == "completed", r.text


async def test_a_saturated_server_refuses_new_runs_with_503_and_retry_after(
    capped: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = capped
    assert [(await _sleeping_run(a)).status_code for _ in range(3)] == [202] * 3
    assert [(await _sleeping_run(b)).status_code for _ in range(2)] == [202] * 2
    _is_limit_problem(await _sleeping_run(b), 503, "SKILLRUN_MAX_RUNNING")


async def test_a_key_with_its_limit_of_stored_runs_gets_429_until_retention_purges_them(
    server_factory: Callable[..., Server], tmp_path: Any,
) -> None:
    """Stored runs per key are capped (SQLite store, counted from the file at first use);
    other keys are unaffected, and the purge gives the key its room back."""
    env = {"SKILLRUN_MAX_STORED_RUNS_PER_KEY": "3", "SKILLRUN_DB": str(tmp_path / "runs.db")}
    first = server_factory(env={**env, "SKILLRUN_RUN_RETENTION": "7d"})
    async with httpx.AsyncClient(base_url=first.url, headers={"x-api-key": API_KEY}, timeout=30) as a:
        for _ in range(3):
            assert (await a.post(f"{TICKER}/execute", json={"inputs": {"steps": 1}})).status_code == 200
        _is_limit_problem(await a.post(f"{TICKER}/execute", json={"inputs": {"steps": 1}}), 429,
                          "SKILLRUN_MAX_STORED_RUNS_PER_KEY")
    first.stop()
    # A new process over the same file counts them too; with 10 s retention they age out.
    second = server_factory(env={**env, "SKILLRUN_RUN_RETENTION": "10s"})
    async with (
        httpx.AsyncClient(base_url=second.url, headers={"x-api-key": API_KEY}, timeout=30) as a,
        httpx.AsyncClient(base_url=second.url, headers={"x-api-key": OTHER_KEY}, timeout=30) as b,
    ):
        assert (await b.post(f"{TICKER}/execute", json={"inputs": {"steps": 1}})).status_code == 200
        statuses = []
        for _ in range(300):
            r = await a.post(f"{TICKER}/execute", json={"inputs": {"steps": 1}})
            statuses.append(r.status_code)
            if r.status_code == 200:
                break
            _is_limit_problem(r, 429, "SKILLRUN_MAX_STORED_RUNS_PER_KEY")
            await asyncio.sleep(0.1)
    assert statuses[-1] == 200 and statuses[0] == 429, statuses
