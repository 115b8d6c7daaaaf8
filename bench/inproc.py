"""Server CPU per request, in-process: the ASGI app driven directly, no network, no client.

    python bench/inproc.py [--case live|echo|execute|stream ...] [--n 2000] [--profile] [--db PATH]

The app (``create_app``, SQLite store in a temp dir, its lifespan run) gets ``--n``
requests, 16 at a time, from coroutines that call it with a complete ASGI request
and collect what it sends. No socket, parser or load client shares the CPU, so the
figure is the app's own cost of a request, steady enough to compare two commits
(run it in a worktree of each) where the HTTP benchmarks' noise would hide it.

  live     GET /v1/health/live: the middleware stack alone
  echo     POST /v1/skills/demo.ticker/execute, one step: a run's fixed cost
  execute  POST /v1/skills/text.summarize/execute (bench/stream.py's text): (c)'s request
  stream   POST /v1/skills/demo.ticker/execute/stream, one step, read to its end
  long     the same with 10,000 steps (bench/stream.py (a): 20,003 events), one at a
           time, 10 warm-ups; also printed per event (``--n`` counts streams: try 5)
  follow   GET /v1/runs/{id}/events?after=2 of a finished one-step run: a reconnect's
           replay of its last 3 events (a follow's fixed cost)

Printed per case: wall and process CPU per request. ``--profile`` runs the same
under cProfile and prints where the time goes by area (self time; cProfile
inflates small calls, so compare areas, not totals).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, AsyncIterator

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from stream import TEXT  # noqa: E402

KEY = "bench-key"
CASES = {
    "live": ("GET", "/v1/health/live", b""),
    "echo": ("POST", "/v1/skills/demo.ticker/execute", json.dumps({"inputs": {"steps": 1}}).encode()),
    "execute": ("POST", "/v1/skills/text.summarize/execute",
                json.dumps({"inputs": {"text": TEXT, "max_sentences": 2}}).encode()),
    "stream": ("POST", "/v1/skills/demo.ticker/execute/stream", json.dumps({"inputs": {"steps": 1}}).encode()),
    "long": ("POST", "/v1/skills/demo.ticker/execute/stream", json.dumps({"inputs": {"steps": 10_000}}).encode()),
    "follow": ("GET", "/v1/runs/{run_id}/events?after=2", b""),  # the run: made by ``measure``
}
# Events a request of the case sends (to print the cost per event), and its own
# concurrency and warm-up (one long stream at a time, as bench/stream.py (a) does).
EVENTS = {"long": 20_003}
CONCURRENCY = {"long": 1}
WARM = {"long": 10}
# Self time is grouped by the first of these its file's path contains.
AREAS = ["skillrun/http", "skillrun/engine", "skillrun/runs", "skillrun/observe", "skillrun/capabilities",
         "skillrun/events", "skillrun/", "connexion/", "starlette/", "jsonschema", "werkzeug", "prometheus_client",
         "asyncio/", "json/", "anyio", "opentelemetry", "dataclasses"]


class _Flow:
    write_paused = False


_WRITABLE = _Flow()


async def call(app: Any, method: str, path: str, body: bytes, clock: list[float] | None = None) -> list[dict[str, Any]]:
    """The app's answer (what it sent); ``clock``: gets the time of each send."""
    from skillrun.http.handoff import serve

    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.sleep(3600)  # a client that stays until the answer ends
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if clock is not None:
            clock.append(time.perf_counter())

    headers = [(b"host", b"bench"), (b"x-api-key", KEY.encode()), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    path, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 1234), "server": ("127.0.0.1", 80), "state": {}}
    # As the edge runs every request (``skillrun serve``): a stream's body after the
    # layers have returned, sent with the server's ``send`` (``http/handoff.py``), to a
    # connection whose writing is never paused (this ``send`` never waits).
    await serve(app, scope, receive, send, _WRITABLE)
    return sent


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put))
    started = await outbox.get()
    assert started["type"] == "lifespan.startup.complete", started
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


