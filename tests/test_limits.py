"""Bounded runs: a cap on events per run and on foreach items; past either the run fails
with kind ``limit_exceeded`` and its log still closes properly."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from conftest import API_KEY, Server, make_settings
from engine_util import engine_for, run, skill
from skillrun.http.app import build_services
from skillrun.runs import follow
from sse_util import check_order, parse_sse

pytestmark = pytest.mark.anyio

FANOUT = """
id: fanout
version: "1"
steps:
  - id: many
    uses: util.echo
    foreach: range(inputs.n)
    input: {i: "${item}"}
  - id: after
    uses: util.echo
    input: {x: 1}
"""


async def test_a_foreach_over_the_item_cap_fails_the_step_before_any_item_runs() -> None:
    s = skill(FANOUT)
    outcome, rec, _ = await run(engine_for(s, max_foreach_items=5), s, {"n": 6})
    assert outcome.status == "failed"
    assert outcome.error == {"kind": "limit_exceeded", "message": "foreach gave 6 items; this server runs at most 5 (SKILLRUN_MAX_FOREACH_ITEMS)"}
    assert rec.types("many") == ["step_start", "step_failed"]
    assert rec.types("after") == ["step_skipped"]
    outcome, _, _ = await run(engine_for(s, max_foreach_items=5), s, {"n": 5})
    assert outcome.status == "completed"


async def test_a_run_past_the_event_cap_fails_and_its_log_stays_bounded() -> None:
    services = build_services(make_settings(max_events_per_run=50))
    ticker = services.catalog.get("demo.ticker")
    started = await services.runs.start(ticker, {"steps": 1000}, owner="o", channel="http")
    events = [json.loads(e.data) async for batch in follow(services.store, started.run_id) for e in batch]
    check_order(events)
    done = events[-1]
    assert done["status"] == "failed" and done["error"]["kind"] == "limit_exceeded"
    assert "the run wrote 50 events" in done["error"]["message"]
    # The cap, plus what closes the log: the open item's step_failed, a step_skipped for
    # every item that never started (each item's fate is an event), skill_completed, done.
    assert len(events) < 50 + 1000 + 3
    assert sum(e["type"] == "step_completed" for e in events) <= 25  # the 51st event asked for the stop


def test_a_500_kb_doc_pipeline_fails_within_its_timeout_with_a_bounded_log_and_the_server_answers(server: Server) -> None:
    """Finding: ``doc.pipeline`` with 300 KB of small sections stalled the loop 17 s inside
    one step's CEL input rendering; with 500 KB it ran 81.6 s despite the skill's 60 s
    ``timeout``, reported ``completed``, and wrote 182,061 events (92 MB) for one request.

    Now: the rendering reads only what it names and large activations render in a worker;
    41,666 sections are more than a foreach may have, so the run fails at once."""
    document = "\n\n".join(["Word here."] * (500_000 // 12))
    health: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            while not stop.is_set():
                t0 = time.monotonic()
                assert c.get("/v1/health/live").status_code == 200
                health.append(time.monotonic() - t0)
                time.sleep(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    t0 = time.monotonic()
    try:
        r = httpx.post(
            f"{server.url}/v1/skills/doc.pipeline/execute/stream",
            json={"inputs": {"document": document, "flaky_failures": 0}},
            headers={"x-api-key": API_KEY},
            timeout=120,
        )
    finally:
        stop.set()
        poller.join()
    elapsed = time.monotonic() - t0
    frames, _ = parse_sse(r.text)
    events = [json.loads(f.data) for f in frames]
    check_order(events)
    assert elapsed < 60
    assert events[-1]["status"] == "failed" and events[-1]["error"]["kind"] == "limit_exceeded"
    assert len(events) < 50 and len(r.content) < 4 * len(document)  # the sections step outputs the document once
    assert health and max(health) < 2.0, f"health took up to {max(health):.2f} s while the document was processed"
