"""Fairness benchmark: another key's /execute latency while one key floods the server.

    python bench/fairness.py [--quick] [--runs N] [--samples N]

One ``skillrun serve`` process with default limits. Key B's ``text.summarize``
``/execute`` latency is measured idle (the baseline), then while key A holds N
``demo.ticker`` runs with ``{"steps": 1, "delay_ms": 30000}`` (the issue's starvation
test: 256, then 1,000 runs; before, ``util.sleep`` held a capability slot and B's 11 ms
``/execute`` took 25.8 s). Prints p50/p99 under load divided by idle, same run;
the aim is a ratio <= 2.

Then the burst, on the default store (a SQLite file): key A opens 1,000 ``demo.ticker`` streams at once (the lean client of
bench/_loadclient.py, its own process) while key B sends its ``/execute`` one after
another until A's streams have all started; prints B's p50 and worst against idle, and
A's time to first event. The fast lane's admission takes keys in turn, so B does not
wait behind A's whole burst.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

KEY_A, KEY_B = "bench-key-a", "bench-key-b"
TEXT = "Fairness keeps every tenant served. One key must not starve another. " * 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(tmp: Path, db: str = ":memory:") -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "SKILLRUN_API_KEYS": f"{KEY_A},{KEY_B}",
        "SKILLRUN_RATE_LIMIT": "1000000/minute",
        "SKILLRUN_DB": db,
        "SKILLRUN_HTTP_PUBLIC": "0",
    }
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "skillrun", "serve", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/v1/health/live", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def latencies(url: str, samples: int) -> list[float]:
    """Key B's /execute, one after another (the same client both times, so it cancels out)."""
    out = []
    with httpx.Client(base_url=url, headers={"x-api-key": KEY_B}, timeout=120) as client:
        client.post("/v1/skills/text.summarize/execute", json={"inputs": {"text": TEXT}})  # warm up
        for _ in range(samples):
            t0 = time.perf_counter()
            r = client.post("/v1/skills/text.summarize/execute", json={"inputs": {"text": TEXT}})
            out.append(time.perf_counter() - t0)
            assert r.status_code == 200 and r.json()["status"] == "completed", r.text
    return out


async def flood(url: str, runs: int) -> list[str]:
    """Key A starts ``runs`` sleeping ticker runs (the starvation test's input)."""
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=url, headers={"x-api-key": KEY_A}, timeout=60, limits=limits) as client:
        async def one() -> str:
            r = await client.post("/v1/skills/demo.ticker/execute/async",
                                  json={"inputs": {"steps": 1, "delay_ms": 30000}})
            assert r.status_code == 202, r.text
            return str(r.json()["run_id"])

        return list(await asyncio.gather(*(one() for _ in range(runs))))


def running(url: str, run_ids: list[str]) -> int:
    with httpx.Client(base_url=url, headers={"x-api-key": KEY_A}, timeout=30) as client:
        return sum(client.get(f"/v1/runs/{rid}").json()["status"] == "running" for rid in run_ids)


def burst(url: str, streams: int) -> dict[str, Any]:
    """Key B's /execute latencies while key A's ``streams`` stream starts arrive at once."""
    host, port = url.removeprefix("http://").split(":")
    body = '{"inputs": {"steps": 10, "delay_ms": 100}}'
    a = subprocess.Popen([sys.executable, str(Path(__file__).parent / "_loadclient.py"), "stream", host, port,
                          "/v1/skills/demo.ticker/execute/stream", body, str(streams),
                          '{"x-api-key": "%s"}' % KEY_A], stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)  # the client process starting up
    out: list[float] = []
    with httpx.Client(base_url=url, headers={"x-api-key": KEY_B}, timeout=120) as client:
        t0 = time.perf_counter()
        while a.poll() is None and time.perf_counter() - t0 < 1.5:
            began = time.perf_counter()
            r = client.post("/v1/skills/text.summarize/execute", json={"inputs": {"text": TEXT}})
            out.append(time.perf_counter() - began)
            assert r.status_code == 200, r.text
    result = __import__("json").loads(a.communicate(timeout=300)[0])
    assert result["errors"] == 0, result["error_samples"]
    return {"b": out, "a_ttfe": result["ttfe"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="256 runs, 20 samples")
    parser.add_argument("--runs", type=int, nargs="*", default=None)
    parser.add_argument("--samples", type=int, default=None)
    args = parser.parse_args()
    sizes = args.runs or ([256] if args.quick else [256, 1000])
    samples = args.samples or (20 if args.quick else 100)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            proc, url = start_server(Path(tmp))
            try:
                idle = latencies(url, samples)
                run_ids = asyncio.run(flood(url, size))
                loaded = latencies(url, samples)
                still = running(url, run_ids)  # the flood must still be holding on
            finally:
                proc.kill()
                proc.wait()
            results.append({
                "runs": size, "still_running": still,
                "idle_p50_ms": pct(idle, 50) * 1000, "idle_p99_ms": pct(idle, 99) * 1000,
                "load_p50_ms": pct(loaded, 50) * 1000, "load_p99_ms": pct(loaded, 99) * 1000,
            })
    print(f"key B text.summarize /execute, {samples} samples; key A holds N demo.ticker runs sleeping 30 s")
    print(f"{'N':>6} {'running':>8} {'idle p50':>9} {'load p50':>9} {'ratio':>6} {'idle p99':>9} {'load p99':>9} {'ratio':>6}")
    worst = 0.0
    for r in results:
        r50 = r["load_p50_ms"] / r["idle_p50_ms"]
        r99 = r["load_p99_ms"] / r["idle_p99_ms"]
        worst = max(worst, r50)
        print(f"{r['runs']:>6} {r['still_running']:>8} {r['idle_p50_ms']:>8.1f}ms {r['load_p50_ms']:>8.1f}ms {r50:>6.2f}"
              f" {r['idle_p99_ms']:>8.1f}ms {r['load_p99_ms']:>8.1f}ms {r99:>6.2f}")
    print(f"worst p50 ratio {worst:.2f} (aim <= 2)")

    streams = 250 if args.quick else 1_000
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp), str(Path(tmp) / "runs.db"))  # the default store
        try:
            idle = latencies(url, samples)
            got = burst(url, streams)
        finally:
            proc.kill()
            proc.wait()
    b, ttfe = got["b"], got["a_ttfe"]
    print(f"burst: key A opens {streams} streams at once; key B's /execute during it ({len(b)} samples): "
          f"p50 {pct(b, 50) * 1000:.0f} ms, worst {max(b) * 1000:.0f} ms; idle p50 {pct(idle, 50) * 1000:.1f} ms "
          f"(worst / idle p50: {max(b) / pct(idle, 50):.0f}x); A's first event p50/p95 "
          f"{pct(ttfe, 50) * 1000:.0f}/{pct(ttfe, 95) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
