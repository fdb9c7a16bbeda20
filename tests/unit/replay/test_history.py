"""Range answers read per instant as a check reads an instant query; each query sent once."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from autoscaler.errors import QueryError, SourceUnavailable
from autoscaler.replay.history import Grid, History, HistoryFetcher, StoredHistory
from tests.unit.replay.fakes import MINUTE, T0, FakeRange, series

GRID = Grid(T0, MINUTE, 4)


def test_grid_covers_the_half_open_window() -> None:
    assert Grid.covering(T0, T0 + 10 * MINUTE, MINUTE).count == 10
    assert Grid.covering(T0, T0 + timedelta(seconds=601), MINUTE).count == 11
    grid = Grid.covering(T0, T0 + 3 * MINUTE, MINUTE)
    assert (grid.at(0), grid.last) == (T0, T0 + 2 * MINUTE)
    with pytest.raises(ValueError, match="positive"):
        Grid.covering(T0, T0 + MINUTE, timedelta(0))


def test_one_series_gives_its_value_and_no_series_gives_no_data() -> None:
    history = History.from_series("q", GRID, [series(1.5, None, float("nan"), 4.0)])
    assert history.value(0) == 1.5 and history.value(1) is None and history.value(3) == 4.0
    nan = history.value(2)
    assert isinstance(nan, float) and math.isnan(nan)  # left for the reconciler to refuse


def test_several_series_at_an_instant_are_an_error_like_an_instant_query() -> None:
    history = History.from_series(
        "up", GRID, [series(1, 1, None, None, job="a"), series(None, 1, None, None, job="b")]
    )
    assert history.value(0) == 1
    error = history.value(1)
    assert isinstance(error, str) and "returned 2 series" in error and "sum()" in error
    assert history.value(2) is None


def test_samples_off_the_grid_are_not_taken_for_instants() -> None:
    history = History.from_series("q", GRID, [series(1, 2, 3, 4, shift=30)])
    assert [history.value(i) for i in range(4)] == [None] * 4
    history = History.from_series("q", GRID, [series(1, 2, 3, 4, shift=0.0004)])
    assert [history.value(i) for i in range(4)] == [1, 2, 3, 4]


def test_identical_queries_are_sent_once_in_order_on_one_background_thread() -> None:
    source = FakeRange({"a": [series(1, 2, 3, 4)], "b": [series(5, 6, 7, 8)]})
    other = Grid(T0, 2 * MINUTE, 2)
    needs = [("a", GRID), ("b", GRID), ("a", GRID), ("a", other), ("b", GRID)]
    with HistoryFetcher(source, needs, ahead=1) as fetcher:
        taken = [fetcher.take(q, g).value(1) for q, g in needs]
    assert taken == [2, 6, 2, 3, 6]  # the 2-minute grid reads minute 2 at its instant 1
    assert [(q, step) for q, _, _, step in source.asked] == [
        ("a", MINUTE),
        ("b", MINUTE),
        ("a", 2 * MINUTE),
    ]
    assert fetcher.sent == 3 and source.threads == {"range-queries_0"}
    assert source.asked[0][1:3] == (T0, T0 + 3 * MINUTE)  # first and last instant


def test_a_rejected_query_fails_at_every_instant_and_is_remembered() -> None:
    source = FakeRange({"bad(": QueryError("parse error"), "ok": [series(1, 1, 1, 1)]})
    with HistoryFetcher(source, [("bad(", GRID), ("ok", GRID)]) as fetcher:
        bad = fetcher.take("bad(", GRID)
        assert [bad.value(i) for i in range(4)] == ["parse error"] * 4
        assert fetcher.take("ok", GRID).value(0) == 1
    assert fetcher.errors == {"bad(": "parse error"}


def test_an_unreachable_source_stops_the_replay() -> None:
    source = FakeRange({"a": SourceUnavailable("connection refused")})
    with HistoryFetcher(source, [("a", GRID)]) as fetcher, pytest.raises(SourceUnavailable):
        fetcher.take("a", GRID)


def test_a_query_taken_out_of_order_is_fetched_at_once() -> None:
    source = FakeRange({"a": [series(1)], "b": [series(2)], "c": [series(3)]})
    needs = [("a", GRID), ("b", GRID), ("c", GRID)]
    with HistoryFetcher(source, needs, ahead=1) as fetcher:
        assert fetcher.take("c", GRID).value(0) == 3
        assert fetcher.take("a", GRID).value(0) == 1
        assert fetcher.take("b", GRID).value(0) == 2
    assert sorted(q for q, *_ in source.asked) == ["a", "b", "c"]
    with pytest.raises(KeyError, match="not announced"):
        fetcher.take("d", GRID)


def test_a_grouped_query_is_sent_once_and_each_target_reads_its_own_series() -> None:
    grouped = "sum by (job) (rate(x[2m]))"
    source = FakeRange(
        {
            grouped: [
                series(1, 2, 3, 4, job="a"),
                series(5, None, 7, 8, job="b"),
                series(None, 9, None, None, job="b", instance="other"),
            ]
        }
    )
    a, b, c = (("job", "a"),), (("job", "b"),), (("job", "c"),)
    needs = [(grouped, GRID, a), (grouped, GRID, b), (grouped, GRID, c)]
    with HistoryFetcher(source, needs) as fetcher:
        read = {select: fetcher.take(grouped, GRID, select) for _, _, select in needs}
    assert len(source.asked) == 1 and fetcher.sent == 1
    assert [read[a].value(i) for i in range(4)] == [1, 2, 3, 4]
    assert [read[b].value(i) for i in (0, 1, 2)] == [5, 9, 7]  # one series at each instant
    assert [read[c].value(i) for i in range(4)] == [None] * 4  # no series of its own


def test_two_series_of_one_target_at_an_instant_are_ambiguous() -> None:
    history = History.from_series(
        "sum by (job, instance) (x)",
        GRID,
        [series(1, 1, 1, 1, job="a", instance="i1"), series(2, None, 2, 2, job="a", instance="i2")],
        (("job", "a"),),
    )
    assert history.value(1) == 1
    error = history.value(0)
    assert isinstance(error, str)
    assert "2 series match job='a' in the grouped query" in error and "sum by" in error


def test_a_rejected_grouped_query_fails_every_target_at_every_instant() -> None:
    source = FakeRange({"bad(": QueryError("parse error")})
    needs = [("bad(", GRID, (("job", "a"),)), ("bad(", GRID, (("job", "b"),))]
    with HistoryFetcher(source, needs) as fetcher:
        assert [fetcher.take(q, g, s).value(0) for q, g, s in needs] == ["parse error"] * 2
    assert len(source.asked) == 1


def test_stored_history_answers_with_the_labels_of_the_targets_series() -> None:
    stored = StoredHistory({("q", 60.0): ((T0.timestamp(), 3.0),)}, {"q": {"job": "a"}})
    (answer,) = stored.query_range("q", start=T0, end=T0 + MINUTE, step=MINUTE)
    assert (dict(answer.labels), answer.points) == ({"job": "a"}, ((T0.timestamp(), 3.0),))
