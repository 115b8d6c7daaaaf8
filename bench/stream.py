"""Stream benchmark: Skillrun against a bare Starlette StreamingResponse, side by side.

    python bench/stream.py [--quick]

Both servers are uvicorn processes on loopback; the load comes from a lean
raw-socket client (bench/_loadclient.py) in its own process. Figures are printed
as ratios against the bare endpoint measured in the same run:

  (a) one demo.ticker stream of 10,000 steps: events/s (aim >= 0.7 of bare)
  (b) 1,000 concurrent demo.ticker streams: errors (must be 0), time to first
      event p50/p95 (aim: p95 <= 2x bare's; the median of --rounds-b rounds, each
      both sides back to back), server RSS
  (c) /execute of text.summarize at concurrency 16: req/s, p50/p95 (aim >= 0.25 of a bare
      endpoint doing the same text work; a bare JSON echo is printed beside it)
  (d) 10,000 idle streams (each its own demo.ticker run waiting 60 s, heartbeats
      every 5 s), held 15 s: server RSS growth (aim <= 256 MiB), every stream pinged
      on time; its own server, the open-file limits raised by the benchmark
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
KEY = "bench-key"
TEXT = " ".join(
    f"Sentence number {i} talks about streaming skills and events over HTTP." for i in range(40)
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.args}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"server did not start: {proc.args}")


def _raise_nofile() -> None:
    """In the child before exec: as many open files as the hard limit allows (10,000 streams)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start_skillrun(tmp: Path, db: str, extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {
        **os.environ,
        "SKILLRUN_API_KEYS": KEY,
        "SKILLRUN_RATE_LIMIT": "100000000/minute",
        "SKILLRUN_DB": db,
        **(extra_env or {}),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "skillrun", "serve", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp, preexec_fn=_raise_nofile,
    )
    wait_up(f"http://127.0.0.1:{port}/v1/health/live", proc)
    return proc, port


def start_bare() -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "_bare:app", "--port", str(port), "--log-level", "warning",
         "--no-access-log"],
        cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_up(f"http://127.0.0.1:{port}/", proc)
    return proc, port


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def load(mode: str, port: int, path: str, body: dict, *args: object, headers: dict | None = None) -> dict:
    cmd = [sys.executable, str(HERE / "_loadclient.py"), mode, "127.0.0.1", str(port), path,
           json.dumps(body), *map(str, args), json.dumps(headers or {})]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout)


