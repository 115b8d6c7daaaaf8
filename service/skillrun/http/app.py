"""The app factory: the served spec, connexion's routing and validation, our services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, AsyncIterator

import connexion
from connexion.exceptions import ProblemException
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from starlette.exceptions import HTTPException

from ..capabilities import HttpPolicy, LlmConfig, default_registry
from ..engine import Engine, load_skills
from ..engine.deltas import DeltaPolicy
from ..engine.workers import make_offload
from ..keys import KeyRing, check_keys, hash_key, read_hash_file
from ..observe.http import ObserveMiddleware, RouteMarker, RouteTable
from ..observe.hub import Observability
from ..observe.metrics import Metrics
from ..observe.tracing import Tracing
from ..runs import RedisStore, RunManager, StoreUnavailable, open_store
from ..runs.nodes import NodeCoordinator
from ..runs.quotas import RunQuotas
from ..runs.redis import cluster_enabled, is_redis_url, public_url
from ..settings import BUNDLED_SKILLS, Settings
from . import errors
from .fastlane import FastLaneMiddleware
from .loadreport import LoadReport
from .middleware.bodylimit import BodyLimitMiddleware
from .middleware.console import ConsoleMiddleware
from .middleware.cors import CorsMiddleware
from .middleware.docsguard import DocsGuardMiddleware
from .middleware.ratelimit import RateLimiter, RateLimitMiddleware
from .operations import CachedAsyncApi, security_map
from .servedspec import ServedSpecMiddleware
from .services import Services, ServicesMiddleware
from .spec import SkillrunResolver, build_spec
from .validation import VALIDATOR_MAP

log = logging.getLogger(__name__)


def _purge_every_s(settings: Settings) -> float:
    return min(3600.0, max(1.0, settings.run_retention_s / 10))


def build_observability(settings: Settings, tracing: Tracing | None = None) -> Observability:
    from .. import __version__

    return Observability(
        Metrics(__version__) if settings.metrics else None,
        tracing if tracing is not None else Tracing.from_env(),
        step_context=settings.log_format == "json",
    )


def build_services(settings: Settings, tracing: Tracing | None = None) -> Services:
    observe = build_observability(settings, tracing)
    llm = LlmConfig(settings.llm_base_url, settings.llm_api_key, on_usage=observe.llm_usage)
    registry = default_registry(HttpPolicy(settings.http_allow, public=settings.http_public), llm)
    dirs = [*([BUNDLED_SKILLS] if settings.include_bundled_skills else []), *settings.skill_dirs]
    catalog, problems = load_skills(dirs, registry)
    report = LoadReport.of(dirs, catalog.all(), problems)
    log.info("%s", report.summary())
    check_keys(settings.api_keys)
    hashes = [hash_key(k) for k in settings.api_keys]
    if settings.api_keys_file is not None:
        hashes += read_hash_file(settings.api_keys_file)
    offload = make_offload(settings.worker_procs, settings.inline_max_chars, settings.worker_memory_mb,
                           settings.delta_max_chars)
    engine = Engine(
        registry, skills=catalog, max_parallel=settings.max_parallel, offload=offload,
        max_parallel_per_key=settings.max_parallel_per_key, max_foreach_items=settings.max_foreach_items,
        tracer=observe.engine_tracer(),
        deltas=DeltaPolicy(settings.delta_window_ms / 1000, settings.delta_max_chars, settings.delta_max_run_chars),
    )
    quotas = RunQuotas(
        settings.max_running_per_key, settings.max_running, settings.max_events_per_run,
        settings.max_stored_runs_per_key, stored_retry_after_s=int(_purge_every_s(settings)),
    )
    if settings.redis_cluster is None and is_redis_url(settings.db):
        # Not said: asked of Redis (a Cluster node answers cluster_enabled:1), so a
        # Cluster URL works without a flag; the rate limiter's storage follows.
        settings.redis_cluster = bool(cluster_enabled(settings.db))
        if settings.redis_cluster:
            log.info("run store: %s is a Redis Cluster node; using the Cluster client", public_url(settings.db))
    store = open_store(
        settings.db, redis_prefix=settings.redis_prefix, retention_s=settings.run_retention_s,
        max_events=settings.max_events_per_run, redis_cluster=bool(settings.redis_cluster),
    )
    if observe.metrics is not None and hasattr(store, "on_commit"):
        store.on_commit = observe.metrics.commit_observed
    runs = RunManager(store, engine, catalog, quotas, max_resumes=settings.max_resumes, observe=observe)
    if isinstance(store, RedisStore):
        # Counts across every node sharing the store, not this process's alone.
        quotas.shared = store.count_running
        quotas.reserve, quotas.release = store.reserve_running, store.release_running
    return Services(
        settings=settings,
        catalog=catalog,
        engine=engine,
        store=store,
        runs=runs,
        keys=KeyRing(hashes),
        limiter=RateLimiter(settings.rate_limit, settings.limits_storage(), settings.rate_limit_anonymous),
        observe=observe,
        capabilities=registry,
        load_report=report,
        nodes=NodeCoordinator(store, runs, settings.node_lease_s) if isinstance(store, RedisStore) else None,
    )


def create_app(settings: Settings | None = None, *, tracing: Tracing | None = None) -> connexion.AsyncApp:
    """A new app; its services hang off ``app.services`` (no module state).

    ``tracing``: OpenTelemetry tracing to use (tests); default as ``OTEL_*`` configure it."""
    settings = settings or Settings.from_env()
    services = build_services(settings, tracing)
    if not len(services.keys):
        log.warning("no API key configured: every authenticated request will get 401")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        # A lifespan may start again after a shutdown (test clients do): take runs again.
        services.runs.draining = False
        await services.store.open()
        if services.nodes is not None:
            await services.nodes.start()
        await services.engine.offload.start()
        # Runs a crash or kill -9 left running go on from their logs (or end as
        # interrupted), so every follower gets the rest and a done.
        await services.runs.recover()
        purger = asyncio.create_task(
            services.runs.purge_forever(settings.run_retention_s, _purge_every_s(settings))
        )
        metrics = services.observe.metrics
        # Metric updates are batched on the loop (observe/metrics.py, ``Batch``).
        flusher = asyncio.create_task(metrics.flush_forever()) if metrics is not None else None
        try:
            yield
        finally:
            purger.cancel()
            await services.runs.drain(settings.shutdown_grace_s)
            if services.nodes is not None:
                await services.nodes.stop()
            await services.engine.offload.close()
            await services.store.close()
            if flusher is not None:
                flusher.cancel()  # its last flush: what the shutdown counted too
                await asyncio.gather(flusher, return_exceptions=True)
            services.observe.close()

    app = connexion.AsyncApp(
        __name__,
        lifespan=lifespan,
        validator_map=VALIDATOR_MAP,
    )
    # Handlers' decorators built once per operation, not per request (operations.py).
    app._middleware_app.api_cls = CachedAsyncApi
    spec = build_spec(services.catalog)
    app.add_api(
        spec,
        resolver=SkillrunResolver(),
        validate_responses=settings.validate_responses,
        strict_validation=True,
        security_map=security_map(),
        swagger_ui_options=SwaggerUIOptions(swagger_ui_path="/docs"),
    )
    # Outermost: request duration by route, the access log and the server span see every
    # answer (429s, unknown paths, a stream's whole life). See observe/http.py.
    app.add_middleware(
        ObserveMiddleware, MiddlewarePosition.BEFORE_EXCEPTION, observe=services.observe, routes=RouteTable(spec)
    )
    # Then: every request can reach this app's services.
    app.add_middleware(ServicesMiddleware, MiddlewarePosition.BEFORE_EXCEPTION, services=services)
    # Inside that, still before the security check: preflights carry no key. See cors.py.
    app.add_middleware(CorsMiddleware, MiddlewarePosition.BEFORE_EXCEPTION, origins=settings.cors_origins)
    # The web console at /ui/ (static, no key for the page; like /docs, not an operation).
    app.add_middleware(ConsoleMiddleware, MiddlewarePosition.BEFORE_EXCEPTION)
    # Before connexion serves the spec and Swagger UI (only with SKILLRUN_PUBLIC_DOCS=0).
    app.add_middleware(DocsGuardMiddleware, MiddlewarePosition.BEFORE_EXCEPTION, public=settings.public_docs)
    # Inside the guard: the spec without the routing extensions, with a useful `servers`.
    app.add_middleware(ServedSpecMiddleware, MiddlewarePosition.BEFORE_EXCEPTION, spec=spec)
    # Inside connexion's exception handling, before its routing: the execute operations'
    # happy path in one layer; everything else (and every error) goes on. See fastlane.py.
    app.add_middleware(
        FastLaneMiddleware, MiddlewarePosition.BEFORE_SWAGGER, spec=spec, validate_responses=settings.validate_responses
    )
    # Right after routing: the matched operation, for the route label.
    app.add_middleware(RouteMarker, MiddlewarePosition.BEFORE_SECURITY)
    # Before the security check, so key guessing is limited (per address); then 401,
    # then 413 before body validation.
    app.add_middleware(RateLimitMiddleware, MiddlewarePosition.BEFORE_SECURITY)
    body_operations = frozenset(
        op["operationId"] for item in spec["paths"].values() for op in item.values()
        if isinstance(op, dict) and "requestBody" in op
    )
    app.add_middleware(BodyLimitMiddleware, MiddlewarePosition.BEFORE_VALIDATION, body_operations=body_operations)
    # Problems quote at most a prefix of the bad value they name (errors.py).
    app.add_error_handler(ProblemException, errors.bounded_problem)
    # Starlette's own 404/405 (no such path or method): a client's mistake, logged at INFO.
    app.add_error_handler(HTTPException, errors.http_problem)
    app.add_error_handler(StoreUnavailable, errors.store_unavailable)
    app.services = services
    return app
