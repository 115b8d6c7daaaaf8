"""Flood benchmark: does the server keep serving while one key sends worst-case inputs?

    python bench/flood.py [--quick] [--samples N] [--flooders N]

For each setting (worker processes on, the default; and ``SKILLRUN_WORKER_PROCS=0``,
everything inline on the event loop, for comparison) one ``skillrun serve`` process is
started and measured twice: idle (the baseline), then while key A keeps ``--flooders``
requests in flight, each a large hostile input (500 KB of text through
``text.summarize``, ``"a" * 100000`` through ``demo.showcase``'s PII gate, a
300 KB document of small sections through ``doc.pipeline``). Measured: the latency of
``/v1/health/live`` and of key B's small ``text.summarize`` ``/execute``, p50 and p99;
printed as flood / idle ratios from the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from fairness import KEY_A, KEY_B, TEXT, start_server  # noqa: E402

HOSTILE = [
    ("text.summarize", {"text": "Words and more words. " * 23_000, "max_sentences": 3}),
    ("demo.showcase", {"text": "a" * 100_000}),
    ("doc.pipeline", {"document": "\n\n".join(["Word here."] * 25_000), "flaky_failures": 0}),
]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def sample(url: str, n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"health": [], "execute": []}
    with httpx.Client(base_url=url, timeout=120) as c:
        for _ in range(n):
            t0 = time.perf_counter()
            c.get("/v1/health/live").raise_for_status()
            out["health"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            r = c.post("/v1/skills/text.summarize/execute", json={"inputs": {"text": TEXT}}, headers={"x-api-key": KEY_B})
            r.raise_for_status()
            out["execute"].append(time.perf_counter() - t0)
            time.sleep(0.01)
    return out


def flood(url: str, stop: threading.Event, done: list[int]) -> None:
    with httpx.Client(base_url=url, timeout=300, headers={"x-api-key": KEY_A}) as c:
        i = 0
        while not stop.is_set():
            skill, inputs = HOSTILE[i % len(HOSTILE)]
            i += 1
            c.post(f"/v1/skills/{skill}/execute", json={"inputs": inputs})
            done.append(1)


def measure(procs: str, samples: int, flooders: int) -> dict[str, float]:
    import os

    os.environ["SKILLRUN_WORKER_PROCS"] = procs
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp))
        try:
            sample(url, 5)  # warm-up
            idle = sample(url, samples)
            stop, done = threading.Event(), []
            threads = [threading.Thread(target=flood, args=(url, stop, done)) for _ in range(flooders)]
            for t in threads:
                t.start()
            time.sleep(1.0)
            loaded = sample(url, samples)
            stop.set()
            for t in threads:
                t.join()
        finally:
            proc.kill()
            proc.wait()
    result = {"hostile_done": float(len(done))}
    for name in ("health", "execute"):
        for q, label in ((0.5, "p50"), (0.99, "p99")):
            result[f"{name}_{label}_idle_ms"] = pct(idle[name], q) * 1000
            result[f"{name}_{label}_flood_ms"] = pct(loaded[name], q) * 1000
    result["health_mean_ratio"] = statistics.mean(loaded["health"]) / statistics.mean(idle["health"])
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--flooders", type=int, default=4)
    args = p.parse_args()
    samples = 30 if args.quick else args.samples
    for procs, label in (("", "worker processes (default)"), ("0", "inline (SKILLRUN_WORKER_PROCS=0)")):
        r = measure(procs, samples, args.flooders)
        print(f"\n{label}: {int(r['hostile_done'])} hostile requests finished during the sample")
        for name in ("health", "execute"):
            for q in ("p50", "p99"):
                idle, flood_ = r[f"{name}_{q}_idle_ms"], r[f"{name}_{q}_flood_ms"]
                print(f"  {name:8s} {q}: idle {idle:8.1f} ms  flood {flood_:8.1f} ms  ratio {flood_ / idle:6.1f}x")


if __name__ == "__main__":
    main()
