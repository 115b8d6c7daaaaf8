"""A lean HTTP/1.1 load client on raw asyncio streams (httpx would be the bottleneck).

Run as its own process by ``bench/stream.py``; prints one JSON object of results.
  stream  HOST PORT PATH BODY N_CONCURRENT   -> events, bytes, errors, ttfe, durations
  execute HOST PORT PATH BODY CONCURRENCY SECONDS -> requests, errors, latencies
  idle    HOST PORT PATH BODY N HOLD_SECONDS -> ok, errors, min_pings, max_gap (streams held open)
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time


def _request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
            f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _one_stream(host, port, path, body, headers, start_gate):
    await start_gate.wait()
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(_request(host, port, path, body, {**headers, "Connection": "close"}))
    await writer.drain()
    ttfe = None
    events = 0
    total = 0
    status = None
    buf = b""
    tail = b""  # the end of the last chunk: a marker may be split across reads
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            total += len(chunk)
            if status is None:
                buf += chunk
                if b"\r\n" in buf:
                    status = int(buf.split(b" ", 2)[1])
            window = tail + chunk
            n = window.count(b"\nevent: ")
            tail = window[-7:]  # shorter than the marker, so nothing counts twice
            if n and ttfe is None:
                ttfe = time.perf_counter() - t0
            events += n
    finally:
        writer.close()
    return {"status": status, "events": events, "bytes": total, "ttfe": ttfe, "duration": time.perf_counter() - t0}


async def run_streams(host, port, path, body, n, headers):
    gate = asyncio.Event()
    tasks = [asyncio.create_task(_one_stream(host, port, path, body, headers, gate)) for _ in range(n)]
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    wall = time.perf_counter() - t0
    ok = [r for r in results if isinstance(r, dict) and r["status"] == 200]
    errors = [repr(r) if not isinstance(r, dict) else f"status {r['status']}" for r in results
              if not (isinstance(r, dict) and r["status"] == 200)]
    return {
        "wall": wall,
        "ok": len(ok),
        "errors": len(errors),
        "error_samples": errors[:3],
        "events": sum(r["events"] for r in ok),
        "bytes": sum(r["bytes"] for r in ok),
        "ttfe": sorted(r["ttfe"] for r in ok if r["ttfe"] is not None),
        "durations": sorted(r["duration"] for r in ok),
    }


async def _execute_worker(host, port, path, body, headers, deadline, lat, errors):
    reader, writer = await asyncio.open_connection(host, port)
    req = _request(host, port, path, body, headers)
    try:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            lat.append(time.perf_counter() - t0)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


async def run_execute(host, port, path, body, concurrency, seconds, headers):
    lat: list[float] = []
    errors: list[int] = []
    deadline = time.perf_counter() + seconds
    t0 = time.perf_counter()
    await asyncio.gather(*[_execute_worker(host, port, path, body, headers, deadline, lat, errors)
                           for _ in range(concurrency)])
    wall = time.perf_counter() - t0
    return {"wall": wall, "requests": len(lat), "errors": len(errors), "latencies": sorted(lat)}


async def _one_idle(host, port, path, body, headers, opened, state, out):
    """One stream held open until ``state["until"]``: counts events and ``: ping``
    heartbeats, and the longest gap between two heartbeats once the first came."""
    r = {"status": None, "events": 0, "pings": 0, "max_gap": 0.0, "error": None}
    out.append(r)
    released = False
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        r["error"] = repr(exc)
        opened.release()
        return
    writer.write(_request(host, port, path, body, {**headers, "Connection": "close"}))
    last_ping = None
    tail = b""
    try:
        while True:
            left = state["until"] - time.perf_counter()
            if left <= 0:
                break
            try:
                chunk = await asyncio.wait_for(reader.read(65536), min(left, 1.0))
            except asyncio.TimeoutError:
                continue
            if not chunk:
                r["error"] = "closed early"
                break
            if r["status"] is None:
                r["status"] = int(chunk.split(b" ", 2)[1])
            window = tail + chunk
            tail = window[-7:]
            r["events"] += window.count(b"\nevent: ")
            if not released and (r["events"] or r["status"] != 200):
                released = True
                opened.release()
            pings = window.count(b": ping")
            if pings:
                now = time.perf_counter()
                if last_ping is not None:
                    r["max_gap"] = max(r["max_gap"], now - last_ping)
                last_ping = now
                r["pings"] += pings
    except OSError as exc:
        r["error"] = repr(exc)
    finally:
        if not released:
            opened.release()
        writer.close()


async def run_idle(host, port, path, body, n, hold_s, headers):
    """``n`` streams opened in waves (no more than 500 waiting for their first event),
    then all held ``hold_s`` seconds. Writes "connected" to stderr once all are open
    (the caller measures the server's memory then and after)."""
    out: list[dict] = []
    opened = asyncio.Semaphore(500)
    state = {"until": float("inf")}
    tasks = []
    t0 = time.perf_counter()
    for _ in range(n):
        await opened.acquire()
        tasks.append(asyncio.create_task(_one_idle(host, port, path, body, headers, opened, state, out)))
    for _ in range(500):
        await opened.acquire()  # the last wave's first events
    connect_s = time.perf_counter() - t0
    print("connected", file=sys.stderr, flush=True)
    state["until"] = time.perf_counter() + hold_s
    await asyncio.gather(*tasks)
    ok = [r for r in out if r["status"] == 200 and r["error"] is None]
    return {
        "connect_s": connect_s,
        "ok": len(ok),
        "errors": len(out) - len(ok),
        "error_samples": [r for r in out if r not in ok][:3],
        "min_pings": min((r["pings"] for r in ok), default=0),
        "max_gap": max((r["max_gap"] for r in ok), default=0.0),
    }


def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    mode, host, port, path, body = sys.argv[1:6]
    headers = json.loads(sys.argv[-1]) if sys.argv[-1].startswith("{") else {}
    if mode == "idle":
        out = asyncio.run(run_idle(host, int(port), path, body.encode(), int(sys.argv[6]), float(sys.argv[7]), headers))
    elif mode == "stream":
        out = asyncio.run(run_streams(host, int(port), path, body.encode(), int(sys.argv[6]), headers))
    else:
        out = asyncio.run(run_execute(host, int(port), path, body.encode(), int(sys.argv[6]), float(sys.argv[7]), headers))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
