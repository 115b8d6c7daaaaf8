"""The collector's pacing under ``skillrun serve`` (``cli._settle_the_heap``): the startup
heap frozen, young collections as rare as the garbage they find allows."""

from __future__ import annotations

import gc
from typing import Iterator

import pytest

from skillrun.cli import YoungCollections, _settle_the_heap


@pytest.fixture
def gc_state() -> Iterator[None]:
    thresholds, callbacks = gc.get_threshold(), list(gc.callbacks)
    yield
    gc.set_threshold(*thresholds)
    gc.callbacks[:] = callbacks
    gc.unfreeze()


def test_young_collections_grow_rarer_while_they_find_no_garbage_and_not_when_they_do(gc_state: None) -> None:
    pace = YoungCollections()
    gc.set_threshold(pace.BASE, 20, 20)
    seen = []
    for _ in range(6):
        pace("start", {"generation": 0, "collected": 0, "uncollectable": 0})  # only a collection's end counts
        pace("stop", {"generation": 0, "collected": gc.get_threshold()[0] // 200, "uncollectable": 0})  # 0.5%
        seen.append(gc.get_threshold()[0])
    assert seen == [40_000, 80_000, 160_000, 320_000, 320_000, 320_000]
    assert gc.get_threshold()[1:] == (20, 20)  # the older generations' as they were
    pace("stop", {"generation": 1, "collected": 3_000, "uncollectable": 200})  # 1% and more: garbage is made
    assert gc.get_threshold()[0] == YoungCollections.BASE
    pace("stop", {"generation": 0, "collected": 199, "uncollectable": 0})
    assert gc.get_threshold()[0] == 40_000


def test_serve_freezes_the_startup_heap_and_paces_young_collections_once(gc_state: None) -> None:
    _settle_the_heap()
    _settle_the_heap()  # a second lifespan in one process: still one pacer
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (YoungCollections.BASE, 20, 20)
    assert sum(isinstance(cb, YoungCollections) for cb in gc.callbacks) == 1
