"""``skillrun serve | validate | keys``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .settings import Settings

log = logging.getLogger("skillrun")


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app
    from .auth import generate_key
    from .edge import EdgeLimits, edge_protocol

    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"skillrun serve: {exc}", file=sys.stderr)
        return 2
    settings.skill_dirs += [Path(d) for d in args.skills]
    if args.db is not None:
        settings.db = args.db
    if args.forwarded_allow_ips is not None:
        settings.forwarded_allow_ips = [p.strip() for p in args.forwarded_allow_ips.split(",") if p.strip()]
    if not settings.api_keys and settings.api_keys_file is None:
        key = generate_key()
        settings.api_keys = [key]
        # Never an open server: print a fresh key once, keep only its hash.
        print(f"No SKILLRUN_API_KEYS set; generated an API key for this run:\n\n    {key}\n", flush=True)
    try:
        app = create_app(settings)
    except (ValueError, OSError) as exc:
        # A bad keys file or rate limit is the user's to fix: say what, not a traceback.
        print(f"skillrun serve: {exc}", file=sys.stderr)
        return 2
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
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
    )
    server = DrainingServer(config, app.services.runs, settings.shutdown_grace_s)
    print(f"Skillrun on http://{args.host}:{args.port}  (docs: /docs, spec: /openapi.json)", flush=True)
    server.run()
    return 0


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

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.server.serve()

    def run(self) -> None:
        asyncio.run(self._serve())


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
    from .auth import check_keys, hash_key

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
    from .auth import generate_key, hash_key

    key = generate_key()
    print(f"key:    {key}\nsha256: {hash_key(key)}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="skillrun", description=__doc__)
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
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=_serve)

    validate = sub.add_parser(
        "validate", help="check skill files (YAML, schema, needs, nested skills, CEL, inputs); exit 1 on any problem"
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="a skill file, or a directory of them")
    validate.set_defaults(func=_validate)

    keys = sub.add_parser("keys", help="API key helpers")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    h = keys_sub.add_parser("hash", help="print a key's SHA-256 for SKILLRUN_API_KEYS_FILE")
    h.add_argument("key", nargs="?", help="the key (read from stdin when absent)")
    h.set_defaults(func=_keys_hash)
    n = keys_sub.add_parser("new", help="generate a key and print it with its hash")
    n.set_defaults(func=_keys_new)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # httpx logs every request's full URL at INFO: http.request's URLs may carry a
    # step's credentials (an API key in the query), which must not reach the log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
