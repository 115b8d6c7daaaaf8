"""GET /metrics: run, step, stream, store and HTTP metrics, their values and their bounded labels (issue 14)."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import API_KEY, asgi_client, free_port, require_tool, start_server
from stores import store_db

SKILLS = Path(__file__).parent / "observe_skills"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient) -> str:
    r = await client.get("/metrics", headers={"x-api-key": ""})
    assert r.status_code == 200, r.text
    return r.text


async def run(client: httpx.AsyncClient, skill: str, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    r = await client.post(f"/v1/skills/{skill}/execute", json={"inputs": inputs or {}})
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


@pytest.mark.anyio
async def test_metrics_count_runs_that_complete_fail_retry_degrade_and_get_cancelled(
    app_factory: Callable[..., Any],
) -> None:
    """Runs that complete, fail, retry twice, get degraded by a gate and warned about, and one
    cancelled mid-run: every run, step, retry and gate series holds exactly those counts."""
    app = app_factory(skill_dirs=[SKILLS])
    async with asgi_client(app) as client:
        assert (await run(client, "text.summarize", {"text": "One two three. Four five."}))["status"] == "completed"
        assert (await run(client, "obs.fail"))["status"] == "failed"
        assert (await run(client, "obs.retry"))["status"] == "completed"
        assert (await run(client, "obs.degrade"))["status"] == "completed"
        started = await client.post(
            "/v1/skills/demo.ticker/execute/async", json={"inputs": {"steps": 5, "delay_ms": 60000}}
        )
        run_id = started.json()["run_id"]
        for _ in range(100):
            if (await client.get(f"/v1/runs/{run_id}")).json()["status"] == "running":
                break
            await asyncio.sleep(0.02)
        text = await scrape(client)
        assert value(text, "skillrun_runs_in_progress", skill="demo.ticker") == 1
        assert (await client.post(f"/v1/runs/{run_id}/cancel")).status_code == 202
        for _ in range(100):
            if (await client.get(f"/v1/runs/{run_id}")).json()["status"] == "cancelled":
                break
            await asyncio.sleep(0.02)
        text = await scrape(client)

    assert value(text, "skillrun_build_info", version=__import__("skillrun").__version__) == 1
    for skill, channel in [("text.summarize", "http"), ("obs.fail", "http"), ("obs.retry", "http"),
                           ("obs.degrade", "http"), ("demo.ticker", "http-async")]:
        assert value(text, "skillrun_runs_started_total", skill=skill, channel=channel) == 1, skill
    for skill, status in [("text.summarize", "completed"), ("obs.fail", "failed"), ("obs.retry", "completed"),
                          ("obs.degrade", "completed"), ("demo.ticker", "cancelled")]:
        assert value(text, "skillrun_runs_finished_total", skill=skill, status=status) == 1, skill
        assert value(text, "skillrun_run_duration_seconds_count", skill=skill, status=status) == 1, skill
        assert value(text, "skillrun_runs_in_progress", skill=skill) == 0, skill
    assert value(text, "skillrun_step_duration_seconds_count", skill="obs.fail", capability="util.fail",
                 status="failed") == 1
    assert value(text, "skillrun_step_duration_seconds_count", skill="obs.retry", capability="util.flaky",
                 status="completed") == 1
    assert value(text, "skillrun_step_retries_total", skill="obs.retry", capability="util.flaky") == 2
    assert value(text, "skillrun_step_duration_seconds_count", skill="obs.degrade", capability="util.echo",
                 status="degraded") == 1
    assert value(text, "skillrun_gate_findings_total", skill="obs.degrade", policy="degrade") == 1
    assert value(text, "skillrun_gate_findings_total", skill="obs.degrade", policy="warn") == 1
    # The ticker's five items: started ones fail with the cancel, the rest are skipped (no duration).
    assert value(text, "skillrun_step_duration_seconds_count", skill="demo.ticker", capability="util.sleep",
                 status="failed") >= 1
    assert value(text, "http_server_request_duration_seconds_count", method="POST",
                 route="/v1/skills/obs.fail/execute", status="200") == 1
    assert value(text, "http_server_request_duration_seconds_count", method="POST",
                 route="/v1/runs/{run_id}/cancel", status="202") == 1


@pytest.mark.anyio
async def test_stream_metrics_count_open_streams_events_by_type_resumes_and_first_event(
    app_factory: Callable[..., Any],
) -> None:
    """One stream of a 3-item ticker and one resume after event 2: events sent by type, one
    resume, two first-event times, and no stream left open once both ended."""
    async with asgi_client(app_factory()) as client:
        r = await client.post("/v1/skills/demo.ticker/execute/stream", json={"inputs": {"steps": 3}})
        assert r.status_code == 200
        run_id = r.headers["x-run-id"]
        r = await client.get(f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": "2"})
        assert r.status_code == 200
        text = await scrape(client)
    # skill_start, 3 x (step_start, step_completed), skill_completed, done; the resume repeats 3..10.
    assert value(text, "skillrun_sse_events_sent_total", type="skill_start") == 1
    assert value(text, "skillrun_sse_events_sent_total", type="step_start") == 3 + 2
    assert value(text, "skillrun_sse_events_sent_total", type="step_completed") == 3 + 3
    assert value(text, "skillrun_sse_events_sent_total", type="done") == 2
    assert value(text, "skillrun_sse_resumes_total") == 1
    assert value(text, "skillrun_sse_time_to_first_event_seconds_count") == 2
    assert value(text, "skillrun_sse_streams_open") == 0


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_store_metrics_time_each_group_commit_and_its_batch(
    app_factory: Callable[..., Any], tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    """With the SQLite store every group commit, with Redis every appended batch, is timed
    and its batch size observed: the batches add up to at least the run's events (and,
    on SQLite, its create)."""
    db, options = store_db(request, tmp_path, kind)
    app = app_factory(db=db, rate_limit_storage="memory://", **options)
    async with _lifespan(app):
        async with asgi_client(app) as client:
            result = await run(client, "demo.ticker", {"steps": 3})
            text = await scrape(client)
    assert result["status"] == "completed"
    commits = value(text, "skillrun_store_append_seconds_count")
    assert commits >= 1
    assert value(text, "skillrun_store_commit_batch_size_count") == commits
    assert value(text, "skillrun_store_commit_batch_size_sum") >= 9  # demo.ticker of 3 steps: 9 events


class _lifespan:
    """The app's lifespan (the SQLite store opens there): ASGITransport does not run it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __aenter__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task = asyncio.create_task(self.app({"type": "lifespan", "state": {}}, self.queue.get, self.sent.put))
        await self.queue.put({"type": "lifespan.startup"})
        assert (await self.sent.get())["type"] == "lifespan.startup.complete"

    async def __aexit__(self, *exc: Any) -> None:
        await self.queue.put({"type": "lifespan.shutdown"})
        await self.sent.get()
        await self.task


