"""Delta benchmark: one run streaming 100,000 tiny deltas, coalesced against not.

    python bench/deltas.py [--quick]

A fake OpenAI-compatible model (tests/fake_llm.py: a real server on loopback,
the real SSE wire format) streams N one-character chunks as fast as it can; a
``skillrun serve`` process runs ``llm.chat`` over it, once with coalescing on
(``SKILLRUN_DELTA_WINDOW_MS=25``, the default) and once with it off (``0``: the
baseline, measured in the same run). For each it prints:

  - events written: step_delta events in the log, and events/s over the step's life
  - text a client sees: delta characters per second, from the request to ``done``
  - the client's time to ``done``

then the coalesced figures as ratios against the baseline. Coalescing should
cut events by orders of magnitude while the client's text throughput stays the
same or rises (fewer frames to encode, store and parse per character).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from fake_llm import FakeLLM, Reply  # noqa: E402  (the tests' fake model, reused)

KEY = "bench-key"
SKILL = """
id: bench.chat
version: "1"
steps:
  - id: answer
    uses: llm.chat
    input:
      messages: [{ role: user, content: "stream" }]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(window_ms: int, base_url: str, skills: Path, chunks: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "SKILLRUN_API_KEYS": KEY,
        "SKILLRUN_LLM_BASE_URL": base_url,
        "SKILLRUN_DELTA_WINDOW_MS": str(window_ms),
        # Coalescing off writes an event per chunk: let the log hold them.
        "SKILLRUN_MAX_EVENTS_PER_RUN": str(chunks * 2 + 100),
        "SKILLRUN_METRICS": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "skillrun", "serve", "--port", str(port), "--db", ":memory:", "--skills", str(skills)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit("server exited")
        try:
            httpx.get(url + "/v1/health/live", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def measure(window_ms: int, chunks: int, skills: Path) -> dict[str, float]:
    text = [chr(ord("a") + i % 26) for i in range(chunks)]
    with FakeLLM([Reply(text, batch=1000)]) as fake:
        proc, url = start(window_ms, fake.base_url, skills, chunks)
        try:
            t0 = time.perf_counter()
            with httpx.Client(timeout=600) as c:
                raw = c.post(f"{url}/v1/skills/bench.chat/execute/stream", json={"inputs": {}},
                             headers={"x-api-key": KEY}).text
            elapsed = time.perf_counter() - t0
        finally:
            proc.terminate()
            proc.wait(10)
    events = [json.loads(line[6:]) for line in raw.replace("\r\n", "\n").split("\n") if line.startswith("data: ")]
    found = [e for e in events if e["type"] == "step_delta"]
    seen = "".join(e["data"]["delta"].get("text", "") for e in found)
    assert seen == "".join(text), "the deltas' text differs from the model's"
    end: dict[str, Any] = next(e for e in events if e["type"] == "step_completed")
    step_s = end["data"]["duration_ms"] / 1000
    return {"events": len(found), "events_per_s": len(found) / step_s, "chars_per_s": len(seen) / elapsed,
            "client_s": elapsed, "step_s": step_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20,000 deltas instead of 100,000")
    args = parser.parse_args()
    chunks = 20_000 if args.quick else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        skills = Path(tmp)
        (skills / "bench.chat.yaml").write_text(SKILL)
        base = measure(0, chunks, skills)
        coalesced = measure(25, chunks, skills)
    print(f"{chunks:,} one-character deltas through llm.chat, one run each")
    print(f"{'':24}{'events':>10}{'events/s':>12}{'text chars/s':>14}{'client s':>10}{'step s':>8}")
    for name, m in (("coalescing off (base)", base), ("coalescing 25 ms", coalesced)):
        print(f"{name:24}{m['events']:>10,.0f}{m['events_per_s']:>12,.0f}{m['chars_per_s']:>14,.0f}"
              f"{m['client_s']:>10.2f}{m['step_s']:>8.2f}")
    print(f"ratios (coalesced / base): events written {coalesced['events'] / base['events']:.4f}, "
          f"events/s {coalesced['events_per_s'] / base['events_per_s']:.4f}, "
          f"text a client sees per second {coalesced['chars_per_s'] / base['chars_per_s']:.2f}x, "
          f"time to done {coalesced['client_s'] / base['client_s']:.2f}x")


if __name__ == "__main__":
    main()
