"""``skillrun serve | validate | keys``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import logging
import os
import signal
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from . import __version__
from .settings import Settings

if TYPE_CHECKING:
    from .devkey import DevKey

log = logging.getLogger("skillrun")

DESCRIPTION = (
    "Skillrun: run declarative multi-step skills over HTTP and stream every step as Server-Sent Events. "
    "Commands: serve (the HTTP server), validate (check skill files), keys (API key helpers)."
)


@dataclass(frozen=True)
class ServeOptions:
    """What ``skillrun serve`` passes to each serving process besides ``Settings``."""

    host: str
    port: int
    log_level: str
    # The path a proxy mounts the app at (it strips it from requests): the served spec's
    # `servers` url and the console's links name it.
    root_path: str = ""


def workers_problem(db: str, workers: int) -> str | None:
    """Why ``--workers N`` cannot serve store ``db``, or None.

    Every worker must see every run (a stream resumed on another worker, a cancel
    landing on another worker), so N > 1 needs the store processes share.
    """
    from .runs import store_kind

    if workers < 1:
        return f"--workers {workers}: must be at least 1"
    kind = store_kind(db)
    if workers == 1 or kind == "redis":
        return None
    what = "the in-memory store (:memory:) lives in one process" if kind == "memory" else (
        f"a SQLite store ({db}) serves one process"
    )
    return (
        f"--workers {workers} needs a run store that all workers share, but {what}. "
        "Use Redis: --db redis://HOST:6379/0 (or SKILLRUN_DB), or run one worker"
    )


def _pool_per_worker(settings: Settings, workers: int) -> None:
    """Each serving process has its own pool of CPU workers (engine/workers.py): unless
    SKILLRUN_WORKER_PROCS says otherwise, split the cores between them."""
    if workers > 1 and not os.environ.get("SKILLRUN_WORKER_PROCS"):
        settings.worker_procs = max(1, (os.cpu_count() or 1) // workers)


def _serve(args: argparse.Namespace) -> int:
    from .devkey import load_or_create
    from .observe import multiproc

    # Before anything imports prometheus_client (see observe/multiproc.py).
    multiproc.prepare(int(getattr(args, "workers", 1) or 1))

    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"skillrun serve: {exc}", file=sys.stderr)
        return 2
    if args.log_format is not None:
        settings.log_format = args.log_format
    if args.metrics_port is not None:
        settings.metrics_port = args.metrics_port or None
    settings.skill_dirs += [Path(d) for d in args.skills]
    if args.db is not None:
        settings.db = args.db
    if args.forwarded_allow_ips is not None:
        settings.forwarded_allow_ips = [p.strip() for p in args.forwarded_allow_ips.split(",") if p.strip()]
    problem = workers_problem(settings.db, args.workers)
    if problem is not None:
        print(f"skillrun serve: {problem}", file=sys.stderr)
        return 2
    _pool_per_worker(settings, args.workers)
    if not settings.api_keys and settings.api_keys_file is None:
        # Never an open server: a generated key, kept per data directory (devkey.py).
        try:
            dev = load_or_create(settings.db)
        except (ValueError, OSError) as exc:
            print(f"skillrun serve: {exc}", file=sys.stderr)
            return 2
        settings.api_keys = [dev.key]
        print(_dev_key_notice(dev), flush=True)
    options = ServeOptions(args.host, args.port, args.log_level, args.root_path.rstrip("/"))
    if args.workers == 1:
        return serve_process(settings, options, announce=True)
    _metrics_port_of_workers(settings, options)
    return WorkerSupervisor(settings, options, args.workers).run()


def _metrics_port_of_workers(settings: Settings, options: ServeOptions) -> None:
    """``--metrics-port`` with several workers: the supervisor serves the sum of every
    worker's values (prometheus-client's multiprocess mode), from a thread of its own."""
    if settings.metrics_port is None or not settings.metrics:
        return
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(settings.metrics_port, addr=options.host, registry=registry)


def serve_process(
    settings: Settings, options: ServeOptions, sockets: list[socket.socket] | None = None, announce: bool = False
) -> int:
    """One serving process: build the app, own its store, serve until signalled."""
    import uvicorn

    from .http.app import create_app
    from .http.edge import EdgeLimits, edge_protocol
    from .observe import logs
    from .runs import RedisStore, SchemaTooNew, SqliteStore, StoreInUse

    try:
        app = create_app(settings)
        if isinstance(app.services.store, SqliteStore):
            # Before uvicorn: a refusal is one line, not a failed lifespan's traceback.
            app.services.store.claim()
        elif isinstance(app.services.store, RedisStore):
            asyncio.run(_check_keyspace(app.services.store))  # the keyspace's schema version, the same way
    except (ValueError, OSError, StoreInUse, SchemaTooNew) as exc:
        # A bad keys file or rate limit, a store another process owns or a newer
        # release wrote: the user's to fix, so say what, not a traceback.
        print(f"skillrun serve: {exc}", file=sys.stderr)
        return 2
    observe = app.services.observe
    tracing = observe.tracing
    logs.configure(
        settings.log_format, getattr(logging, options.log_level.upper(), logging.INFO),
        span_ids=tracing.current_ids if tracing is not None else None,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if settings.metrics_port is not None and observe.metrics is not None and sockets is None:
        from prometheus_client import start_http_server

        # A thread of its own, on its own port: scrapes never queue behind requests.
        # (With --workers N the supervisor serves it: ``_metrics_port_of_workers``.)
        start_http_server(settings.metrics_port, addr=options.host, registry=observe.metrics.port_registry())
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_level=options.log_level,
        # Our handler and formatter (logs.configure); our access log names the route
        # template, status, duration and bytes (observe/http.py), so uvicorn's is off.
        log_config=logs.uvicorn_log_config(),
        access_log=False,
        # uvicorn alone waits forever for open streams; ours end within the grace.
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 5,
        # httptools with head/body deadlines, a head size cap and a connection cap (edge.py).
        http=edge_protocol(
            EdgeLimits(
                max_header_bytes=settings.max_header_bytes,
                header_timeout_s=settings.header_timeout_s,
                body_timeout_s=settings.body_timeout_s,
                max_connections=settings.max_connections,
            )
        ),
        # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise: then a
        # client behind no proxy picks its own address (and its own rate-limit budget).
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        root_path=options.root_path,
    )
    server = DrainingServer(config, app.services.runs, settings.shutdown_grace_s)
    _settle_the_heap()
    _prompt_thread_handoffs()
    if announce:
        print(f"Skillrun on http://{options.host}:{options.port}  (docs: /docs, spec: /openapi.json)", flush=True)
    server.run(sockets)
    return 0


async def _check_keyspace(store: Any) -> None:
    """A Redis keyspace's schema version, before the server starts; unreachable Redis is
    not fatal here (the server answers 503 until it is back)."""
    from redis.exceptions import RedisError

    try:
        await store.check_keyspace()
    except (RedisError, OSError) as exc:
        log.warning("run store: the keyspace's schema version was not checked (Redis unreachable): %s", exc)


def _settle_the_heap() -> None:
    """Everything built so far (the spec, its validators, the catalog, the modules) lives
    as long as the process: out of the collector's sight (``gc.freeze``), a full
    collection no longer walks it. Measured: with 1,000 sleeping runs, full collections
    took 15-28 ms, the tail of every other request (bench/fairness.py). Young
    collections are then paced by what they find (``YoungCollections``)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YoungCollections.BASE, 20, 20)
    if not any(isinstance(cb, YoungCollections) for cb in gc.callbacks):
        gc.callbacks.append(YoungCollections())


