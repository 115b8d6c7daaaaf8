"""What observability costs: metrics and OpenTelemetry tracing on, against both off, in one run.

    python bench/observe.py [--quick] [--repeat N]

Issue 14 asks that metrics cost at most 5% on ``/execute`` and one stream; this
measures metrics *and* tracing together, the worst case an operator turns on.
"On" exports every span (the default sampler, ``parentbased_always_on``) through a
``BatchSpanProcessor``; "off" has ``SKILLRUN_METRICS=0`` and no ``OTEL_*`` variables.
Rounds alternate which side goes first, so a noisy neighbour hits both alike, and the
figures are medians over the rounds, printed as ratios measured in this same run
(aim: >= 0.95, i.e. observability costs <= 5%):

  (p) in process (the app through httpx's ASGI transport, no sockets): CPU seconds
      (``time.process_time``, the span exporter's thread included) of one
      demo.ticker stream of N steps and of 100 x /execute text.summarize; spans are
      encoded to OTLP protobuf as the real exporter does, then dropped. A busy
      neighbour disturbs CPU time far less than wall time: this is the figure to
      trust on a shared machine. Ratio off / on.
  (a) two ``skillrun serve`` processes on loopback, the "on" one exporting OTLP/HTTP
      to a sink of this script's own (it checks spans really arrived): one stream's
      events/s, ratio on / off, median of the rounds' pairs.
  (c) the same servers: /execute text.summarize at concurrency 16, requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from stream import KEY, TEXT, free_port, load, wait_up  # noqa: E402

SIDES = ("on", "off")
BODY = {"inputs": {"text": TEXT, "max_sentences": 2}}


def _order(round_: int) -> tuple[str, str]:
    return SIDES if round_ % 2 == 0 else (SIDES[1], SIDES[0])


# ---------------------------------------------------------------- in process


def _tracing(ratio: float = 1.0) -> Any:
    """Tracing as ``Tracing.from_env`` builds it, but the exporter encodes and drops;
    ``ratio``: the share of traces sampled (``parentbased_traceidratio``)."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio
    from skillrun.observe.tracing import Tracing

    class EncodingExporter(SpanExporter):
        def __init__(self) -> None:
            self.spans = 0

        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            encode_spans(spans).SerializeToString()
            self.spans += len(spans)
            return SpanExportResult.SUCCESS

    exporter = EncodingExporter()
    provider = TracerProvider(sampler=ParentBasedTraceIdRatio(ratio))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing(provider), exporter


# In process: each side against "off" (no metrics, no tracing).
IN_PROCESS = {
    "metrics": (True, None),
    "metrics+traces": (True, 1.0),
    "metrics+traces@1%": (True, 0.01),
    "traces": (False, 1.0),
}


async def in_process(repeat: int, steps: int) -> None:
    from skillrun.http.app import create_app
    from skillrun.settings import Settings

    settings = {"api_keys": [KEY], "rate_limit": "100000000/minute"}
    apps: dict[str, Any] = {"off": create_app(Settings(**settings, metrics=False))}
    assert apps["off"].services.observe.tracing is None, "unset the OTEL_* variables for the off side"
    tracings: dict[str, Any] = {}
    for side, (metrics, ratio) in IN_PROCESS.items():
        tracings[side] = _tracing(ratio) if ratio is not None else (None, None)
        apps[side] = create_app(Settings(**settings, metrics=metrics), tracing=tracings[side][0])
    sides = list(apps)
    cpu: dict[str, dict[str, list[float]]] = {what: {side: [] for side in sides} for what in ("stream", "execute")}
    for round_ in range(repeat + 1):  # the first round warms up
        shift = round_ % len(sides)
        for side in sides[shift:] + sides[:shift]:
            transport = httpx.ASGITransport(app=apps[side])
            async with httpx.AsyncClient(transport=transport, base_url="http://app", headers={"x-api-key": KEY}) as c:
                stream_s = await _cpu(c, "/v1/skills/demo.ticker/execute/stream", {"inputs": {"steps": steps}}, 1)
                execute_s = await _cpu(c, "/v1/skills/text.summarize/execute", BODY, 100)
            tracing = tracings.get(side, (None, None))[0]
            if tracing is not None:
                # The batch processor's thread works on these spans now: count it in.
                t = time.process_time()
                tracing.provider.force_flush()
                execute_s += time.process_time() - t
            if round_:
                cpu["stream"][side].append(stream_s)
                cpu["execute"][side].append(execute_s)
    for what, label in (("stream", f"one {steps}-step stream"), ("execute", "100 x /execute")):
        off = statistics.median(cpu[what]["off"])
        print(f"(p) in process, {label}: CPU median off {off * 1000:.1f} ms")
        for side in IN_PROCESS:
            on = statistics.median(cpu[what][side])
            print(f"    {side:>18}: {on * 1000:8.1f} ms; ratio off/on {off / on:.3f} (aim >= 0.95)")
    for side, (_tracing_, exporter) in tracings.items():
        if exporter is not None:
            print(f"    spans encoded ({side}): {exporter.spans:,}")


