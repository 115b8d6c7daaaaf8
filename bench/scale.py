"""Scale-out benchmark: the Redis run store against the SQLite store, same run.

    python bench/scale.py [--quick] [--followers N]

Starts its own ``redis-server`` (AOF on, ``appendfsync everysec``) in a temp dir, one
``skillrun serve`` on a SQLite file and two (nodes A and B) on that Redis; the load
comes from lean raw-socket clients in their own processes (bench/runs.py's, and a
latency client in this file), since httpx would be the bottleneck.

  (a) one demo.ticker stream of 10,000 steps (20,003 events): events/s through the
      Redis store vs the SQLite store (aim: ratio >= 0.70)
  (b) cross-node follow latency: N followers (default 100) on node B of a run that
      executes on node A; per live event (emitted after the follower joined), receipt on
      B minus the event's timestamp (set when A emitted it, ms resolution): p50 / p99 of
      the events emitted once all N were following (aim: p99 <= 50 ms), and apart, of those
      emitted while the N were still joining; against the same N followers on A
  (c) /execute req/s on each store with one serving process, and on Redis with
      ``skillrun serve --workers 2`` (SQLite serves one process only)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runs as lean  # noqa: E402  (bench/runs.py: the raw-socket client and server helpers)

KEY = lean.KEY


# --- the latency client (its own process) --------------------------------------------------


async def _follow(host: str, port: int, path: str, lat: list[tuple[float, float]], joined_at: list[float]) -> bool:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(lean._request("GET", host, port, path, b""))
    await writer.drain()
    done = False
    status = await reader.readline()
    joined = time.time()  # the server took the follow; events from before this are history (a replay)
    joined_at.append(joined)
    try:
        if b" 200 " not in status:
            raise RuntimeError(status.decode(errors="replace").strip() + " " + (await reader.read(300)).decode())
        while line := await reader.readline():
            if line.startswith(b"data: "):
                now = time.time()
                payload = json.loads(line[6:])
                stamp = payload.get("timestamp")
                emitted = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else 0.0
                if emitted >= joined:
                    lat.append((emitted, now - emitted))
            elif line.startswith(b"event: done"):
                done = True
    finally:
        writer.close()
    return done


async def _latency(host: str, port: int, path: str, n: int) -> None:
    """Print the latencies of events emitted once all ``n`` followers were in ("live"), and of
    those emitted while the others were still joining (the server busy starting their streams)."""
    lat: list[tuple[float, float]] = []
    joined_at: list[float] = []
    results = await asyncio.gather(*(_follow(host, port, path, lat, joined_at) for _ in range(n)),
                                   return_exceptions=True)
    errors = [repr(r)[:200] for r in results if isinstance(r, BaseException)]
    all_in = max(joined_at, default=0.0)
    print(json.dumps({"done": sum(r is True for r in results), "errors": errors[:3],
                      "latencies": sorted(d for e, d in lat if e >= all_in),
                      "joining": sorted(d for e, d in lat if e < all_in)}), flush=True)


async def _post(host: str, port: int, path: str, body: bytes) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(lean._request("POST", host, port, path, body))
    await writer.drain()
    try:
        head = await reader.read()
    finally:
        writer.close()
    return int(head.split(b" ", 2)[1]) if head[:5] == b"HTTP/" else 0


async def _executes(host: str, port: int, path: str, body: str, n: int, concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> int:
        async with gate:
            return await _post(host, port, path, body.encode())

    t0 = time.perf_counter()
    statuses = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    wall = time.perf_counter() - t0
    print(json.dumps({"ok": sum(s == 200 for s in statuses), "n": n, "wall": wall}), flush=True)


def execute_main(argv: list[str]) -> None:
    host, port, path, body, n, concurrency = argv
    asyncio.run(_executes(host, int(port), path, body, int(n), int(concurrency)))


def latency_main(argv: list[str]) -> None:
    host, port, path, n = argv
    asyncio.run(_latency(host, int(port), path, int(n)))


# --- the driver ----------------------------------------------------------------------------


def start_redis(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (Debian: apt-get install redis-server)")
    port = lean.free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp), "--appendonly", "yes",
         "--appendfsync", "everysec", "--save", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    import redis

    for _ in range(100):
        try:
            redis.Redis(port=port).ping()
            return proc, f"redis://127.0.0.1:{port}/0"
        except redis.RedisError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def follow_latency(url: str, run_id: str, n: int) -> dict[str, Any]:
    """Latencies of ``n`` followers of ``run_id`` on the server at ``url`` (a client process)."""
    host, port = url.removeprefix("http://").split(":")
    out = subprocess.run([sys.executable, __file__, "latency", host, port, f"/v1/runs/{run_id}/events", str(n)],
                         capture_output=True, text=True, timeout=600)
    if out.returncode:
        raise SystemExit(out.stderr)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes, to check the script works")
    ap.add_argument("--followers", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only-stream", action="store_true", help="(a) only")
    ap.add_argument("--only-follow", action="store_true", help="(b) only")
    args = ap.parse_args()
    steps = 1_000 if args.quick else 10_000
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"skillrun-bench-scale-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        redis_proc, redis_url = start_redis(tmp)
        procs.append(redis_proc)
        os.environ["SKILLRUN_REDIS_PREFIX"] = f"bench{os.getpid()}:"
        sqlite, sqlite_url = lean.start_server(tmp, str(tmp / "runs.db"))
        node_a, a_url = lean.start_server(tmp, redis_url)
        node_b, b_url = lean.start_server(tmp, redis_url)
        procs += [sqlite, node_a, node_b]
        print(f"machine: {os.cpu_count()} cores; redis-server with AOF (everysec)")
        stream = "/v1/skills/demo.ticker/execute/stream"
        for url in (sqlite_url, a_url):  # warm up
            lean.run_client(url, "POST", stream, {"inputs": {"steps": 50}}, 1)

        # (a) one long stream on each store, best of --repeat, interleaved.
        n_events = 2 * steps + 3
        best = {"sqlite": 0.0, "redis": 0.0}
        for _ in range(0 if args.only_follow else args.repeat):
            for name, url in (("sqlite", sqlite_url), ("redis", a_url)):
                r = lean.run_client(url, "POST", stream, {"inputs": {"steps": steps}}, 1)
                assert r["errors"] == 0 and r["events"] == [n_events], r
                best[name] = max(best[name], n_events / r["wall"])
        if not args.only_follow:
            print(f"(a) one stream, {n_events} events: redis {best['redis']:,.0f} ev/s, sqlite "
                  f"{best['sqlite']:,.0f} ev/s, ratio {best['redis'] / best['sqlite']:.2f} (aim >= 0.70)")

        if args.only_stream:
            return

        # (b) followers on B (cross-node) and on A (same node) of one run executing on A.
        ticks = 100 if args.quick else 200
        figures = {}
        for name, url in (("same node (A)", a_url), ("cross-node (B)", b_url)):
            run_id = lean.start_async(a_url, {"steps": ticks, "delay_ms": 20})
            res = follow_latency(url, run_id, args.followers)
            lat, joining = res["latencies"], res["joining"]
            figures[name] = (lean.pct(lat, .5) * 1000, lean.pct(lat, .99) * 1000)
            print(f"(b) {args.followers} followers, {name}: {res['done']} got done {res['errors']}; latency p50 "
                  f"{figures[name][0]:.1f} ms, p99 {figures[name][1]:.1f} ms over {len(lat)} events once all "
                  f"were in; while they joined p50 {lean.pct(joining, .5) * 1000:.1f} ms, p99 "
                  f"{lean.pct(joining, .99) * 1000:.1f} ms, max {max(joining, default=0) * 1000:.1f} ms over "
                  f"{len(joining)} events")
        same, cross = figures["same node (A)"], figures["cross-node (B)"]
        print(f"(b) cross-node / same-node: p50 x{cross[0] / max(same[0], 0.1):.2f}, p99 "
              f"x{cross[1] / max(same[1], 0.1):.2f} (aim: cross-node p99 <= 50 ms)")

        if args.only_follow:
            return

        # (c) /execute req/s, one process per store; then Redis with two workers.
        n = 300 if args.quick else 1_000
        rates = {}
        two, two_url = lean.start_server(tmp, redis_url, workers=2)
        procs.append(two)
        for name, url in (("sqlite", sqlite_url), ("redis", a_url), ("redis --workers 2", two_url)):
            host, port = url.removeprefix("http://").split(":")
            out = subprocess.run([sys.executable, __file__, "execute", host, port, "/v1/skills/demo.ticker/execute",
                                  json.dumps({"inputs": {"steps": 1}}), str(n), "16"],
                                 capture_output=True, text=True, timeout=600)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rates[name] = r["ok"] / r["wall"]
            print(f"(c) /execute x{n} at concurrency 16, {name}: {rates[name]:,.0f} req/s ({r['ok']} of {n} ok)")
        print(f"(c) redis / sqlite (1 worker each): {rates['redis'] / rates['sqlite']:.2f}; redis --workers 2 / 1: "
              f"{rates['redis --workers 2'] / rates['redis']:.2f} on {os.cpu_count()} cores")
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["client"]:
        lean.client_main(sys.argv[2:])
    elif sys.argv[1:2] == ["execute"]:
        execute_main(sys.argv[2:])
    elif sys.argv[1:2] == ["latency"]:
        latency_main(sys.argv[2:])
    else:
        main()