class YoungCollections:
    """Young collections as rare as the garbage they find allows.

    Python collects the young generation every ``threshold`` net new tracked objects
    (allocations less deallocations), to free reference cycles. Serving leaves none
    (``tests/test_stream_handoff.py`` checks: every object of a request is freed when
    its last reference goes), so a young collection only walks live objects: a burst
    of new streams, whose objects it walks while they live, to free nothing. A burst
    of 1,000 streams grows the heap by ~200,000 objects: 9-10 collections at 20,000,
    50-290 ms of its 1.3-2 s of CPU (in process, bench/inproc.py), every stream's
    first event behind them.

    The threshold starts at ``BASE`` (30 times Python's 700: fewer objects aged into
    the old generations, whose collections walk every live run) and doubles after each
    collection that found under 1% of it as garbage, up to ``MAX``; one that found
    more puts it back at ``BASE``. A heap that grows and shrinks back by less than
    ``MAX`` (a burst of streams that end) is then never walked, and garbage, when some
    code makes it, is still collected at most ``MAX`` objects late (~30-60 MB)."""

    BASE = 20_000
    MAX = 320_000

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase != "stop":
            return
        young, middle, old = gc.get_threshold()
        found = info["collected"] + info["uncollectable"]
        threshold = min(2 * young, self.MAX) if found * 100 < young else self.BASE
        if threshold != young:
            gc.set_threshold(threshold, middle, old)


