"""Edge benchmark: the CPU cost per request of uvicorn's HTTP protocol choices.

    python bench/edge.py [--quick]

The same bare ASGI app (200, two bytes) is served by uvicorn with

  httptools  uvicorn's default with uvicorn[standard]: no header-size cap, no head deadline
  edge       skillrun's EdgeProtocol (httptools + head/body deadlines, head cap, connection cap)
  h11        uvicorn's pure-Python parser, which has a head cap (h11_max_incomplete_event_size)

and loaded by a raw-socket keep-alive client in its own process (16 connections).
Printed: server CPU µs per request and req/s, as ratios against httptools measured
in the same run. The edge protocol should cost within a few percent of httptools.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"


async def bare_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def serve(mode: str, port: int) -> None:
    import uvicorn

    sys.path.insert(0, str(HERE.parent / "service"))
    from skillrun.http.edge import EdgeLimits, edge_protocol

    http: Any = {"httptools": "httptools", "h11": "h11"}.get(mode) or edge_protocol(
        EdgeLimits(max_header_bytes=16384, header_timeout_s=10, body_timeout_s=30, max_connections=12000)
    )
    uvicorn.run(bare_app, host="127.0.0.1", port=port, http=http, log_level="warning",
                access_log=False, lifespan="off", h11_max_incomplete_event_size=16384)


async def _conn(port: int, n: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(n):
        writer.write(REQUEST)
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
    writer.close()


def load(port: int, total: int, conns: int) -> None:
    async def main() -> None:
        await asyncio.gather(*(_conn(port, total // conns) for _ in range(conns)))

    asyncio.run(main())


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(mode: str, total: int, conns: int) -> tuple[float, float]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", mode, str(port)])
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        load(port, 2000, 4)  # warm up
        cpu0, t0 = _cpu_s(proc.pid), time.perf_counter()
        subprocess.run([sys.executable, __file__, "--load", str(port), str(total), str(conns)], check=True)
        cpu, wall = _cpu_s(proc.pid) - cpu0, time.perf_counter() - t0
    finally:
        proc.kill()
        proc.wait()
    return cpu / total * 1e6, total / wall


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--serve", nargs=2, metavar=("MODE", "PORT"))
    p.add_argument("--load", nargs=3, metavar=("PORT", "TOTAL", "CONNS"))
    args = p.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    if args.load:
        load(int(args.load[0]), int(args.load[1]), int(args.load[2]))
        return
    total = 5_000 if args.quick else 40_000
    results = {mode: measure(mode, total, 16) for mode in ("httptools", "edge", "h11")}
    base_cpu, base_rps = results["httptools"]
    print(f"{total} keep-alive requests, 16 connections; ratios against httptools in this run")
    print(f"{'protocol':<10} {'CPU µs/req':>11} {'x':>6} {'req/s':>9} {'x':>6}")
    for mode, (cpu, rps) in results.items():
        print(f"{mode:<10} {cpu:>11.1f} {cpu / base_cpu:>6.2f} {rps:>9.0f} {rps / base_rps:>6.2f}")


if __name__ == "__main__":
    main()
