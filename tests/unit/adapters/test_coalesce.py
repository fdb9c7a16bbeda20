"""The coalescing MetricSource: identical queries due together reach Prometheus once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from autoscaler.adapters.sources.coalesce import CoalescingSource, fresh_since
from autoscaler.core.series import SeriesSet
from autoscaler.errors import QueryError
from tests.support.net import wait_until


class _Inner:
    """A MetricSource that counts calls and can hold them until released."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.release = threading.Event()
        self.release.set()
        self.arrived = threading.Event()
        self.pings = 0
        self.fail: Exception | None = None

    def query(self, promql: str) -> float:
        self.calls.append(promql)
        self.arrived.set()
        self.release.wait(5)
        if self.fail is not None:
            raise self.fail
        return float(len(self.calls))

    def query_series(self, promql: str, *, reuse: float = 0.0) -> SeriesSet:
        raise NotImplementedError  # the grouped queries' fake is `_Grouped` below

    def ping(self) -> None:
        self.pings += 1


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_concurrent_identical_queries_share_one_flight() -> None:
    inner = _Inner()
    inner.release.clear()
    source = CoalescingSource(inner, reuse=0.0)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(source.query, "up") for _ in range(4)]
        assert inner.arrived.wait(5)
        inner.release.set()
        values = [f.result(5) for f in futures]
    assert inner.calls == ["up"]
    assert values == [1.0] * 4
    assert (source.sent, source.shared) == (1, 3)


def test_different_queries_are_not_coalesced() -> None:
    inner = _Inner()
    source = CoalescingSource(inner)
    source.query("a")
    source.query("b")
    assert inner.calls == ["a", "b"]


def test_an_answer_is_reused_only_within_the_window() -> None:
    inner, clock = _Inner(), _Clock()
    source = CoalescingSource(inner, reuse=1.0, clock=clock)
    assert source.query("up") == 1.0
    clock.now += 0.9
    assert source.query("up") == 1.0
    clock.now += 0.2
    assert source.query("up") == 2.0
    assert inner.calls == ["up", "up"]


def test_an_error_is_shared_like_a_value() -> None:
    inner, clock = _Inner(), _Clock()
    inner.fail = QueryError("no series")
    source = CoalescingSource(inner, reuse=1.0, clock=clock)
    for _ in range(2):
        with pytest.raises(QueryError, match="no series"):
            source.query("up")
    assert len(inner.calls) == 1


def test_ping_always_reaches_the_source() -> None:
    inner = _Inner()
    source = CoalescingSource(inner)
    source.ping()
    source.ping()
    assert inner.pings == 2


def test_a_triggered_evaluation_never_reuses_an_answer_from_before_its_trigger() -> None:
    inner, clock = _Inner(), _Clock()
    source = CoalescingSource(inner, reuse=1.0, clock=clock)
    assert source.query("up") == 1.0
    clock.now += 0.5
    with fresh_since(clock.now):
        assert source.query("up") == 2.0  # sent after the trigger
        clock.now += 0.1
        assert source.query("up") == 2.0  # ... and shared with others after it
    assert source.query("up") == 2.0


def test_a_triggered_evaluation_does_not_join_an_older_flight() -> None:
    inner, clock = _Inner(), _Clock()
    inner.release.clear()
    source = CoalescingSource(inner, reuse=1.0, clock=clock)
    with ThreadPoolExecutor(2) as pool:
        old = pool.submit(source.query, "up")
        assert inner.arrived.wait(5)
        clock.now += 0.1

        def triggered() -> float:
            with fresh_since(clock.now):
                return source.query("up")

        new = pool.submit(triggered)
        wait_until(lambda: len(inner.calls) == 2, timeout=5, what="a second flight")
        inner.release.set()
        assert (old.result(5), new.result(5)) == (2.0, 2.0)
    assert inner.calls == ["up", "up"]