def _prompt_thread_handoffs() -> None:
    """A GIL switch interval of 1 ms, not Python's 5: the SQLite store's checkpoint
    pause (on a worker thread, with every commit held) began 16-126 ms after it was
    asked for behind a busy loop, ~1 ms with this (bench/checkpoint.py), and every
    live stream waited that long with it.

    A thread waiting for the GIL asks its holder to let go only after a whole
    interval in which the GIL never changed hands; the busy loop lets it go for a
    moment and takes it straight back (the poll, each SQLite call: every ~2 ms
    under load), which can start that wait over and over. Under 2 ms, the interval
    runs out between two turns. No cost while no thread waits (the interval only
    matters to a waiting thread); /execute at concurrency 16 within the noise.
    Other hand-offs measured no different: a no-op ``to_thread`` round trip during
    a 10,000-step stream took ~6.4 ms at either interval."""
    sys.setswitchinterval(0.001)


def _dev_key_notice(dev: "DevKey") -> str:
    if dev.path is None:
        where = "generated an API key for this run (SKILLRUN_DB=:memory: keeps neither runs nor key)"
    elif dev.created:
        where = f"generated an API key, kept in {dev.path.resolve()} for the next start"
    else:
        where = f"using the API key kept in {dev.path.resolve()}"
    return (
        f"No SKILLRUN_API_KEYS set; {where}:\n\n    {dev.key}\n\n"
        "Your own keys: `skillrun keys new`, then SKILLRUN_API_KEYS=KEY (or its hash in SKILLRUN_API_KEYS_FILE).\n"
    )


