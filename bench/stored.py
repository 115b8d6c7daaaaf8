"""Cost must not grow with what is stored: an empty SQLite store against a full one, same run.

    python bench/stored.py [--runs 1000000] [--fill-seconds 300] [--seconds 5] [--streams 500] [--rounds 3]

Fills a SQLite run store DIRECTLY (sqlite3, not through HTTP: a million runs through
the API would take most of an hour) with copies of a real text.summarize run (its
row and its log's rows, one per commit batch as the server wrote them; ids new, times
spread over the last six days so retention keeps them, ids made as the server makes
them at that time), up to --runs or until
--fill-seconds pass, whichever is first; says how many it stored. Then serves each
store in turn, alternating (empty, full, empty, full, ... --rounds of each: the
machine is shared, so load from elsewhere falls on both), one uvicorn worker each,
and measures:

  /execute   text.summarize at concurrency 16 for --seconds: req/s
  streams    --streams simultaneous demo.ticker stream starts: first-event p50/p95
  store      the run store alone, in this process (no HTTP, far less noise): runs/s of
             create + the template run's events + done, 16 at a time, --store-runs each round
  queries    the store queries that used to grow with the runs stored (the per-key
             stored-runs count a start asks for, a list filtered by several statuses):
             ms each, asked of the file directly

and prints full/empty ratios of the medians and the median of each round's full/empty
ratio (the empty round just before it: load from elsewhere drifts between rounds) (aim:
within 10%, i.e. >= 0.90 for req/s, <= 1.10 for p95).
The stored runs belong to the benchmark's key (so its per-key count is a real one)
and SKILLRUN_MAX_STORED_RUNS_PER_KEY is raised above --runs for the server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import json
import secrets
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from stream import KEY, TEXT, free_port, load, pct, wait_up  # noqa: E402


def serve(db: Path, cwd: Path, max_stored: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {
        **os.environ,
        "SKILLRUN_API_KEYS": KEY,
        "SKILLRUN_RATE_LIMIT": "100000000/minute",
        "SKILLRUN_DB": str(db),
        "SKILLRUN_MAX_STORED_RUNS_PER_KEY": str(max_stored),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "skillrun", "serve", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd,
    )
    wait_up(f"http://127.0.0.1:{port}/v1/health/live", proc)
    return proc, port


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fill(db: Path, runs: int, budget_s: float) -> int:
    """Copies of the one run in ``db`` until ``runs`` or ``budget_s``; returns how many runs it holds."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    cols = [r[1] for r in conn.execute("PRAGMA table_info(runs)") if r[1] != "n"]
    template = dict(zip(cols, conn.execute(f"SELECT {', '.join(cols)} FROM runs LIMIT 1").fetchone()))
    # The template's log as the server stored it: a row per commit batch (schema 4), each
    # copied with the run id replaced (as long as the old one, so the row's lengths hold).
    batches = conn.execute("SELECT last_seq, first_seq, records FROM event_batches WHERE run_id = ? ORDER BY last_seq",
                           (template["run_id"],)).fetchall()
    n_events = batches[-1][0]
    old = template["run_id"]
    now = datetime.now(timezone.utc)
    span = timedelta(days=6).total_seconds()
    t0 = time.perf_counter()
    stored = 1
    batch = 10_000
    while stored < runs and time.perf_counter() - t0 < budget_s:
        n = min(batch, runs - stored)
        run_rows, event_rows = [], []
        for i in range(n):
            # Oldest first, as a server would have written them.
            at = iso(now - timedelta(seconds=span * (1 - (stored + i) / runs)))
            # As the run manager makes them: creation time in ms, then random (time-ordered keys).
            ms = int((now - timedelta(seconds=span * (1 - (stored + i) / runs))).timestamp() * 1000)
            run_id = f"run_{ms:012x}{secrets.token_hex(6)}"
            row = {**template, "run_id": run_id, "created_at": at, "started_at": at, "finished_at": at,
                   "trace_id": secrets.token_hex(16)}
            run_rows.append(tuple(row[c] for c in cols))
            assert len(run_id) == len(old)
            event_rows.extend((run_id, last, first, records.replace(old, run_id)) for last, first, records in batches)
        conn.execute("BEGIN")
        conn.executemany(f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", run_rows)
        conn.executemany("INSERT INTO event_batches (run_id, last_seq, first_seq, records) VALUES (?, ?, ?, ?)",
                         event_rows)
        # Each key's stored runs, as the store's commit counts them (schema 5).
        conn.execute("INSERT INTO run_counts (owner, runs) VALUES (?, ?) "
                     "ON CONFLICT (owner) DO UPDATE SET runs = runs + excluded.runs", (template["owner"], n))
        conn.execute("COMMIT")
        stored += n
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    print(f"filled {stored:,} runs ({stored * n_events:,} events in {stored * len(batches):,} rows, "
          f"{db.stat().st_size / 2**30:.2f} GiB) "
          f"in {time.perf_counter() - t0:.0f} s", flush=True)
    return stored


def measure(db: Path, cwd: Path, args: argparse.Namespace, max_stored: int) -> tuple[float, float, float]:
    """(/execute req/s, stream first-event p50, p95) against the store at ``db``."""
    proc, port = serve(db, cwd, max_stored)
    auth = {"x-api-key": KEY}
    try:
        load("execute", port, "/v1/skills/text.summarize/execute", {"inputs": {"text": TEXT}}, 4, 1, headers=auth)
        r = load("execute", port, "/v1/skills/text.summarize/execute", {"inputs": {"text": TEXT, "max_sentences": 2}},
                 16, args.seconds, headers=auth)
        assert r["errors"] == 0, r
        s = load("stream", port, "/v1/skills/demo.ticker/execute/stream", {"inputs": {"steps": 2}}, args.streams,
                 headers=auth)
        assert s["errors"] == 0, s
        return r["requests"] / r["wall"], pct(s["ttfe"], .5), pct(s["ttfe"], .95)
    finally:
        stop(proc)


def store_runs_per_s(db: Path, runs: int) -> float:
    """Runs/s through the SQLite store alone: create, the template run's events, done; 16 at a time."""
    sys.path.insert(0, str(HERE.parent / "service"))
    from skillrun.runs import EventRecord, RunRecord, SqliteStore
    from skillrun.runs.sqlite import _split

    conn = sqlite3.connect(full_db_of(db))
    template = conn.execute("SELECT run_id, owner, skill_id, inputs FROM runs ORDER BY n LIMIT 1").fetchone()
    events = [e for first, records in conn.execute(
        "SELECT first_seq, records FROM event_batches WHERE run_id = ? ORDER BY last_seq", (template[0],))
        for e in _split(records, first, 0, 2**63 - 1, 2**31)]
    conn.close()
    old, owner, skill_id, inputs = template

    async def one(store: SqliteStore, i: int) -> None:
        run_id = f"run_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"
        await store.create(RunRecord(run_id=run_id, owner=owner, skill_id=skill_id, trace_id=secrets.token_hex(16),
                                     channel="http", inputs=json.loads(inputs), created_at=iso(datetime.now(timezone.utc))))
        for seq, typ, data in events:
            store.append(run_id, EventRecord(seq, typ, data.replace(old, run_id)))
        while not await store.wait(run_id, len(events) - 1, 5):
            pass

    async def go() -> float:
        store = SqliteStore(db)
        await store.open()
        try:
            t0 = time.perf_counter()
            for start in range(0, runs, 16):
                await asyncio.gather(*(one(store, i) for i in range(start, min(start + 16, runs))))
            return runs / (time.perf_counter() - t0)
        finally:
            await store.close()

    return asyncio.run(go())


def full_db_of(db: Path) -> Path:
    """The filled database beside ``db`` (the empty one has no template run of its own at first)."""
    return db.with_name("full.db")


def query_ms(db: Path) -> dict[str, float]:
    """Median ms of the store's queries that grew with the runs stored, on the benchmark key."""
    sys.path.insert(0, str(HERE.parent / "service"))
    from skillrun.runs.sqlite import SqliteStore

    conn = sqlite3.connect(db)
    owner = conn.execute("SELECT owner FROM runs ORDER BY n DESC LIMIT 1").fetchone()[0]
    unfinished = SqliteStore._list_sql(["owner = ?"], [owner], ["queued", "running", "waiting"], 21)
    queries = {
        "stored-runs count": ("SELECT runs FROM run_counts WHERE owner = ?", (owner,)),
        "list ?status=queued,running,waiting": unfinished,
    }
    out = {}
    for name, (sql, params) in queries.items():
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            conn.execute(sql, params).fetchall()
            times.append((time.perf_counter() - t0) * 1000)
        out[name] = statistics.median(times)
    conn.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--fill-seconds", type=float, default=300)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--streams", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3, help="alternating measurements of each store")
    ap.add_argument("--store-runs", type=int, default=3000, help="runs through the store alone, each round")
    ap.add_argument("--skip-http", action="store_true", help="only the store alone and the queries")
    ap.add_argument("--dir", default=None, help="where the databases go (default: a new folder in TMPDIR)")
    args = ap.parse_args()
    tmp = Path(args.dir or Path(os.environ.get("TMPDIR", "/tmp")) / f"skillrun-stored-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    empty, full = tmp / "empty.db", tmp / "full.db"
    empty.unlink(missing_ok=True)
    max_stored = args.runs * 2 + 100_000
    if full.exists():
        # Kept from an earlier run (--dir): measure the same store again, e.g. after a change.
        stored = sqlite3.connect(full).execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        print(f"reusing {full} with {stored:,} runs", flush=True)
    else:
        # One real run written by the server: the template the fill copies.
        proc, port = serve(full, tmp, max_stored)
        try:
            load("execute", port, "/v1/skills/text.summarize/execute",
                 {"inputs": {"text": TEXT, "max_sentences": 2}}, 1, 0.01, headers={"x-api-key": KEY})
        finally:
            stop(proc)
        stored = fill(full, args.runs, args.fill_seconds)
    results: dict[str, list[tuple[float, float, float]]] = {"empty": [], "full": []}
    for _ in range(0 if args.skip_http else args.rounds):
        for name, db in [("empty", empty), ("full", full)]:
            results[name].append(measure(db, tmp, args, max_stored))
            rps, p50, p95 = results[name][-1]
            print(f"  {name:5}: /execute {rps:,.0f} req/s; {args.streams} stream starts first event p50/p95 "
                  f"{p50 * 1000:.0f}/{p95 * 1000:.0f} ms", flush=True)
    if results["empty"]:
        med = {name: [statistics.median(r[k] for r in rs) for k in range(3)] for name, rs in results.items()}
        (e_rps, e_p50, e_p95), (f_rps, f_p50, f_p95) = med["empty"], med["full"]
        print(f"with {stored:,} stored runs vs an empty store (medians of {args.rounds} alternating rounds): "
              f"/execute {f_rps:,.0f} vs {e_rps:,.0f} req/s (ratio {f_rps / e_rps:.2f}, aim >= 0.90); "
              f"stream-start p50 {f_p50 * 1000:.0f} vs {e_p50 * 1000:.0f} ms (ratio {f_p50 / e_p50:.2f}), "
              f"p95 {f_p95 * 1000:.0f} vs {e_p95 * 1000:.0f} ms (ratio {f_p95 / e_p95:.2f}, aim <= 1.10)")
        pairs = list(zip(results["empty"], results["full"]))
        print(f"  median of each round's full/empty ratio: /execute {statistics.median(f[0] / e[0] for e, f in pairs):.2f}, "
              f"stream-start p50 {statistics.median(f[1] / e[1] for e, f in pairs):.2f}, "
              f"p95 {statistics.median(f[2] / e[2] for e, f in pairs):.2f}")
    store_rates: dict[str, list[float]] = {"empty": [], "full": []}
    for _ in range(args.rounds):
        for name, db in [("empty", empty), ("full", full)]:
            store_rates[name].append(store_runs_per_s(db, args.store_runs))
    e_st, f_st = statistics.median(store_rates["empty"]), statistics.median(store_rates["full"])
    st_pairs = statistics.median(f / e for e, f in zip(store_rates["empty"], store_rates["full"]))
    print(f"  store alone: {f_st:,.0f} vs {e_st:,.0f} runs/s (ratio {f_st / e_st:.2f}; median of each round's "
          f"ratio {st_pairs:.2f})")
    q_empty, q_full = query_ms(empty), query_ms(full)
    for name in q_full:
        print(f"  {name}: {q_full[name]:.3f} ms full vs {q_empty[name]:.3f} ms empty")


if __name__ == "__main__":
    main()
