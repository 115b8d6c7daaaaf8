"""Durable runs benchmark: the SQLite store against the in-memory store, same run.

    python bench/runs.py [--quick] [--followers N]

Two ``skillrun serve`` processes on loopback, one on a SQLite file and one with
``SKILLRUN_DB=:memory:``; the load comes from a lean raw-socket client (this file
run with ``client ...``) in its own process, since httpx would be the bottleneck.

  (a) one demo.ticker stream of ~10,000 events: events/s on SQLite vs memory
      (aim: ratio >= 0.70; the store must not pace the stream)
  (b) N concurrent followers (default 1,000) of one live run via
      GET /v1/runs/{id}/events: every follower must get every event once, in order
  (c) server RSS with N idle followers of one run (per follower)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

KEY = "bench-key"
ID = re.compile(rb"^id: (\d+)$", re.M)


# --- the lean client (its own process) -----------------------------------------------


def _request(method: str, host: str, port: int, path: str, body: bytes) -> bytes:
    # HTTP/1.0: the answer is not chunked and ends when the server closes, so counting
    # frames needs no chunk decoding.
    head = [f"{method} {path} HTTP/1.0", f"Host: {host}:{port}", f"x-api-key: {KEY}"]
    if body:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _one(host: str, port: int, method: str, path: str, body: bytes, started: list[int],
               idle_after: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(_request(method, host, port, path, body))
    await writer.drain()
    data = bytearray()
    counted = False
    try:
        while chunk := await reader.read(1 << 16):
            data += chunk
            if not counted and data.count(b"\nevent: ") >= idle_after:
                counted = True
                started[0] += 1
    finally:
        writer.close()
    ids = [int(m) for m in ID.findall(bytes(data))]
    status = int(data.split(b" ", 2)[1]) if data[:5] == b"HTTP/" else 0
    return {
        "status": status,
        "ids_ok": ids == list(range(ids[0], ids[0] + len(ids))) if ids else False,
        "events": len(ids),
        "done": b"event: done" in data,
        "duration": time.perf_counter() - t0,
    }


async def _client(host: str, port: int, method: str, path: str, body: str, n: int, idle_after: int) -> None:
    started = [0]
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(_one(host, port, method, path, body.encode(), started, idle_after))
             for _ in range(n)]
    if idle_after:
        while started[0] < n and not all(t.done() for t in tasks):
            await asyncio.sleep(0.05)
        print("ready", flush=True)  # every follower has its first events and now waits
    results = await asyncio.gather(*tasks, return_exceptions=True)
    wall = time.perf_counter() - t0
    ok = [r for r in results if isinstance(r, dict) and r["status"] == 200 and r["ids_ok"] and r["done"]]
    bad = [repr(r)[:200] for r in results if not (isinstance(r, dict) and r in ok)]
    print(json.dumps({
        "wall": wall,
        "ok": len(ok),
        "errors": len(bad),
        "error_samples": bad[:3],
        "events": [r["events"] for r in ok],
        "durations": sorted(r["duration"] for r in ok),
    }), flush=True)


def client_main(argv: list[str]) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    host, port, method, path, body, n, idle_after = argv
    asyncio.run(_client(host, int(port), method, path, body, int(n), int(idle_after)))


# --- the driver ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(tmp: Path, db: str, workers: int = 1) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "SKILLRUN_API_KEYS": KEY, "SKILLRUN_RATE_LIMIT": "100000000/minute", "SKILLRUN_DB": db}
    proc = subprocess.Popen(
        [sys.executable, "-m", "skillrun", "serve", "--port", str(port), "--log-level", "warning",
         "--workers", str(workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({db})")
        try:
            httpx.get(url + "/v1/health/live", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def client_cmd(url: str, method: str, path: str, body: dict[str, Any] | None, n: int, idle_after: int = 0) -> list[str]:
    host, port = url.removeprefix("http://").split(":")
    return [sys.executable, __file__, "client", host, port, method, path,
            json.dumps(body) if body is not None else "", str(n), str(idle_after)]


def run_client(*args: Any, **kw: Any) -> dict[str, Any]:
    out = subprocess.run(client_cmd(*args, **kw), capture_output=True, text=True, timeout=900)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def start_async(url: str, inputs: dict[str, Any]) -> str:
    r = httpx.post(url + "/v1/skills/demo.ticker/execute/async", json={"inputs": inputs},
                   headers={"x-api-key": KEY}, timeout=30)
    r.raise_for_status()
    return str(r.json()["run_id"])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes, to check the script works")
    ap.add_argument("--followers", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    steps = 1_000 if args.quick else 4_999  # demo.ticker emits 2 * steps + 3 events
    followers = args.followers or (100 if args.quick else 1_000)
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"skillrun-bench-runs-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    sqlite, sqlite_url = start_server(tmp, str(tmp / "runs.db"))
    memory, memory_url = start_server(tmp, ":memory:")
    try:
        stream = "/v1/skills/demo.ticker/execute/stream"
        for url in (sqlite_url, memory_url):  # warm up
            run_client(url, "POST", stream, {"inputs": {"steps": 50}}, 1)

        # (a) one long stream on each store, best of --repeat, interleaved.
        n_events = 2 * steps + 3
        best = {"sqlite": 0.0, "memory": 0.0}
        for _ in range(args.repeat):
            for name, url in (("sqlite", sqlite_url), ("memory", memory_url)):
                r = run_client(url, "POST", stream, {"inputs": {"steps": steps}}, 1)
                assert r["errors"] == 0 and r["events"] == [n_events], r
                best[name] = max(best[name], n_events / r["wall"])
        print(f"(a) one stream, {n_events} events: sqlite {best['sqlite']:,.0f} ev/s, memory "
              f"{best['memory']:,.0f} ev/s, ratio {best['sqlite'] / best['memory']:.2f} (aim >= 0.70)")

        # (b) many followers of one live run on the SQLite store.
        run_id = start_async(sqlite_url, {"steps": 200, "delay_ms": 10})
        r = run_client(sqlite_url, "GET", f"/v1/runs/{run_id}/events", None, followers)
        expected = 2 * 200 + 3
        complete = sum(1 for e in r["events"] if e == expected)
        print(f"(b) {followers} followers of one live run (sqlite): {r['ok']} complete and in order "
              f"({complete} with all {expected} events), errors {r['errors']} {r['error_samples']}; "
              f"wall {r['wall']:.2f} s, follower duration p50/p95 {pct(r['durations'], .5):.2f}/"
              f"{pct(r['durations'], .95):.2f} s (the run itself takes >= 2 s)")

        # (c) RSS with idle followers: one step that sleeps, so nothing happens after step_start.
        for name, proc, url in (("sqlite", sqlite, sqlite_url), ("memory", memory, memory_url)):
            run_id = start_async(url, {"steps": 1, "delay_ms": 60_000})
            before = rss_mib(proc.pid)
            p = subprocess.Popen(client_cmd(url, "GET", f"/v1/runs/{run_id}/events", None, followers, 2),
                                 stdout=subprocess.PIPE, text=True)
            assert p.stdout is not None
            line = p.stdout.readline().strip()
            time.sleep(1)
            idle = rss_mib(proc.pid)
            httpx.post(f"{url}/v1/runs/{run_id}/cancel", headers={"x-api-key": KEY}, timeout=30).raise_for_status()
            out, _ = p.communicate(timeout=120)
            res = json.loads(out.strip().splitlines()[-1])
            print(f"(c) {followers} idle followers ({name}, {line}): RSS {before:.0f} -> {idle:.0f} MiB, "
                  f"{(idle - before) * 1024 / followers:.1f} KiB per follower; after cancel "
                  f"{res['ok']} ended with done, errors {res['errors']}")
    finally:
        for proc in (sqlite, memory):
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["client"]:
        client_main(sys.argv[2:])
    else:
        main()