class DrainingServer:
    """uvicorn's server, but SIGTERM/SIGINT first drains runs so every stream ends with ``done``.

    On the first signal: stop accepting connections, let runs finish for the
    grace period, interrupt the rest (their logs end with ``done``, so every open
    stream gets its final events and closes), then let uvicorn shut down. A
    second signal interrupts the runs at once (streams still get their final
    events); a third cuts every connection and exits.
    """

    def __init__(self, config: Any, runs: Any, grace_s: float) -> None:
        import uvicorn

        outer = self

        class _Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame: Any) -> None:
                if outer._loop is None:
                    super().handle_exit(sig, frame)
                    return
                if outer._draining:
                    # Not uvicorn's handler: it would start a shutdown that still waits
                    # out the grace, then re-raise the signal (a traceback on SIGINT).
                    if outer._hurried:
                        self.should_exit = self.force_exit = True
                        outer._loop.call_soon_threadsafe(outer._cut_connections)
                    else:
                        outer._hurried = True
                        outer._loop.call_soon_threadsafe(lambda: outer._loop.create_task(outer._hurry()))  # type: ignore[union-attr]
                    return
                outer._draining = True
                outer._loop.call_soon_threadsafe(lambda: outer._loop.create_task(outer._drain()))  # type: ignore[union-attr]

        self.server = _Server(config)
        self.runs = runs
        self.grace_s = grace_s
        self._draining = False
        self._hurried = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _drain(self) -> None:
        for s in getattr(self.server, "servers", []):
            s.close()  # stop accepting; open connections go on
        log.info("draining: up to %.1f s for %d run(s)", self.grace_s, self.runs.live)
        await self.runs.drain(self.grace_s)
        await asyncio.sleep(0.2)  # let followers write the final frames
        self.server.should_exit = True

    async def _hurry(self) -> None:
        log.warning("second signal: interrupting %d run(s) now", self.runs.live)
        await self.runs.drain(0)

    def _cut_connections(self) -> None:
        """Third signal: close every connection now. Runs cut short here are
        marked interrupted by the next start's recovery."""
        log.warning("third signal: exiting now, cutting %d connection(s)", len(self.server.server_state.connections))
        for connection in list(self.server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()

    async def _serve(self, sockets: list[socket.socket] | None) -> None:
        self._loop = asyncio.get_running_loop()
        await self.server.serve(sockets)

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        # The loop uvicorn's own ``Server.run`` would make: uvloop when installed (``loop="auto"``,
        # uvicorn[standard]), else asyncio's. ``asyncio.run`` alone always made asyncio's.
        with asyncio.Runner(loop_factory=self.server.config.get_loop_factory()) as runner:
            runner.run(self._serve(sockets))


class WorkerSupervisor:
    """``--workers N``: N serving processes accepting on one listening socket.

    uvicorn's own supervisor runs its plain server in each worker; ours runs
    ``serve_process`` (the draining server, the store claimed before serving). The
    parent binds the socket, starts the workers (``spawn``: a fresh interpreter each,
    never a fork of a process with threads), and forwards each SIGTERM/SIGINT to
    every worker once, so the draining server's first/second/third-signal meaning
    holds for the whole group. Workers run in their own process group (a terminal's
    Ctrl-C reaches the parent only, never twice) and stop by themselves when the
    parent dies. A worker that fails to start (exit 2) stops the others: each would
    fail the same way. One that dies later is replaced.
    """

    def __init__(self, settings: Settings, options: ServeOptions, workers: int) -> None:
        self.settings = settings
        self.options = options
        self.workers = workers
        self._signals: list[int] = []

    def run(self) -> int:
        import multiprocessing
        from multiprocessing.connection import wait

        import uvicorn

        sock = uvicorn.Config("skillrun", host=self.options.host, port=self.options.port).bind_socket()
        context = multiprocessing.get_context("spawn")
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda sig, _frame: self._signals.append(sig))

        def start() -> Any:
            p = context.Process(target=_worker_main, args=(self.settings, self.options, sock, os.getpid()))
            p.start()
            return p

        procs = [start() for _ in range(self.workers)]
        print(
            f"Skillrun on http://{self.options.host}:{self.options.port}  ({self.workers} workers; "
            "docs: /docs, spec: /openapi.json)",
            flush=True,
        )
        stopping, status = False, 0
        while any(p.is_alive() for p in procs):
            wait([p.sentinel for p in procs if p.is_alive()], timeout=0.2)
            while self._signals:
                stopping = True
                forwarded = self._signals.pop(0)
                for p in procs:
                    if p.is_alive() and p.pid is not None:
                        os.kill(p.pid, forwarded)
            for i, p in enumerate(procs):
                if p.is_alive() or p.exitcode is None or stopping:
                    continue
                if p.exitcode in (2, 3):  # ours, uvicorn's STARTUP_FAILURE: the next would fail too
                    log.error("worker %s failed to start (exit %s): stopping", p.pid, p.exitcode)
                    stopping, status = True, 2
                    for other in procs:
                        if other.is_alive() and other.pid is not None:
                            os.kill(other.pid, signal.SIGTERM)
                    break
                log.error("worker %s died (exit %s): starting another", p.pid, p.exitcode)
                procs[i] = start()
        sock.close()
        return status