# --- grouped queries ----------------------------------------------------------------------


class _Grouped(_Inner):
    """Answers grouped queries too, each with a fresh SeriesSet."""

    def query_series(self, promql: str, *, reuse: float = 0.0) -> SeriesSet:
        self.calls.append(promql)
        self.arrived.set()
        self.release.wait(5)
        if self.fail is not None:
            raise self.fail
        return SeriesSet(query=promql, series=[({"job": "web"}, float(len(self.calls)))])


def test_a_grouped_answer_is_parsed_once_and_shared_for_the_callers_window() -> None:
    inner, clock = _Grouped(), _Clock()
    source = CoalescingSource(inner, reuse=1.0, clock=clock)
    first = source.query_series("sum by (job) (x)", reuse=5.0)
    clock.now += 4.9  # within the 5 s the caller allows, though beyond the 1 s default
    assert source.query_series("sum by (job) (x)", reuse=5.0) is first
    clock.now += 0.2
    later = source.query_series("sum by (job) (x)", reuse=5.0)
    assert later is not first
    assert len(inner.calls) == 2
    assert (source.sent, source.shared) == (2, 1)


def test_concurrent_grouped_queries_share_one_flight_and_its_failure() -> None:
    inner = _Grouped()
    inner.release.clear()
    inner.fail = QueryError("Prometheus rejected it")
    source = CoalescingSource(inner)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(source.query_series, "g", reuse=5.0) for _ in range(4)]
        assert inner.arrived.wait(5)
        inner.release.set()
        for future in futures:
            with pytest.raises(QueryError, match="rejected"):
                future.result(5)
    assert inner.calls == ["g"]


def test_a_triggered_evaluation_never_reads_a_grouped_answer_older_than_its_trigger() -> None:
    inner, clock = _Grouped(), _Clock()
    source = CoalescingSource(inner, clock=clock)
    source.query_series("g", reuse=10.0)
    clock.now += 1.0
    with fresh_since(clock.now):
        source.query_series("g", reuse=10.0)
    assert inner.calls == ["g", "g"]


def test_the_next_answer_keeps_only_its_values_and_shares_the_rest() -> None:
    """Tick after tick the grouped answer has the same series: the new one holds the label
    dicts and the index of the one before (10,000 of each at 10,000 targets), and its own
    values."""
    inner, clock = _Grouped(), _Clock()
    source = CoalescingSource(inner, clock=clock)
    first = source.query_series("g", reuse=10.0)
    assert first.pick((("job", "web"),)) == 1.0
    clock.now += 10.5  # the first answer is no longer handed out, but still shared
    second = source.query_series("g", reuse=10.0)
    assert second is not first and second.pick((("job", "web"),)) == 2.0
    assert second.series[0][0] is first.series[0][0]
    assert second._indexes is first._indexes


def test_an_answer_two_windows_old_is_no_longer_kept() -> None:
    inner, clock = _Grouped(), _Clock()
    source = CoalescingSource(inner, clock=clock)
    first = source.query_series("g", reuse=10.0)
    clock.now += 20.5
    second = source.query_series("g", reuse=10.0)
    assert second.series[0][0] is not first.series[0][0]
    assert second.pick((("job", "web"),)) == 2.0


def test_a_failed_answer_leaves_the_previous_one_to_share() -> None:
    inner, clock = _Grouped(), _Clock()
    source = CoalescingSource(inner, clock=clock)
    first = source.query_series("g", reuse=10.0)
    clock.now += 10.5
    inner.fail = QueryError("Prometheus rejected it")
    with pytest.raises(QueryError):
        source.query_series("g", reuse=10.0)
    inner.fail = None
    clock.now += 1.0
    with fresh_since(clock.now):  # the failure is not reused: a new query is sent
        third = source.query_series("g", reuse=10.0)
    assert third.series[0][0] is first.series[0][0] and third.pick((("job", "web"),)) == 3.0