def areas(stats: pstats.Stats) -> collections.Counter[str]:
    found: collections.Counter[str] = collections.Counter()
    for (file, _line, fn), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        area = next((a for a in AREAS if a in file), None)
        found[area or (fn if file == "~" else "other: " + "/".join(Path(file).parts[-2:]))] += tottime
    return found


def run(main: Any) -> Any:
    """``asyncio.run(main)`` on the loop ``skillrun serve`` runs on: uvloop when installed
    (uvicorn's ``loop="auto"``), whose timers, callbacks and tasks' turns cost less than
    asyncio's own loop's; what a request costs here is then what it costs served."""
    try:
        import uvloop
    except ImportError:
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def make_app(db: str, **env: str) -> Any:
    """The app as the in-process benchmarks drive it: ``create_app`` from the environment,
    with the bench's key, no rate limit to speak of, the store ``db`` and ``env``."""
    os.environ.update(SKILLRUN_API_KEYS=KEY, SKILLRUN_RATE_LIMIT="100000000/minute", SKILLRUN_DB=db, **env)
    from skillrun.http.app import create_app
    from skillrun.settings import Settings

    return create_app(Settings.from_env())


async def measure(case: str, n: int, profile: bool, db: str, top: int = 0, sort: str = "tottime") -> None:
    from skillrun.cli import _settle_the_heap

    app = make_app(db)
    method, path, body = CASES[case]
    async with lifespan(app):
        if "{run_id}" in path:
            made = await call(app, *CASES["echo"])
            run_id = dict(made[0]["headers"])[b"x-run-id"].decode()
            path = path.replace("{run_id}", run_id)
        for _ in range(WARM.get(case, 200)):  # warm: compiled validators, caches, the store's first pages
            answer = await call(app, method, path, body)
        assert answer[0]["status"] == 200, answer[:2]
        if case in EVENTS:
            sent = b"".join(m.get("body", b"") for m in answer)
            assert sent.count(b"\nevent: ") + sent.startswith(b"event: ") == EVENTS[case], "events sent"
        _settle_the_heap()  # as `skillrun serve` does before serving (its GC settings)
        concurrency = CONCURRENCY.get(case, 16)

        async def worker(count: int) -> None:
            for _ in range(count):
                await call(app, method, path, body)

        profiler = cProfile.Profile() if profile else None
        wall, cpu = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        await asyncio.gather(*(worker(n // concurrency) for _ in range(concurrency)))
        if profiler is not None:
            profiler.disable()
        done = n // concurrency * concurrency
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"{case:8s} {done} requests: {wall / done * 1e6:7.0f} us wall, {cpu / done * 1e6:7.0f} us CPU a request"
              + (" (under cProfile)" if profiler else ""))
        if case in EVENTS:
            per = done * EVENTS[case]
            print(f"{'':8s} {EVENTS[case]} events a request: {wall / per * 1e6:7.2f} us wall, "
                  f"{cpu / per * 1e6:7.2f} us CPU an event, {per / wall:,.0f} events/s")
        if profiler is not None:
            found = areas(pstats.Stats(profiler))
            total = sum(found.values())
            for area, seconds in found.most_common(20):
                print(f"    {100 * seconds / total:5.1f}%  {area}")
            if top:
                pstats.Stats(profiler).sort_stats(sort).print_stats(top)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", choices=sorted(CASES), action="append")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--top", type=int, default=0, help="with --profile: also the N costliest functions")
    ap.add_argument("--sort", default="tottime", help="with --top: pstats' order (tottime, cumulative)")
    ap.add_argument("--db", default=None, help="SKILLRUN_DB (default: a new SQLite file per case)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="skillrun-inproc-") as tmp:
        for case in args.case or ["live", "echo", "execute", "stream"]:
            run(measure(case, args.n, args.profile, args.db or str(Path(tmp) / f"{case}.db"),
                                args.top, args.sort))


if __name__ == "__main__":
    main()