def _worker_main(settings: Settings, options: ServeOptions, sock: socket.socket, parent: int) -> None:
    """One of ``--workers N`` (a spawned process)."""
    os.setpgid(0, 0)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="skillrun-parent-watch").start()
    sys.exit(serve_process(settings, options, sockets=[sock]))


def _exit_with_parent(parent: int) -> None:
    """A worker whose parent died (kill -9) drains and exits, as on SIGTERM: no orphan keeps serving."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def _validate(args: argparse.Namespace) -> int:
    """Check skill files as the server would; print each problem as ``file:line: message``.

    Nested skills (``uses: skill:<id>``) may name the bundled skills and any skill
    among the files given. A directory stands for its ``*.yaml``/``*.yml`` files.
    """
    from .capabilities import default_registry
    from .engine.catalog import CatalogBuilder, skill_files
    from .engine.parsing import Problem
    from .settings import BUNDLED_SKILLS

    # The same catalog the server builds: the bundled skills, then these files.
    builder = CatalogBuilder(default_registry())
    builder.add_layer(skill_files(BUNDLED_SKILLS))
    files: list[Path] = []
    problems: list[Problem] = []
    for name in args.files:
        path = Path(name)
        found = list(skill_files(path)) if path.is_dir() else [path]
        if not found:
            problems.append(Problem(str(path), 1, "a directory without skill files (*.yaml, *.yml)"))
        files.extend(found)
    loaded = builder.add_layer(files, unique=True)
    builder.link()
    ours = {str(p) for p in files}
    problems += [p for p in builder.problems if p.path in ours]
    bad_files = {p.path for p in problems}
    for skill in loaded:
        if skill.source not in bad_files:
            print(f"{skill.source}: ok ({skill.id} {skill.version}, {len(skill.steps)} steps)")
    for p in sorted(problems, key=lambda p: (p.path, p.line)):
        print(p, file=sys.stderr)
    return 1 if problems or not files else 0


def _keys_hash(args: argparse.Namespace) -> int:
    from .keys import check_keys, hash_key

    key = args.key if args.key is not None else sys.stdin.readline().strip()
    if not key:
        print("no key given (pass it as an argument or on stdin)", file=sys.stderr)
        return 2
    try:
        check_keys([key], "skillrun keys hash")
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(hash_key(key))
    return 0


def _keys_new(_args: argparse.Namespace) -> int:
    from .keys import generate_key, hash_key

    key = generate_key()
    print(f"key:    {key}\nsha256: {hash_key(key)}")
    return 0


def parser() -> argparse.ArgumentParser:
    # Plain text: argparse prints it as is (the module docstring is reStructuredText).
    p = argparse.ArgumentParser(prog="skillrun", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"skillrun {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", default=os.environ.get("SKILLRUN_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("SKILLRUN_PORT", "8080")))
    serve.add_argument("--skills", action="append", default=[], metavar="DIR", help="a directory of user skills (repeatable)")
    serve.add_argument(
        "--db",
        metavar="PATH|URL",
        help="the run store: a SQLite file (or sqlite:PATH), redis://HOST:PORT/DB (rediss:// for TLS) "
        "to share runs across nodes, or :memory: (default: $SKILLRUN_DB or .skillrun/skillrun.db)",
    )
    serve.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        help="comma-separated proxy addresses or CIDRs whose X-Forwarded-For is believed, '*' for any "
        "(default: $SKILLRUN_FORWARDED_ALLOW_IPS, else none: proxy headers are ignored)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("SKILLRUN_WORKERS", "1")),
        metavar="N",
        help="serving processes on this port (default: $SKILLRUN_WORKERS or 1); more than 1 needs the "
        "Redis store (--db redis://HOST:6379/0). Each has its own pool of CPU workers: "
        "SKILLRUN_WORKER_PROCS defaults to the CPU count divided by N",
    )
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--root-path", default="", metavar="PREFIX",
        help="the path a reverse proxy serves the app under (it strips it), e.g. /skillrun",
    )
    serve.add_argument(
        "--log-format", choices=("text", "json"), default=None,
        help="text (default: $SKILLRUN_LOG_FORMAT or text) or json: one object per line with run and trace ids",
    )
    serve.add_argument(
        "--metrics-port", type=int, default=None, metavar="PORT",
        help="serve /metrics on this port instead of the API's (default: $SKILLRUN_METRICS_PORT)",
    )
    serve.set_defaults(func=_serve)

    validate = sub.add_parser(
        "validate", help="check skill files (YAML, schema, needs, nested skills, CEL, inputs); exit 1 on any problem"
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="a skill file, or a directory of them")
    validate.set_defaults(func=_validate)

    _add_conformance(sub)
    keys = sub.add_parser("keys", help="API key helpers")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    h = keys_sub.add_parser("hash", help="print a key's SHA-256 for SKILLRUN_API_KEYS_FILE")
    h.add_argument("key", nargs="?", help="the key (read from stdin when absent)")
    h.set_defaults(func=_keys_hash)
    n = keys_sub.add_parser("new", help="generate a key and print it with its hash")
    n.set_defaults(func=_keys_new)
    return p


def _add_conformance(sub: Any) -> None:
    c = sub.add_parser("conformance", help="check a deployment of the API against the contract (docs/CONFORMANCE.md)")
    c.add_argument("url", help="the API's base URL, e.g. https://skills.example.com")
    c.add_argument("--key", required=True, help="an API key of the deployment")
    c.add_argument("--other-key", help="a second key, to check that runs are isolated per key")
    c.add_argument("--skill", action="append", default=[], help="a skill for the live checks (repeatable)")
    c.add_argument("--junit-xml", type=Path, help="write a JUnit XML report here")
    c.add_argument("--max-examples", type=int, default=10, help="generated cases per operation (default 10)")
    c.add_argument("--no-fuzz", action="store_true", help="only the live behaviour checks")
    c.set_defaults(func=_conformance)


#: The ``conformance`` extra's modules (pyproject.toml): the command needs them, a
#: server does not, so ``pip install .`` leaves them out.
CONFORMANCE_MODULES = ("schemathesis", "hypothesis", "rich")
CONFORMANCE_INSTALL = "pip install 'skillrun[conformance]'"


def _missing_modules(names: Sequence[str]) -> list[str]:
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def _conformance(args: argparse.Namespace) -> int:
    # Imported here, after this check: `skillrun serve` never loads them, and an install
    # without the extra gets a sentence saying what to install, not a traceback.
    missing = _missing_modules(CONFORMANCE_MODULES)
    if missing:
        print(f"skillrun conformance: {', '.join(missing)} not installed; the command needs the conformance "
              f"extra: {CONFORMANCE_INSTALL}", file=sys.stderr)
        return 2
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from .conformance import Options, exit_code, print_summary, run, write_junit

    options = Options(args.url.rstrip("/"), args.key, args.other_key, args.skill, args.max_examples, not args.no_fuzz)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), transient=True) as bar:
        task = bar.add_task("starting")
        results = run(options, lambda what: bar.update(task, description=what))
    print_summary(results)
    if args.junit_xml is not None:
        write_junit(results, args.junit_xml)
    return exit_code(results)


def main(argv: Sequence[str] | None = None) -> int:
    # connexion imports Starlette's test client at import time, whose httpx warning
    # would be the first thing `skillrun serve` prints (before the key); the server
    # never uses that client.
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient`")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # httpx logs every request's full URL at INFO: http.request's URLs may carry a
    # step's credentials (an API key in the query), which must not reach the log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
