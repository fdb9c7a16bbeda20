"""After a reload the service keeps what is alive out of later full collections
(`gc.freeze`), and collects what the previous reload froze and is garbage now."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from autoscaler.service import heap
from autoscaler.service.heap import SERVICE_GC_THRESHOLD, collect_less_often, settle_heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


@pytest.fixture(autouse=True)
def _unfrozen(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(heap, "_next_settle", 0.0)  # restored after the test
    yield
    gc.unfreeze()


def test_what_a_reload_froze_is_collected_by_the_next_once_it_is_garbage() -> None:
    old = Node()
    alive = weakref.ref(old)
    assert settle_heap(now=1e9)
    assert gc.get_freeze_count() > 0  # kept out of later collections
    del old
    gc.collect()
    assert alive() is not None  # frozen: a full collection does not look at it
    spaced = heap._next_settle
    assert spaced > 1e9  # the next one waits 50 times as long as this one took
    assert not settle_heap(now=(1e9 + spaced) / 2)  # too soon: no collection ...
    assert alive() is not None
    assert gc.get_freeze_count() == 0  # ... but unfrozen: collected as usual again
    assert settle_heap(now=spaced)
    assert alive() is None  # the next settling frees it


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ((700, 10, 10), (SERVICE_GC_THRESHOLD, 10, 10)),  # Python's default: raised
        ((50_000, 5, 7), (50_000, 5, 7)),  # higher already: kept
        ((0, 10, 10), (0, 10, 10)),  # collection turned off: stays off
    ],
)
def test_the_service_collects_young_objects_less_often_never_more(
    before: tuple[int, int, int], after: tuple[int, int, int]
) -> None:
    saved = gc.get_threshold()
    try:
        gc.set_threshold(*before)
        collect_less_often()
        assert gc.get_threshold() == after
    finally:
        gc.set_threshold(*saved)