@pytest.mark.anyio
async def test_metrics_need_no_key_are_not_rate_limited_and_count_429s(app_factory: Callable[..., Any]) -> None:
    """With a rate limit of 2/minute, ten scrapes without a key all answer 200, while the
    third run request gets 429 and skillrun_rate_limited_total counts it."""
    async with asgi_client(app_factory(rate_limit="2/minute")) as client:
        codes = [(await client.get("/v1/skills")).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        for _ in range(10):
            text = await scrape(client)
    assert value(text, "skillrun_rate_limited_total") == 1
    assert value(text, "http_server_request_duration_seconds_count", method="GET", route="/v1/skills",
                 status="429") == 1


@pytest.mark.anyio
async def test_openmetrics_on_accept(app_factory: Callable[..., Any]) -> None:
    """Accept: application/openmetrics-text gets OpenMetrics (ending '# EOF'); no Accept gets the text format."""
    async with asgi_client(app_factory()) as client:
        om = await client.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
        plain = await client.get("/metrics")
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.rstrip().endswith("# EOF")
    assert plain.headers["content-type"].startswith("text/plain")
    assert "# EOF" not in plain.text


@pytest.mark.anyio
async def test_metrics_off_answers_404(app_factory: Callable[..., Any]) -> None:
    """SKILLRUN_METRICS=0: /metrics is 404 problem+json, and runs still work."""
    async with asgi_client(app_factory(metrics=False)) as client:
        r = await client.get("/metrics")
        assert r.status_code == 404
        assert r.headers["content-type"] == "application/problem+json"
        assert (await run(client, "text.summarize", {"text": "a b. c d."}))["status"] == "completed"


@pytest.mark.anyio
async def test_label_sets_stay_bounded_after_1000_runs_with_random_trace_ids_and_unknown_paths(
    app_factory: Callable[..., Any],
) -> None:
    """1,000 runs, each with a random x-trace-id or traceparent, each followed by a request to a
    random unknown path and a random run id: the scrape has the same series as after the first 20."""
    async with asgi_client(app_factory()) as client:

        async def burst(n: int) -> None:
            for i in range(n):
                tid = secrets.token_hex(16)
                headers = {"x-trace-id": tid} if i % 2 else {"traceparent": f"00-{tid}-{secrets.token_hex(8)}-01"}
                r = await client.post(
                    "/v1/skills/text.summarize/execute", json={"inputs": {"text": "A b. C d."}}, headers=headers
                )
                assert r.status_code == 200
                await client.get(f"/no/such/{secrets.token_hex(8)}")
                await client.get(f"/v1/runs/run_{secrets.token_hex(12)}")

        await burst(20)
        await scrape(client)  # so the scrape itself is among the series
        early = set(samples(await scrape(client)))
        await burst(980)
        late = samples(await scrape(client))
    assert set(late) == early
    assert value_of(late, "skillrun_runs_finished_total", skill="text.summarize", status="completed") == 1000
    routes = {dict(labels).get("route") for (name, labels) in late if name.startswith("http_server")}
    assert routes == {"/v1/skills/text.summarize/execute", "unmatched", "/v1/runs/{run_id}", "/metrics"}
    for _name, labels in late:
        assert not any(len(v) >= 32 and all(c in "0123456789abcdef" for c in v) for _, v in labels)


def value_of(s: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return s.get((name, frozenset(labels.items())), 0.0)


def test_metrics_port_serves_metrics_apart_from_the_api(tmp_path: Path) -> None:
    """--metrics-port P: the metrics are on P, and /metrics on the API's port is 404."""
    port = free_port()
    server = start_server(tmp_path, args=["--metrics-port", str(port), "--db", ":memory:"])
    try:
        r = httpx.post(server.url + "/v1/skills/text.summarize/execute", json={"inputs": {"text": "a b. c d."}},
                       headers={"x-api-key": API_KEY})
        assert r.status_code == 200
        assert httpx.get(server.url + "/metrics").status_code == 404
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert value(text, "skillrun_runs_finished_total", skill="text.summarize", status="completed") == 1
    finally:
        server.stop()


def test_several_processes_share_one_sum_in_multiprocess_mode(tmp_path: Path) -> None:
    """PROMETHEUS_MULTIPROC_DIR (what --workers N uses): two server processes, one run on each;
    a scrape of either process counts both runs."""
    shared = tmp_path / "prom"
    shared.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    one = start_server(tmp_path / "1", env=env, args=["--db", ":memory:"])
    two = start_server(tmp_path / "2", env=env, args=["--db", ":memory:"])
    try:
        for s in (one, two):
            r = httpx.post(s.url + "/v1/skills/text.summarize/execute", json={"inputs": {"text": "a b. c d."}},
                           headers={"x-api-key": API_KEY})
            assert r.status_code == 200
        for s in (one, two):
            text = httpx.get(s.url + "/metrics").text
            assert value(text, "skillrun_runs_finished_total", skill="text.summarize", status="completed") == 2
            assert value(text, "skillrun_build_info", version=__import__("skillrun").__version__) == 1
    finally:
        one.stop()
        two.stop()


def test_prometheus_scrapes_the_server_and_its_query_api_returns_the_run_counters(tmp_path: Path) -> None:
    """A real Prometheus (Debian package) scrapes a running server every second; its HTTP query
    API then returns skillrun_runs_finished_total for the two runs made."""
    prometheus = require_tool("prometheus")
    server = start_server(tmp_path, args=["--db", ":memory:"])
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: { scrape_interval: 1s, evaluation_interval: 1s }\n"
        "scrape_configs:\n"
        f"  - job_name: skillrun\n    static_configs: [{{ targets: ['127.0.0.1:{server.port}'] }}]\n"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    try:
        for _ in range(2):
            r = httpx.post(server.url + "/v1/skills/text.summarize/execute",
                           json={"inputs": {"text": "a b. c d."}}, headers={"x-api-key": API_KEY})
            assert r.status_code == 200
        query = 'sum(skillrun_runs_finished_total{skill="text.summarize",status="completed"})'
        deadline = time.monotonic() + 60
        found = None
        while time.monotonic() < deadline:
            try:
                body = httpx.get(f"http://127.0.0.1:{prom_port}/api/v1/query", params={"query": query}, timeout=2).json()
                result = body["data"]["result"]
                if result and float(result[0]["value"][1]) == 2:
                    found = result
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        assert found, (tmp_path / "prometheus.log").read_text(errors="replace")[-3000:]
        up = httpx.get(f"http://127.0.0.1:{prom_port}/api/v1/query", params={"query": "up{job='skillrun'}"}).json()
        assert up["data"]["result"][0]["value"][1] == "1"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        server.stop()


_SUPERVISE = """
import sys
from skillrun.cli import ServeOptions, WorkerSupervisor
from skillrun.observe import multiproc
from skillrun.settings import Settings
multiproc.prepare(2)  # as `skillrun serve --workers 2` does, before the workers start
settings = Settings(api_keys=[{key!r}], db=":memory:", http_public=False, rate_limit="100000/minute")
sys.exit(WorkerSupervisor(settings, ServeOptions("127.0.0.1", {port}, "info"), 2).run())
"""


def test_with_two_workers_every_scrape_counts_the_runs_of_both(tmp_path: Path) -> None:
    """`--workers 2` (the supervisor, each worker with its own in-memory store): 20 runs, each
    on a new connection so both workers serve some; then 10 scrapes, whichever worker answers
    each, all count 20 finished runs and no run in progress."""
    port = free_port()
    log = tmp_path / "supervisor.log"
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", _SUPERVISE.format(key=API_KEY, port=port)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while log.read_text(errors="replace").count("Application startup complete") < 2:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.2)
        for _ in range(20):
            r = httpx.post(url + "/v1/skills/text.summarize/execute", json={"inputs": {"text": "a b. c d."}},
                           headers={"x-api-key": API_KEY, "connection": "close"})
            assert r.status_code == 200
        for _ in range(10):
            text = httpx.get(url + "/metrics", headers={"connection": "close"}).text
            assert value(text, "skillrun_runs_finished_total", skill="text.summarize", status="completed") == 20
            assert value(text, "skillrun_runs_in_progress", skill="text.summarize") == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_batched_step_durations_match_direct_observation() -> None:
    """3,000 step durations spread over every bucket, through a batch, give the same bucket
    counts and count as Histogram.observe one by one (and the same sum, to rounding)."""
    from prometheus_client import CollectorRegistry, Histogram

    from skillrun.observe.metrics import Batch

    registry = CollectorRegistry()
    batched = Histogram("a_seconds", "a", buckets=(0.001, 0.01, 0.1, 1, 10), registry=registry)
    direct = Histogram("b_seconds", "b", buckets=(0.001, 0.01, 0.1, 1, 10), registry=registry)
    batch = Batch(batched)
    values = [10 ** (i % 7 - 4) for i in range(3000)] + [0.01, 1.0]  # bounds themselves land in their bucket
    for v in values:
        batch.observe(v)
        direct.observe(v)
    batch.flush()
    a = {(s.name.replace("a_", ""), tuple(sorted(s.labels.items()))): s.value
         for f in registry.collect() if f.name == "a_seconds" for s in f.samples if "created" not in s.name}
    b = {(s.name.replace("b_", ""), tuple(sorted(s.labels.items()))): s.value
         for f in registry.collect() if f.name == "b_seconds" for s in f.samples if "created" not in s.name}
    assert set(a) == set(b)
    for key in a:
        assert a[key] == pytest.approx(b[key]), key


def test_updates_reach_the_metrics_in_batches_and_every_scrape_sees_them() -> None:
    """A counter's and a gauge's updates add up in their batch (no lock, no prometheus-client
    call each); a scrape (``exposition``) flushes them first, and so does ``FLUSH_N`` updates."""
    from skillrun.observe.metrics import Batch, Metrics

    m = Metrics("test")
    started = m.child(m.runs_started, "demo.ticker", "api")
    assert m.child(m.runs_started, "demo.ticker", "api") is started
    for _ in range(3):
        started.inc()
    m.child(m.sse_streams_open).inc(5)
    m.child(m.sse_streams_open).dec(2)
    sample = m.registry.get_sample_value
    assert sample("skillrun_runs_started_total", {"skill": "demo.ticker", "channel": "api"}) in (None, 0.0)
    text = m.exposition(None)[0].decode()
    assert value(text, "skillrun_runs_started_total", skill="demo.ticker", channel="api") == 3
    assert value(text, "skillrun_sse_streams_open") == 3
    for _ in range(Batch.FLUSH_N):
        started.inc()
    assert sample("skillrun_runs_started_total", {"skill": "demo.ticker", "channel": "api"}) == 3 + Batch.FLUSH_N


@pytest.mark.anyio
async def test_a_running_runs_step_durations_appear_within_seconds(app_factory: Callable[..., Any]) -> None:
    """A 10-step ticker, 300 ms a step: 2.2 s after it starts, while it still runs, the scrape
    already counts at least 3 completed steps (durations are added at least every second)."""
    async with asgi_client(app_factory()) as client:
        r = await client.post("/v1/skills/demo.ticker/execute/async", json={"inputs": {"steps": 10, "delay_ms": 300}})
        run_id = r.json()["run_id"]
        await asyncio.sleep(2.2)
        text = await scrape(client)
        assert (await client.get(f"/v1/runs/{run_id}")).json()["status"] == "running"
    assert value(text, "skillrun_step_duration_seconds_count", skill="demo.ticker", capability="util.sleep",
                 status="completed") >= 3