def idle_streams(tmp: Path, n: int, hold_s: float, heartbeat_s: float) -> None:
    """(d): RSS of a server holding ``n`` idle streams, each its own run, and their heartbeats."""
    proc, port = start_skillrun(tmp, str(tmp / "idle.db"), {"SKILLRUN_HEARTBEAT_S": str(heartbeat_s)})
    auth = {"x-api-key": KEY}
    try:
        load("stream", port, "/v1/skills/demo.ticker/execute/stream", {"inputs": {"steps": 5}}, 20, headers=auth)
        before, _ = rss_mb(proc.pid)
        # Three 60 s ticks: every run outlives the opening of all the streams and the hold.
        body = json.dumps({"inputs": {"steps": 3, "delay_ms": 60_000}})
        client = subprocess.Popen(
            [sys.executable, str(HERE / "_loadclient.py"), "idle", "127.0.0.1", str(port),
             "/v1/skills/demo.ticker/execute/stream", body, str(n), str(hold_s), json.dumps(auth)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_raise_nofile,
        )
        assert client.stderr is not None
        line = client.stderr.readline()
        held, _ = rss_mb(proc.pid)
        time.sleep(hold_s / 2)
        mid, peak = rss_mb(proc.pid)
        out, err = client.communicate(timeout=900)
        if client.returncode or "connected" not in line:
            raise SystemExit(line + err)
        r = json.loads(out)
        print(f"(d) {n} idle streams (own runs, heartbeat {heartbeat_s:g} s, held {hold_s:g} s): ok {r['ok']}, "
              f"errors {r['errors']} {r['error_samples']}; opened in {r['connect_s']:.1f} s")
        print(f"    server RSS {before:.0f} -> {max(held, mid):.0f} MiB (+{max(held, mid) - before:.0f} MiB, "
              f"{(max(held, mid) - before) * 1024 / n:.1f} KiB a stream; aim <= +256 MiB), peak {peak:.0f}; "
              f"pings: each stream at least {r['min_pings']}, longest gap {r['max_gap']:.1f} s")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(len(values) * p))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes, to check the script works")
    ap.add_argument("--only", choices=["a", "b", "c", "d"], action="append", help="run only these parts")
    # (a): each side's best of this many alternated runs (load on this shared machine only slows).
    ap.add_argument("--repeat", type=int, default=5)
    # (b): rounds of both sides back to back; the median round's ratio is printed.
    ap.add_argument("--rounds-b", type=int, default=5)
    ap.add_argument("--db", default=None, help="SKILLRUN_DB for the server (default: a new SQLite file)")
    args = ap.parse_args()
    steps = 2_000 if args.quick else 10_000
    conc = 100 if args.quick else 1_000
    seconds = 2 if args.quick else 5
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"skillrun-bench-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    sk, sk_port = start_skillrun(tmp, args.db or str(tmp / "bench.db"))
    bare, bare_port = start_bare()
    auth = {"x-api-key": KEY}

    def want(part: str) -> bool:
        return not args.only or part in args.only
    try:
        # Warm both up.
        load("stream", sk_port, "/v1/skills/demo.ticker/execute/stream", {"inputs": {"steps": 50}}, 1, headers=auth)
        load("stream", bare_port, "/stream", {"inputs": {"events": 100}}, 1)

        if want("a"):
            # (a) one long stream. demo.ticker emits 2 * steps + 3 events.
            n_events = 2 * steps + 3
            best_sk = best_bare = 0.0
            for _ in range(args.repeat):
                r = load("stream", sk_port, "/v1/skills/demo.ticker/execute/stream", {"inputs": {"steps": steps}}, 1,
                         headers=auth)
                assert r["errors"] == 0 and r["events"] == n_events, r
                best_sk = max(best_sk, r["events"] / r["wall"])
                b = load("stream", bare_port, "/stream", {"inputs": {"events": n_events}}, 1)
                assert b["errors"] == 0 and b["events"] == n_events, b
                best_bare = max(best_bare, b["events"] / b["wall"])
            print(f"(a) one stream, {n_events} events: skillrun {best_sk:,.0f} ev/s, bare {best_bare:,.0f} ev/s, "
                  f"ratio {best_sk / best_bare:.2f} (aim >= 0.7)")

        if want("b"):
            # (b) many concurrent streams: 10 steps, 100 ms apart, all at once. Rounds of
            # Skillrun then bare, back to back: load from elsewhere on this shared machine
            # slows both sides of a round alike; the median round's ratio is the figure.
            ratios = []
            for round_no in range(1, args.rounds_b + 1):
                sk_b = load("stream", sk_port, "/v1/skills/demo.ticker/execute/stream",
                            {"inputs": {"steps": 10, "delay_ms": 100}}, conc, headers=auth)
                bare_b = load("stream", bare_port, "/stream", {"inputs": {"events": 23, "delay_ms": 50}}, conc)
                sk_p95, bare_p95 = pct(sk_b["ttfe"], .95), pct(bare_b["ttfe"], .95)
                ratios.append(sk_p95 / bare_p95)
                print(f"(b) round {round_no}, {conc} concurrent streams: skillrun errors {sk_b['errors']} "
                      f"{sk_b['error_samples']}, events {sk_b['events']} (expected {conc * 23}); bare errors "
                      f"{bare_b['errors']}; time to first event p50/p95: skillrun "
                      f"{pct(sk_b['ttfe'], .5) * 1000:.0f}/{sk_p95 * 1000:.0f} ms, bare "
                      f"{pct(bare_b['ttfe'], .5) * 1000:.0f}/{bare_p95 * 1000:.0f} ms, p95 ratio {ratios[-1]:.2f}")
            sk_rss, sk_peak = rss_mb(sk.pid)
            bare_rss, bare_peak = rss_mb(bare.pid)
            print(f"(b) p95 ratio, median of {len(ratios)} rounds: {sorted(ratios)[len(ratios) // 2]:.2f} "
                  f"(aim <= 2; rounds {', '.join(f'{r:.2f}' for r in ratios)})")
            print(f"    server RSS after: skillrun {sk_rss:.0f} MiB (peak {sk_peak:.0f}), "
                  f"bare {bare_rss:.0f} MiB (peak {bare_peak:.0f})")

        if want("c"):
            # (c) /execute at concurrency 16.
            body = {"inputs": {"text": TEXT, "max_sentences": 2}}
            sk_c = load("execute", sk_port, "/v1/skills/text.summarize/execute", body, 16, seconds, headers=auth)
            bare_c = load("execute", bare_port, "/execute", body, 16, seconds)
            echo_c = load("execute", bare_port, "/echo", body, 16, seconds)
            sk_rps = sk_c["requests"] / sk_c["wall"]
            bare_rps = bare_c["requests"] / bare_c["wall"]
            echo_rps = echo_c["requests"] / echo_c["wall"]
            print(f"(c) /execute text.summarize, concurrency 16: skillrun {sk_rps:,.0f} req/s "
                  f"(errors {sk_c['errors']}), p50/p95 {pct(sk_c['latencies'], .5) * 1000:.1f}/"
                  f"{pct(sk_c['latencies'], .95) * 1000:.1f} ms; bare {bare_rps:,.0f} req/s, p50/p95 "
                  f"{pct(bare_c['latencies'], .5) * 1000:.1f}/{pct(bare_c['latencies'], .95) * 1000:.1f} ms; "
                  f"ratio {sk_rps / bare_rps:.2f} (aim >= 0.25); bare echo without the text work "
                  f"{echo_rps:,.0f} req/s, ratio {sk_rps / echo_rps:.2f}")
        if want("d"):
            # After (a)-(c), with their server stopped: a server of its own with 5 s heartbeats.
            for p in (sk, bare):
                p.terminate()
                p.wait(30)
            idle_streams(tmp, 1_000 if args.quick else 10_000, 6 if args.quick else 15, 5.0)
    finally:
        for p in (sk, bare):
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
