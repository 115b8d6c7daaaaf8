"""Issue 11, Redis Cluster without a flag: when ``SKILLRUN_REDIS_URL``/``SKILLRUN_DB`` names a
node of a Redis Cluster, the service asks it (``INFO cluster``: ``cluster_enabled:1``) and
uses the Cluster client for runs and rate limits; a plain Redis stays plain, and an explicit
``SKILLRUN_REDIS_CLUSTER`` is obeyed as given."""

from __future__ import annotations

import json
import uuid
from typing import Any, Callable

import pytest

from skillrun.runs import EventRecord, RunRecord
from skillrun.runs.redis import cluster_enabled
from skillrun.settings import Settings

pytestmark = pytest.mark.anyio


def _run(run_id: str) -> RunRecord:
    return RunRecord(run_id=run_id, owner="key_a", skill_id="demo.ticker", trace_id="t", channel="http",
                     inputs={}, created_at="2026-01-01T00:00:00.000Z")


async def test_a_cluster_node_url_without_the_flag_is_detected_and_its_store_works(
    redis_cluster: Any, app_factory: Callable[..., Any]
) -> None:
    """SKILLRUN_DB=redis://<a cluster node> and no SKILLRUN_REDIS_CLUSTER: the store is the
    Cluster client, rate limits use redis+cluster://, and runs on many slots are written and read."""
    app = app_factory(db=redis_cluster[0].url, redis_prefix=f"t{uuid.uuid4().hex[:8]}:", rate_limit_storage="")
    store = app.services.store
    assert store.cluster is True
    assert app.services.settings.limits_storage().startswith("redis+cluster://")
    await store.open()
    try:
        for n in range(8):  # run ids hash to different slots, on different masters
            await store.create(_run(f"r{n}"))
            store.append(f"r{n}", EventRecord(1, "skill_start", json.dumps({"type": "skill_start"})))
        for n in range(8):
            assert await store.wait(f"r{n}", 0, 5)
            assert [e.seq for e in await store.read(f"r{n}", 0)] == [1]
    finally:
        await store.close()


def test_a_plain_redis_is_not_taken_for_a_cluster(redis_server: Any) -> None:
    """A standalone redis-server answers cluster_enabled:0: the plain client is used."""
    assert cluster_enabled(redis_server.url) is False


def test_an_unreachable_redis_is_not_guessed_at() -> None:
    """Redis down at start: the detection says it cannot tell (None, a warning naming
    SKILLRUN_REDIS_CLUSTER) instead of failing the start."""
    assert cluster_enabled("redis://127.0.0.1:1/0", timeout_s=0.5) is None


def test_an_explicit_setting_is_obeyed_and_unset_means_detect(monkeypatch: pytest.MonkeyPatch) -> None:
    """SKILLRUN_REDIS_CLUSTER=0 is False, =1 is True, unset is None (ask Redis at start)."""
    monkeypatch.delenv("SKILLRUN_REDIS_CLUSTER", raising=False)
    assert Settings.from_env().redis_cluster is None
    monkeypatch.setenv("SKILLRUN_REDIS_CLUSTER", "0")
    assert Settings.from_env().redis_cluster is False
    monkeypatch.setenv("SKILLRUN_REDIS_CLUSTER", "1")
    assert Settings.from_env().redis_cluster is True
