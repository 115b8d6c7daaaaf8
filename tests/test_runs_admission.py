"""Issues 11/15, running-run limits across nodes: a place among the running runs is taken
atomically on Redis (two nodes admitting at the same instant cannot pass the limit), and a
run waiting for a person holds no running place on any store (memory, SQLite, Redis alike)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest

from skillrun.runs import RedisStore
from skillrun.runs.quotas import QuotaExceeded
from stores import started, store_db

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["redis", "redis-cluster"])
async def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    db, options = store_db(request, tmp_path)
    prefix, cluster = str(options["redis_prefix"]), bool(options.get("redis_cluster"))
    stores = RedisStore(db, prefix=prefix, cluster=cluster), RedisStore(db, prefix=prefix, cluster=cluster)
    for s in stores:
        await s.open()
    yield stores
    for s in stores:
        await s.close()


async def test_concurrent_admissions_on_two_nodes_never_pass_the_per_key_limit(
    two_stores: tuple[RedisStore, RedisStore],
) -> None:
    """Two nodes each try to take 20 running places for one key at the same instant, its
    limit being 5 (SKILLRUN_MAX_RUNNING_PER_KEY=5): exactly 5 are taken, the other 35 refused
    with the count at the limit; the shared count then says 5."""
    a, b = two_stores
    tries = [s.reserve_running(f"r{n}-{i}", "key_a", 5, 1000) for n, s in enumerate((a, b)) for i in range(20)]
    results = await asyncio.gather(*tries)
    assert sum(r is None for r in results) == 5
    assert all(r == (5, 0) for r in results if r is not None)
    assert await a.count_running("key_a") == (5, 5)


async def test_concurrent_admissions_on_two_nodes_never_pass_the_global_limit(
    two_stores: tuple[RedisStore, RedisStore],
) -> None:
    """Two nodes each try to take 20 places for 40 different keys at the same instant, the
    server's limit being 7 (SKILLRUN_MAX_RUNNING=7): exactly 7 are taken, and no key keeps
    a place it was refused."""
    a, b = two_stores
    tries = [s.reserve_running(f"r{n}-{i}", f"key_{n}_{i}", 100, 7) for n, s in enumerate((a, b)) for i in range(20)]
    results = await asyncio.gather(*tries)
    assert sum(r is None for r in results) == 7
    assert all(r == (0, 7) for r in results if r is not None)
    kept = [await a.count_running(f"key_{n}_{i}") for n in range(2) for i in range(20)]
    assert sum(of_key for of_key, _ in kept) == 7


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def app(request: pytest.FixtureRequest, tmp_path: Path, app_factory: Callable[..., Any]) -> AsyncIterator[Any]:
    db, options = store_db(request, tmp_path)
    app = app_factory(db=db, max_running_per_key=1, rate_limit_storage="memory://", **options)
    async with started(app):
        yield app


async def test_a_run_waiting_for_a_person_holds_no_running_place_of_its_key(app: Any) -> None:
    """With SKILLRUN_MAX_RUNNING_PER_KEY=1, demo.approval waits for its answer: the same key
    can start demo.ticker meanwhile (on every store: a waiting run counts as stored, not
    running); while that ticker runs, a third run is refused 429."""
    runs, catalog = app.services.runs, app.services.catalog
    waiting = await runs.start(catalog.get("demo.approval"), {"text": "One. Two."}, owner="key_a", channel="http")
    for _ in range(200):
        run = await app.services.store.get(waiting.run_id)
        if run is not None and run.status == "waiting":
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("demo.approval never waited")
    await asyncio.sleep(0.1)  # a shared store learns of the wait from the writer task
    ticker = catalog.get("demo.ticker")
    await runs.start(ticker, {"steps": 20, "delay_ms": 50}, owner="key_a", channel="http")
    with pytest.raises(QuotaExceeded) as refused:
        await runs.start(ticker, {"steps": 1}, owner="key_a", channel="http")
    assert refused.value.status == 429


@pytest.fixture
async def redis_app(request: pytest.FixtureRequest, tmp_path: Path, app_factory: Callable[..., Any]) -> AsyncIterator[Any]:
    db, options = store_db(request, tmp_path, "redis")
    app = app_factory(db=db, max_running_per_key=1, rate_limit_storage="memory://", **options)
    app.services.runs.RELEASE_RETRY_S = 0.05
    async with started(app):
        yield app


@pytest.mark.parametrize("landed", [False, True])
async def test_a_place_is_given_back_when_the_store_returns(
    redis_app: Any, monkeypatch: pytest.MonkeyPatch, landed: bool
) -> None:
    """Issue 11: the store fails a create and then the give-back of the place taken for
    it (a Redis outage at that moment). The place is given back once the store answers,
    so the key (limit 1) can start runs again; a create that had landed though its
    answer was lost is closed as interrupted (nothing runs it, its caller got an error)."""
    from skillrun.runs import StoreUnavailable

    runs, store, catalog = redis_app.services.runs, redis_app.services.store, redis_app.services.catalog
    real_create, real_release = store.create, store.release_running
    created: list[str] = []
    failures = {"release": 3}

    async def failing_create(run: Any) -> Any:
        if landed:
            created.append((await real_create(run)).run_id)
        raise StoreUnavailable("outage")

    async def failing_release(run_id: str, owner: str) -> None:
        if failures["release"]:
            failures["release"] -= 1
            raise StoreUnavailable("outage")
        await real_release(run_id, owner)

    monkeypatch.setattr(store, "create", failing_create)
    monkeypatch.setattr(runs.quotas, "release", failing_release)  # the store's release_running
    with pytest.raises(StoreUnavailable):
        await runs.start(catalog.get("demo.ticker"), {"steps": 1}, owner="key_a", channel="http")
    monkeypatch.setattr(store, "create", real_create)
    assert await store.count_running("key_a") == (1, 1)  # the place is still taken
    for _ in range(200):
        if await store.count_running("key_a") == (0, 0):
            break
        await asyncio.sleep(0.02)
    assert await store.count_running("key_a") == (0, 0)
    ticker = await runs.start(catalog.get("demo.ticker"), {"steps": 1}, owner="key_a", channel="http")
    await runs.until_finished(ticker.run_id)
    if landed:
        lost = await store.get(created[0])
        assert lost is not None and lost.status == "interrupted"
