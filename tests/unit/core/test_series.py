"""A grouped query's series, picked per target: one match is the value; none, several,
NaN or ±Inf fail that target's check only."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from autoscaler.core.series import SeriesSet, own_series, sharing
from autoscaler.errors import QueryError

QUERY = "sum by (job, ns) (rate(http_requests_total[2m]))"


def _set() -> SeriesSet:
    return SeriesSet(
        query=QUERY,
        series=[
            ({"job": "web", "ns": "a"}, 12.0),
            ({"job": "api", "ns": "a"}, 3.5),
            ({"job": "api", "ns": "b"}, 7.0),
            ({"job": "nan", "ns": "a"}, math.nan),
            ({"job": "inf", "ns": "a"}, math.inf),
        ],
    )


def test_each_target_reads_its_own_series() -> None:
    found = _set()
    assert found.pick((("job", "web"),)) == 12.0
    assert found.pick((("job", "api"), ("ns", "b"))) == 7.0


def test_a_target_missing_from_the_result_fails_alone() -> None:
    found = _set()
    with pytest.raises(QueryError, match=r"no series with job='gone' among the 5"):
        found.pick((("job", "gone"),))
    assert found.pick((("job", "web"),)) == 12.0  # the others still read theirs


def test_several_matching_series_are_ambiguous() -> None:
    with pytest.raises(QueryError, match=r"2 series match job='api'.*ambiguous"):
        _set().pick((("job", "api"),))


@pytest.mark.parametrize(
    ("job", "shown"), [pytest.param("nan", "NaN", id="nan"), pytest.param("inf", "inf", id="inf")]
)
def test_a_non_finite_value_fails_the_check(job: str, shown: str) -> None:
    with pytest.raises(QueryError, match=shown):
        _set().pick((("job", job),))


def test_a_label_a_series_lacks_never_matches() -> None:
    found = SeriesSet(query=QUERY, series=[({"job": "web"}, 1.0)])
    with pytest.raises(QueryError, match="no series"):
        found.pick((("job", "web"), ("ns", "a")))


def test_the_index_is_built_once_per_set_of_label_names() -> None:
    found = _set()
    found.pick((("job", "web"),))
    index = found._indexes[("job",)]
    found.pick((("job", "api"), ("ns", "a")))
    found.pick((("job", "web"),))
    assert found._indexes[("job",)] is index
    assert set(found._indexes) == {("job",), ("job", "ns")}


def test_a_query_is_narrowed_to_a_targets_series_in_promql() -> None:
    assert own_series("up", ()) == "up"
    assert own_series("sum by (job, group) (x)", (("job", "web"), ("group", "main"))) == (
        "(sum by (job, group) (x)) and on(job, group) "
        'label_replace(label_replace(vector(1), "job", "web", "", ""), "group", "main", "", "")'
    )
    # `$` would start a capture group reference; quotes and backslashes end the string.
    assert own_series("x", (("job", 'a$1"\\'),)).endswith(
        'label_replace(vector(1), "job", "a$$1\\"\\\\", "", "")'
    )


def test_an_index_keeps_a_position_per_series_and_a_list_only_for_several() -> None:
    """Every tick a grouped answer of 10,000 series gets a new index: it holds the position
    of each series (the label value as key for one label), a list only when several series
    share a key."""
    found = _set()
    found.pick((("job", "web"),))
    assert found._indexes[("job",)] == {"web": 0, "api": [1, 2], "nan": 3, "inf": 4}
    found.pick((("job", "api"), ("ns", "b")))
    assert found._indexes[("job", "ns")][("api", "b")] == 2


def test_an_answer_with_the_same_series_shares_the_previous_labels_and_index() -> None:
    previous = _set()
    previous.pick((("job", "web"),))
    answer = SeriesSet(
        query=QUERY, series=[(dict(labels), value + 1) for labels, value in previous.series]
    )
    shared = sharing(previous, answer)
    assert [labels for labels, _ in shared.series] == [labels for labels, _ in previous.series]
    assert all(a is b for (a, _), (b, _) in zip(shared.series, previous.series, strict=True))
    assert shared._indexes is previous._indexes
    assert shared.pick((("job", "web"),)) == 13.0
    assert shared.pick((("job", "api"), ("ns", "b"))) == 8.0


def test_an_unusable_series_fails_its_own_target_with_why_even_when_shared() -> None:
    previous = _set()
    series = [(dict(labels), 1.0) for labels, _ in previous.series]
    series[1] = (series[1][0], math.nan)
    answer = SeriesSet(query=QUERY, series=series, unusable={1: "a native histogram, not a number"})
    shared = sharing(previous, answer)
    assert shared is not answer and shared.series[1][0] is previous.series[1][0]
    with pytest.raises(QueryError, match=r"job='api', ns='a' .* is unusable: a native histogram"):
        shared.pick((("job", "api"), ("ns", "a")))
    assert shared.pick((("job", "web"),)) == 1.0


@pytest.mark.parametrize(
    "series",
    [
        pytest.param([({"job": "web", "ns": "a"}, 1.0)], id="fewer-series"),
        pytest.param(
            [({"job": "api", "ns": "a"}, 1.0), ({"job": "web", "ns": "a"}, 2.0)]
            + [({"job": j, "ns": "a"}, 0.0) for j in ("x", "y", "z")],
            id="other-order",
        ),
    ],
)
def test_an_answer_with_other_series_is_kept_as_it_is(
    series: list[tuple[dict[str, str], float]],
) -> None:
    answer = SeriesSet(query=QUERY, series=series)
    assert sharing(_set(), answer) is answer


def test_an_answer_to_another_query_is_kept_as_it_is() -> None:
    previous = _set()
    answer = SeriesSet(query="other", series=list(previous.series))
    assert sharing(previous, answer) is answer


def test_an_answer_already_holding_the_previous_labels_adopts_its_indexes() -> None:
    previous = _set()
    previous.pick((("job", "web"),))
    answer = SeriesSet(query=QUERY, series=[(labels, 0.5) for labels, _ in previous.series])
    assert sharing(previous, answer) is answer
    assert answer._indexes[("job",)] is previous._indexes[("job",)]
    assert answer.pick((("job", "web"),)) == 0.5


class _GrowingIndexes(dict[tuple[str, ...], Any]):
    """A set's indexes as an evaluation worker grows them while the fetcher reads them:
    each step of a walk over their items adds an index (as `SeriesSet._index` may, from
    another thread, between two steps of the fetcher's loop)."""

    def items(self) -> Iterator[tuple[tuple[str, ...], Any]]:  # type: ignore[override]
        for step, item in enumerate(super().items()):
            self[(f"label{step}",)] = {}
            yield item


def test_indexes_added_while_an_answer_adopts_them_fail_nothing() -> None:
    # The fetcher walked the previous answer's indexes while a worker still picking in it
    # added one: `RuntimeError: dictionary changed size during iteration`, which failed
    # every target of the tick.
    previous = _set()
    previous.pick((("job", "web"),))
    previous.pick((("job", "api"), ("ns", "a")))
    growing = _GrowingIndexes(previous._indexes)
    previous = SeriesSet(query=QUERY, series=previous.series, _indexes=growing)
    answer = SeriesSet(query=QUERY, series=[(labels, 0.5) for labels, _ in previous.series])
    assert sharing(previous, answer) is answer
    assert answer._indexes[("job",)] is growing[("job",)]
    assert answer._indexes[("job", "ns")] is growing[("job", "ns")]
    assert answer.pick((("job", "api"), ("ns", "b"))) == 0.5
