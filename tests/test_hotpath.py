"""The hot path's per-request savings keep their behaviour (issue 12; figures in bench/).

Timing itself is measured by bench/profiler.py, bench/stream.py and bench/stored.py,
never asserted here: these tests pin what makes the savings, so they cannot quietly
come undone.
"""

from __future__ import annotations

import inspect
import re
import time
from typing import Any

import httpx
import pytest
from skillrun.http import validation
from skillrun.http.middleware.ratewindow import MovingWindow
from skillrun.runs.manager import new_run_id

pytestmark = pytest.mark.anyio


@pytest.fixture
def client(shared_client: httpx.AsyncClient) -> httpx.AsyncClient:
    return shared_client


def test_run_ids_sort_by_creation_time() -> None:
    """Run ids are time-ordered, so SQLite's indexes on them take new runs at their
    right edge ("Cost must not grow with what is stored": random ids made each run's
    commits ~55 us slower with 1,000,000 runs stored). The format is unchanged:
    ``run_`` and 24 lowercase hex digits, of which 12 are random."""
    earlier = new_run_id()
    time.sleep(0.002)
    later = new_run_id()
    assert re.fullmatch(r"run_[0-9a-f]{24}", earlier) and re.fullmatch(r"run_[0-9a-f]{24}", later)
    assert earlier < later
    same_ms = {new_run_id() for _ in range(1000)}
    assert len(same_ms) == 1000  # the random half tells apart runs made in one millisecond


async def test_requests_do_not_inspect_handler_signatures(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """connexion 3 re-inspected the handler's and the key callback's signatures
    (``inspect.signature``) and rebuilt the URI parser on every request, about a fifth
    of /execute's CPU in bench/profiler.py: after an operation's first request,
    authenticated requests (one with a path parameter) call it no more, and still
    get their parameters and their 401 without a key."""
    calls: list[Any] = []
    real = inspect.signature

    def counting(obj: Any, *args: Any, **kwargs: Any) -> inspect.Signature:
        calls.append(obj)
        return real(obj, *args, **kwargs)

    assert (await client.get("/v1/skills/text.summarize")).status_code == 200
    assert (await client.get("/v1/skills")).status_code == 200
    monkeypatch.setattr(inspect, "signature", counting)
    for _ in range(5):
        one = await client.get("/v1/skills/text.summarize")
        assert one.status_code == 200 and one.json()["id"] == "text.summarize"
        listed = await client.get("/v1/skills")
        assert listed.status_code == 200
    assert (await client.get("/v1/skills/text.summarize", headers={"x-api-key": ""})).status_code == 401
    assert calls == []


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_window_allows_amount_in_any_sliding_window() -> None:
    """The in-process rate limit (ratewindow.py, replacing limits' memory storage whose
    hit cost O(limit) and a thread hop) keeps limits' moving-window answers: 3 per 10 s
    allows 3, refuses the 4th, frees one slot when the oldest hit leaves the window,
    and reports the reset as the oldest hit's time plus the window."""
    clock = _Clock()
    window = MovingWindow(clock)
    assert [window.hit("k", 3, 10)[0] for _ in range(3)] == [True, True, True]
    clock.now += 4
    allowed, reset, left = window.hit("k", 3, 10)
    assert (allowed, reset, left) == (False, 1010.0, 0)
    clock.now += 6.5  # the first three hits (at 1000) are out of the window
    assert window.hit("k", 3, 10) == (True, 1020.5, 2)
    assert window.hit("other", 3, 10) == (True, 1020.5, 2)  # each identity its own budget


def test_rate_window_forgets_idle_identities() -> None:
    """Memory is bounded by the identities of one window: an address seen once is
    forgotten a window later (a scan of many addresses does not grow the process)."""
    clock = _Clock()
    window = MovingWindow(clock)
    for i in range(1000):
        window.hit(f"addr:{i}", 5, 60)
    clock.now += 61
    window.hit("key", 5, 60)
    assert list(window._hits) == ["key"]


async def test_request_validators_are_compiled_once_per_operation(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """connexion built and compiled a new jsonschema validator for the body and for each
    parameter on every request: after an operation's first request none is compiled
    again, and a bad body still gets its 422 naming the field (``inputs.max_sentences``)."""
    compiled: list[Any] = []
    real_body, real_param = validation.Draft4RequestValidator, validation.Draft4Validator

    def counting(real: Any) -> Any:
        def make(schema: Any, **kwargs: Any) -> Any:
            compiled.append(schema)
            return real(schema, **kwargs)

        make.FORMAT_CHECKER = real.FORMAT_CHECKER  # type: ignore[attr-defined]
        return make

    bad = {"inputs": {"text": "Hello there.", "max_sentences": "two"}}
    headers = {"x-trace-id": "0123456789abcdef0123456789abcdef"}
    url = "/v1/skills/text.summarize/execute"
    assert (await client.post(url, json=bad, headers=headers)).status_code == 422
    monkeypatch.setattr(validation, "Draft4RequestValidator", counting(real_body))
    monkeypatch.setattr(validation, "Draft4Validator", counting(real_param))
    for _ in range(5):
        r = await client.post(url, json=bad, headers=headers)
        assert r.status_code == 422
        assert [e["field"] for e in r.json()["errors"]] == ["inputs.max_sentences"]
    assert compiled == []