async def _cpu(client: httpx.AsyncClient, path: str, body: dict[str, Any], times: int) -> float:
    t = time.process_time()
    for _ in range(times):
        r = await client.post(path, json=body)
        assert r.status_code == 200, r.text
    return time.process_time() - t


# ---------------------------------------------------------------- two servers


class _Sink(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that reads and counts, nothing more."""

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        self.server.received += 1  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def start(tmp: Path, on: bool, sink_port: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(SKILLRUN_API_KEYS=KEY, SKILLRUN_RATE_LIMIT="100000000/minute", SKILLRUN_DB=":memory:",
               SKILLRUN_METRICS="1" if on else "0")
    if on:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{sink_port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "skillrun", "serve", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp,
    )
    wait_up(f"http://127.0.0.1:{port}/v1/health/live", proc)
    return proc, port


def report(what: str, unit: str, rates: dict[str, list[float]]) -> None:
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    pairs = [a / b for a, b in zip(rates["on"], rates["off"])]
    print(f"{what}: median on {on:,.0f} {unit}, off {off:,.0f} {unit}; ratio of medians {on / off:.3f}, "
          f"median of {len(pairs)} pairs {statistics.median(pairs):.3f} (aim >= 0.95)")


def servers(repeat: int, steps: int, seconds: float) -> None:
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    sink.received = 0  # type: ignore[attr-defined]
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"skillrun-bench-observe-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    procs = {which: start(tmp, which == "on", sink.server_address[1]) for which in SIDES}
    auth = {"x-api-key": KEY}
    try:
        for _proc, port in procs.values():  # warm up
            load("stream", port, "/v1/skills/demo.ticker/execute/stream", {"inputs": {"steps": 50}}, 1, headers=auth)
        n_events = 2 * steps + 3
        stream: dict[str, list[float]] = {"on": [], "off": []}
        execute: dict[str, list[float]] = {"on": [], "off": []}
        for round_ in range(repeat):
            for which in _order(round_):
                r = load("stream", procs[which][1], "/v1/skills/demo.ticker/execute/stream",
                         {"inputs": {"steps": steps}}, 1, headers=auth)
                assert r["errors"] == 0 and r["events"] == n_events, r
                stream[which].append(r["events"] / r["wall"])
            for which in _order(round_):
                r = load("execute", procs[which][1], "/v1/skills/text.summarize/execute", BODY, 16, seconds,
                         headers=auth)
                assert r["errors"] == 0, r
                execute[which].append(r["requests"] / r["wall"])
        assert "skillrun_runs_finished_total" in httpx.get(f"http://127.0.0.1:{procs['on'][1]}/metrics").text
        assert httpx.get(f"http://127.0.0.1:{procs['off'][1]}/metrics").status_code == 404
        report(f"(a) one stream, {n_events} events", "ev/s", stream)
        report("(c) /execute text.summarize, concurrency 16", "req/s", execute)
    finally:
        for proc, _port in procs.values():
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        sink.shutdown()
    # The "on" server flushed its spans on shutdown at the latest: they really went out.
    print(f"    OTLP export requests the sink received: {sink.received}")  # type: ignore[attr-defined]
    assert sink.received > 0  # type: ignore[attr-defined]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes, to check the script works")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--in-process-only", action="store_true")
    args = ap.parse_args()
    for name in [k for k in os.environ if k.startswith("OTEL_")]:
        del os.environ[name]
    steps = 2_000 if args.quick else 10_000
    asyncio.run(in_process(args.repeat, steps))
    if not args.in_process_only:
        servers(args.repeat, steps, 2 if args.quick else 5)


if __name__ == "__main__":
    main()
