"""A lean HTTP/1.1 load client on raw asyncio streams (httpx would be the bottleneck).

Run as its own process by ``bench/stream.py``; prints one JSON object of results.
  stream  HOST PORT PATH BODY N_CONCURRENT   -> events, bytes, errors, ttfe, durations
  execute HOST PORT PATH BODY CONCURRENCY SECONDS -> requests, errors, latencies
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


def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    mode, host, port, path, body = sys.argv[1:6]
    headers = json.loads(sys.argv[-1]) if sys.argv[-1].startswith("{") else {}
    if mode == "stream":
        out = asyncio.run(run_streams(host, int(port), path, body.encode(), int(sys.argv[6]), headers))
    else:
        out = asyncio.run(run_execute(host, int(port), path, body.encode(), int(sys.argv[6]), float(sys.argv[7]), headers))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
