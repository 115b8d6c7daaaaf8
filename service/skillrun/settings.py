"""Settings from the environment (``SKILLRUN_*``), overridable by ``skillrun serve`` flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import durations

BUNDLED_SKILLS = Path(__file__).resolve().parent / "skills"
# Relative to the working directory of `skillrun serve`.
DEFAULT_DB = ".skillrun/skillrun.db"
DEFAULT_RATE_LIMIT = "600/minute"
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_RATE_LIMIT_ANONYMOUS = "60/minute"


def parse_duration(raw: str, name: str) -> float:
    """Seconds from ``3600``, ``90s``, ``15m``, ``12h``, ``7d`` (``durations``); positive."""
    value = durations.parse_duration(raw, name)
    if value <= 0:
        raise ValueError(f"{name}: {raw!r} must be positive")
    return value


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _limit(name: str, default: int) -> int:
    """A count limit: at least 1 (0 would refuse everything or, for a cap, mean none)."""
    value = _int(name, default)
    if value < 1:
        raise ValueError(f"{name}: {value} must be at least 1")
    return value


def _non_negative(name: str, default: float) -> float:
    value = _float(name, default)
    if value < 0:
        raise ValueError(f"{name}: {value} must not be negative")
    return value


def _lease(name: str, default: float) -> float:
    """A node lease: long enough to renew over a slow network, short enough that a dead
    node's runs end soon (the issue's bound: at most 30 s)."""
    value = _float(name, default)
    if not 1.0 <= value <= 30.0:
        raise ValueError(f"{name}: {value} must be between 1 and 30 seconds")
    return value


def _flag(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _log_format(raw: str) -> str:
    if raw not in ("text", "json"):
        raise ValueError(f"SKILLRUN_LOG_FORMAT: {raw!r} must be text or json")
    return raw


def _list(name: str) -> list[str]:
    return [p.strip() for p in os.environ.get(name, "").split(",") if p.strip()]


@dataclass
class Settings:
    api_keys: list[str] = field(default_factory=list)
    api_keys_file: Path | None = None
    skill_dirs: list[Path] = field(default_factory=list)
    # Per key: a client polling a run once a second (the documented pattern) while
    # starting, streaming and listing others fits well within 10 requests a second.
    rate_limit: str = DEFAULT_RATE_LIMIT
    # Per client address, for requests without a valid key (key guessing): lower.
    rate_limit_anonymous: str = DEFAULT_RATE_LIMIT_ANONYMOUS
    # None: the run store's Redis when `db` is a redis:// URL (one budget across
    # nodes), else this process's memory. See `limits_storage`.
    rate_limit_storage: str | None = None
    # The largest body a bundled skill's schema calls valid: a 500,000-character string
    # whose characters are each written as an escaped surrogate pair (12 bytes of JSON).
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # The HTTP edge (edge.py): a request's head (request line and headers) must be at
    # most this big and arrive within header_timeout_s; its body within body_timeout_s.
    max_header_bytes: int = 16 * 1024
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    # Open connections past this get 503 (each costs a file descriptor and buffers).
    max_connections: int = 12000
    # Peers whose X-Forwarded-For / X-Forwarded-Proto are believed (uvicorn's
    # --forwarded-allow-ips); none by default, so a client cannot pick its address.
    forwarded_allow_ips: list[str] = field(default_factory=list)
    # False: /openapi.json and /docs need a key too (see README, "Configuration").
    public_docs: bool = True
    heartbeat_s: float = 15.0
    shutdown_grace_s: float = 10.0
    validate_responses: bool = False
    include_bundled_skills: bool = True
    # Origins a browser page may call from (CORS); "*" for any. None by default.
    cors_origins: list[str] = field(default_factory=list)
    # The run store: a SQLite file, or ":memory:" (the default when Settings is
    # built in code, as tests do; `from_env` defaults to DEFAULT_DB).
    db: str = ":memory:"
    # With a Redis store: every key starts with this (several deployments can share a Redis).
    redis_prefix: str = "skillrun:"
    # With a Redis store: the URL is one node of a Redis Cluster (True), or not (False);
    # None (unset): asked of Redis at start (``INFO cluster``: ``cluster_enabled:1``).
    redis_cluster: bool | None = None
    # With a Redis store: how long a node's lease lasts without renewal; a node
    # silent this long is dead and a survivor closes its runs (renewed every third of it).
    node_lease_s: float = 15.0
    run_retention_s: float = 7 * 86400.0
    # A stream whose client reads nothing for this long is disconnected.
    send_timeout_s: float = 30.0
    # Capability calls running at once across all runs of this server (the engine's slots).
    max_parallel: int = 256
    # Non-public addresses http.request may reach anyway: host names, IPs, CIDRs.
    http_allow: list[str] = field(default_factory=list)
    # False: http.request reaches only http_allow (sandboxes, test suites).
    http_public: bool = True
    # Worker processes for CPU-bound capabilities (0: all inline, the default when
    # Settings is built in code; `from_env` defaults to the CPU count). See engine/workers.py.
    worker_procs: int = 0
    # Inputs up to this many characters run inline (cheaper than the hop to a worker).
    inline_max_chars: int = 4096
    # The address space one worker process may use.
    worker_memory_mb: int = 1024
    # Of the max_parallel capability slots, how many one key may hold at once: the
    # rest stay reachable by other keys (see engine/slots.py).
    max_parallel_per_key: int = 128
    # Runs of one key running at once on this server (429 past it): 10,000 idle
    # streams, each its own run, are what the project measures with one key.
    max_running_per_key: int = 10_000
    # Runs running at once on this server, all keys together (503 past it).
    max_running: int = 20_000
    # Events in one run's log; past it the run fails with kind limit_exceeded.
    # demo.ticker's largest run writes 20,003.
    max_events_per_run: int = 100_000
    # Runs of one key in the store (any status; 429 past it until retention purges
    # some). 10x the running limit: a day of the soak test fits many times over.
    max_stored_runs_per_key: int = 100_000
    # Items of one foreach; past it the step fails the run (limit_exceeded).
    # demo.ticker's schema allows 10,000.
    max_foreach_items: int = 10_000
    # How many times one run may be resumed after a restart before it is closed
    # as interrupted instead (a run that crashes its process must not loop).
    max_resumes: int = 3
    # Prometheus metrics (GET /metrics); off saves their cost (see bench/metrics.py).
    metrics: bool = True
    # Serve /metrics on this port instead (on the main port it is then 404).
    metrics_port: int | None = None
    # Log lines: "text" (a terminal) or "json" (one object per line, with run and trace ids).
    log_format: str = "text"
    # A step's partial output (step_delta): deltas within this window are one event
    # (0: every delta its own event), and its delta text is at most delta_max_chars.
    delta_window_ms: float = 25.0
    delta_max_chars: int = 1_000_000
    delta_max_run_chars: int = 10_000_000  # a run's delta text, all its steps and items together
    # llm.chat: an OpenAI-compatible Chat Completions endpoint (None: unconfigured),
    # and its key (never logged, never in an event or error).
    llm_base_url: str | None = None
    llm_api_key: str | None = field(default=None, repr=False)

    def limits_storage(self) -> str:
        """Where rate-limit counters live: as set, else the Redis run store's Redis, else memory."""
        if self.rate_limit_storage:
            return self.rate_limit_storage
        if self.db.startswith(("redis://", "rediss://")):
            scheme, rest = self.db.split("://", 1)
            return f"{scheme}+cluster://{rest}" if self.redis_cluster else self.db
        return "memory://"

    @classmethod
    def from_env(cls) -> "Settings":
        keys_file = os.environ.get("SKILLRUN_API_KEYS_FILE")
        return cls(
            api_keys=_list("SKILLRUN_API_KEYS"),
            api_keys_file=Path(keys_file) if keys_file else None,
            skill_dirs=[Path(p) for p in _list("SKILLRUN_SKILLS")],
            rate_limit=os.environ.get("SKILLRUN_RATE_LIMIT") or DEFAULT_RATE_LIMIT,
            rate_limit_anonymous=os.environ.get("SKILLRUN_RATE_LIMIT_ANONYMOUS") or DEFAULT_RATE_LIMIT_ANONYMOUS,
            rate_limit_storage=os.environ.get("SKILLRUN_RATE_LIMIT_STORAGE") or None,
            max_body_bytes=_int("SKILLRUN_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
            max_header_bytes=_int("SKILLRUN_MAX_HEADER_BYTES", 16 * 1024),
            header_timeout_s=_float("SKILLRUN_HEADER_TIMEOUT_S", 10.0),
            body_timeout_s=_float("SKILLRUN_BODY_TIMEOUT_S", 30.0),
            max_connections=_int("SKILLRUN_MAX_CONNECTIONS", 12000),
            forwarded_allow_ips=_list("SKILLRUN_FORWARDED_ALLOW_IPS"),
            public_docs=_flag("SKILLRUN_PUBLIC_DOCS", True),
            heartbeat_s=_float("SKILLRUN_HEARTBEAT_S", 15.0),
            shutdown_grace_s=_float("SKILLRUN_SHUTDOWN_GRACE_S", 10.0),
            validate_responses=_flag("SKILLRUN_VALIDATE_RESPONSES"),
            cors_origins=_list("SKILLRUN_CORS_ORIGINS"),
            db=os.environ.get("SKILLRUN_DB") or DEFAULT_DB,
            redis_prefix=os.environ.get("SKILLRUN_REDIS_PREFIX") or "skillrun:",
            redis_cluster=_flag("SKILLRUN_REDIS_CLUSTER") if os.environ.get("SKILLRUN_REDIS_CLUSTER") else None,
            node_lease_s=_lease("SKILLRUN_NODE_LEASE_S", 15.0),
            run_retention_s=parse_duration(os.environ.get("SKILLRUN_RUN_RETENTION") or "7d", "SKILLRUN_RUN_RETENTION"),
            send_timeout_s=_float("SKILLRUN_SEND_TIMEOUT_S", 30.0),
            max_parallel=_int("SKILLRUN_MAX_PARALLEL", 256),
            http_allow=_list("SKILLRUN_HTTP_ALLOW"),
            http_public=_flag("SKILLRUN_HTTP_PUBLIC", True),
            worker_procs=_int("SKILLRUN_WORKER_PROCS", os.cpu_count() or 1),
            inline_max_chars=_int("SKILLRUN_INLINE_MAX_CHARS", 4096),
            worker_memory_mb=_int("SKILLRUN_WORKER_MEMORY_MB", 1024),
            max_parallel_per_key=_limit("SKILLRUN_MAX_PARALLEL_PER_KEY", 128),
            max_running_per_key=_limit("SKILLRUN_MAX_RUNNING_PER_KEY", 10_000),
            max_running=_limit("SKILLRUN_MAX_RUNNING", 20_000),
            max_events_per_run=_limit("SKILLRUN_MAX_EVENTS_PER_RUN", 100_000),
            max_stored_runs_per_key=_limit("SKILLRUN_MAX_STORED_RUNS_PER_KEY", 100_000),
            max_foreach_items=_limit("SKILLRUN_MAX_FOREACH_ITEMS", 10_000),
            max_resumes=_int("SKILLRUN_MAX_RESUMES", 3),
            metrics=_flag("SKILLRUN_METRICS", True),
            metrics_port=_int("SKILLRUN_METRICS_PORT", 0) or None,
            log_format=_log_format(os.environ.get("SKILLRUN_LOG_FORMAT") or "text"),
            delta_window_ms=_non_negative("SKILLRUN_DELTA_WINDOW_MS", 25.0),
            delta_max_chars=_limit("SKILLRUN_DELTA_MAX_CHARS", 1_000_000),
            delta_max_run_chars=_limit("SKILLRUN_DELTA_MAX_RUN_CHARS", 10_000_000),
            llm_base_url=os.environ.get("SKILLRUN_LLM_BASE_URL") or None,
            llm_api_key=os.environ.get("SKILLRUN_LLM_API_KEY") or None,
        )
