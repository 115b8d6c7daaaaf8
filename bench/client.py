"""Python client benchmark: events/s parsed from one long stream, skillrun_client vs httpx-sse.

    python bench/client.py [--steps N] [--rounds R]

One long ``demo.ticker`` stream (2 events per step) is recorded from a real
``skillrun serve`` process, then replayed at full speed by a local socket server, so
both clients parse exactly the same bytes over a real connection, as fast as they can:

  client    skillrun_client.Client: SSE decoding, resume bookkeeping, and a typed
            pydantic event per frame (``client.runs.events(run_id)``)
  baseline  httpx + httpx-sse ``iter_sse()`` + ``json.loads(sse.data)`` (dicts, no types)

Each is run ``--rounds`` times, alternating, with its client made beforehand; the best
round counts. The ratio is client / baseline (aim >= 1.0). Figures depend on the machine:
compare ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import httpx
import httpx_sse

from skillrun_client import Client

KEY = "bench-client-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def record(steps: int) -> tuple[bytes, str]:
    """The raw SSE body of one demo.ticker run of ``steps`` steps, from a real server."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SKILLRUN_API_KEYS": KEY, "SKILLRUN_RATE_LIMIT": "1000000/minute"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "skillrun", "serve", "--port", str(port)],
            env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    httpx.get(url + "/v1/health/live", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            with httpx.stream(
                "POST", f"{url}/v1/skills/demo.ticker/execute/stream",
                json={"inputs": {"steps": steps}}, headers={"x-api-key": KEY}, timeout=300,
            ) as response:  # fmt: skip
                response.raise_for_status()
                return response.read(), response.headers["x-run-id"]
        finally:
            proc.kill()
            proc.wait()


class Replay:
    """Answers every request on a local socket with the recorded stream, as fast as it can."""

    def __init__(self, body: bytes, run_id: str) -> None:
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            f"X-Run-Id: {run_id}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        self.answer = head.encode() + body
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                conn.sendall(self.answer)


def run_client(client: Client, run_id: str) -> int:
    return sum(1 for _ in client.runs.events(run_id))


def run_baseline(client: httpx.Client, run_id: str) -> int:
    n = 0
    with httpx_sse.connect_sse(client, "GET", f"/v1/runs/{run_id}/events") as source:
        for sse in source.iter_sse():
            json.loads(sse.data)
            n += 1
    return n


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    count = fn()
    return count / (time.perf_counter() - started), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=10000, help="demo.ticker steps (2 events each)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    body, run_id = record(args.steps)
    replay = Replay(body, run_id)
    print(f"stream: {len(body):,} bytes, run {run_id}")
    rates: dict[str, tuple[float, int]] = {"client": (0.0, 0), "baseline": (0.0, 0)}
    # Clients are made once, outside the timing (an httpx client loads CA certificates).
    with Client(replay.url, KEY, max_retries=0) as ours, httpx.Client(base_url=replay.url, headers={"x-api-key": KEY}) as theirs:
        runs: dict[str, Callable[[], int]] = {
            "client": lambda: run_client(ours, run_id),
            "baseline": lambda: run_baseline(theirs, run_id),
        }
        for _ in range(args.rounds):  # alternate, so both see the same background load
            for name, fn in runs.items():
                rate, count = timed(fn)
                rates[name] = (max(rates[name][0], rate), count)
    (client, n_client), (baseline, n_base) = rates["client"], rates["baseline"]
    assert n_client == n_base, (n_client, n_base)
    print(f"events per stream: {n_client:,}")
    print(f"skillrun_client (typed events):   {client:>10,.0f} events/s")
    print(f"httpx-sse + json.loads (dicts):   {baseline:>10,.0f} events/s")
    print(f"ratio client / baseline:          {client / baseline:>10.2f}x  (aim >= 1.0)")


if __name__ == "__main__":
    main()
