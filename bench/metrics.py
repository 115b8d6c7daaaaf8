"""What Prometheus metrics cost: the same server with metrics on and off, side by side.

    python bench/metrics.py [--quick] [--repeat N]

Two ``skillrun serve`` processes on loopback, one with ``SKILLRUN_METRICS=1`` (the
default) and one with ``SKILLRUN_METRICS=0``, both on the in-memory store with the
access log off (``--log-level warning``), loaded by the lean raw-socket client
(bench/_loadclient.py) in its own process. Rounds alternate between the two servers
so a noisy neighbour hits both alike. Printed as ratios, on / off, measured in the
same run: of the best rounds, and the median of each round's pair (on a shared
machine the pairs scatter by several percent either way; aim: >= 0.95, i.e. metrics
cost <= 5%):

  (a) one demo.ticker stream of 10,000 steps (20,003 events): events/s
  (c) /execute of text.summarize at concurrency 16: requests/s
  (p) the same two in process (the app through httpx's ASGI transport, no sockets):
      CPU seconds (``time.process_time``), which a busy neighbour disturbs far less
      than wall time; the ratio is off / on (>= 0.95: metrics cost <= 5% CPU)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from stream import KEY, TEXT, free_port, load, wait_up  # noqa: E402


def start(tmp: Path, metrics: bool) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "SKILLRUN_API_KEYS": KEY,
        "SKILLRUN_RATE_LIMIT": "100000000/minute",
        "SKILLRUN_DB": ":memory:",
        "SKILLRUN_METRICS": "1" if metrics else "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "skillrun", "serve", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp,
    )
    wait_up(f"http://127.0.0.1:{port}/v1/health/live", proc)
    return proc, port


def report(what: str, unit: str, rates: dict[str, list[float]]) -> None:
    on, off = max(rates["on"]), max(rates["off"])
    pairs = sorted(a / b for a, b in zip(rates["on"], rates["off"]))
    print(f"{what}: metrics on {on:,.0f} {unit}, off {off:,.0f} {unit}; ratio of the best {on / off:.3f}, "
          f"median of {len(pairs)} pairs {statistics.median(pairs):.3f} (aim >= 0.95)")


async def in_process(repeat: int, steps: int) -> None:
    from skillrun.http.app import create_app
    from skillrun.settings import Settings

    apps = {which: create_app(Settings(api_keys=[KEY], rate_limit="100000000/minute", metrics=which == "on"))
            for which in ("on", "off")}
    cpu: dict[str, dict[str, list[float]]] = {"stream": {"on": [], "off": []}, "execute": {"on": [], "off": []}}
    body = {"inputs": {"text": TEXT, "max_sentences": 2}}
    for round_ in range(repeat + 1):  # the first round warms up
        for which in ("on", "off") if round_ % 2 else ("off", "on"):
            transport = httpx.ASGITransport(app=apps[which])
            async with httpx.AsyncClient(transport=transport, base_url="http://app", headers={"x-api-key": KEY}) as c:
                t = time.process_time()
                r = await c.post("/v1/skills/demo.ticker/execute/stream", json={"inputs": {"steps": steps}})
                stream_s = time.process_time() - t
                assert r.status_code == 200
                t = time.process_time()
                for _ in range(100):
                    assert (await c.post("/v1/skills/text.summarize/execute", json=body)).status_code == 200
                execute_s = time.process_time() - t
            if round_:
                cpu["stream"][which].append(stream_s)
                cpu["execute"][which].append(execute_s)
    for what, label in (("stream", f"one {steps}-step stream"), ("execute", "100 x /execute")):
        on, off = statistics.median(cpu[what]["on"]), statistics.median(cpu[what]["off"])
        print(f"(p) in process, {label}: CPU median on {on * 1000:.1f} ms, off {off * 1000:.1f} ms; "
              f"ratio off/on {off / on:.3f} (aim >= 0.95)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes, to check the script works")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    steps = 2_000 if args.quick else 10_000
    asyncio.run(in_process(args.repeat, steps))
    seconds = 2 if args.quick else 5
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"skillrun-bench-metrics-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    on, on_port = start(tmp, True)
    off, off_port = start(tmp, False)
    auth = {"x-api-key": KEY}
    ports = {"on": on_port, "off": off_port}
    try:
        for port in ports.values():  # warm up
            load("stream", port, "/v1/skills/demo.ticker/execute/stream", {"inputs": {"steps": 50}}, 1, headers=auth)
        n_events = 2 * steps + 3
        stream: dict[str, list[float]] = {"on": [], "off": []}
        execute: dict[str, list[float]] = {"on": [], "off": []}
        body = {"inputs": {"text": TEXT, "max_sentences": 2}}
        for round_ in range(args.repeat):
            order = ("on", "off") if round_ % 2 == 0 else ("off", "on")
            for which in order:
                r = load("stream", ports[which], "/v1/skills/demo.ticker/execute/stream",
                         {"inputs": {"steps": steps}}, 1, headers=auth)
                assert r["errors"] == 0 and r["events"] == n_events, r
                stream[which].append(r["events"] / r["wall"])
            for which in order:
                r = load("execute", ports[which], "/v1/skills/text.summarize/execute", body, 16, seconds, headers=auth)
                assert r["errors"] == 0, r
                execute[which].append(r["requests"] / r["wall"])
        # The metrics server really counted what it served; the other has none.
        scraped = httpx.get(f"http://127.0.0.1:{on_port}/metrics").text
        assert "skillrun_runs_finished_total" in scraped
        assert httpx.get(f"http://127.0.0.1:{off_port}/metrics").status_code == 404
        report(f"(a) one stream, {n_events} events", "ev/s", stream)
        report("(c) /execute text.summarize, concurrency 16", "req/s", execute)
    finally:
        for p in (on, off):
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
