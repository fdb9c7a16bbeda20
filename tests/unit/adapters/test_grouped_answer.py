"""A grouped answer is decoded straight into (labels, value) pairs; what any answer gives
(series, values, NaN, and the errors of odd shapes) is what the plain decoding gave."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from autoscaler.adapters.sources.prometheus_answers import sample_pairs, series_set
from autoscaler.errors import QueryError

QUERY = "sum by (job) (x)"


def _plain(body: str) -> Any:
    return json.loads(body)["data"]["result"]


def _paired(body: str, like: Any = ()) -> Any:
    return json.loads(body, object_pairs_hook=sample_pairs(like))["data"]["result"]


LIKE = [({"job": "web"}, 1.0), ({"job": "api", "group": "a"}, 2.0)]


def _outcome(result: Any) -> Any:
    """The series `series_set` gives `result` (NaN as a string, to compare), or its error."""
    try:
        found = series_set(QUERY, "vector", result)
    except QueryError as exc:
        return ("error", str(exc))
    series = [(dict(labels), "nan" if math.isnan(v) else v) for labels, v in found.series]
    return series, dict(found.unusable)


def _answer(*series: Any) -> str:
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": series}})


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_answer(), id="empty"),
        pytest.param(
            _answer(
                {"metric": {"job": "web"}, "value": [1.5, "12"]},
                {"metric": {"job": "api", "group": "a"}, "value": [1.5, "3.25"]},
            ),
            id="two-series",
        ),
        pytest.param(_answer({"metric": {}, "value": [1, "7"]}), id="no-labels"),
        pytest.param(_answer({"value": [1, "7"], "metric": {"job": "web"}}), id="value-first"),
        pytest.param(_answer({"metric": {"job": "web"}, "values": [[1, "7"]]}), id="range-series"),
        pytest.param(
            _answer({"metric": {"metric": "m", "value": "v"}, "value": [1, "2"]}),
            id="labels-named-metric-and-value",
        ),
        pytest.param(
            _answer(
                *(
                    {"metric": {"job": j}, "value": [1, v]}
                    for j, v in enumerate(["NaN", "+Inf", "-Inf"])
                )
            ),
            id="non-finite",
        ),
        pytest.param(_answer({"metric": {"job": "web"}, "value": [1, 5]}), id="number-value"),
        pytest.param(_answer({"metric": {"job": "web"}, "value": [1, "abc"]}), id="not-a-number"),
        pytest.param(_answer({"metric": {"job": "web"}, "value": [1, None]}), id="null-value"),
        pytest.param(_answer({"metric": {"job": "web"}, "value": [1]}), id="short-sample"),
        pytest.param(_answer({"metric": {"job": "web"}, "value": [1, "2", "3"]}), id="long-sample"),
        pytest.param(_answer({"metric": {"job": "web"}}), id="no-value"),
        pytest.param(_answer({"metric": {"job": "web"}, "value": "12"}), id="string-value"),
        pytest.param(_answer({"metric": {"job": "web"}, "value": [1, True]}), id="bool-value"),
        pytest.param(
            _answer(
                {"metric": {"job": "web"}, "value": [1, "1"]},
                {"metric": {"job": "api", "group": "a"}, "histogram": [1, {"count": "1"}]},
                {"metric": {"job": "api", "group": "a"}, "value": [1, "2"]},
            ),
            id="histogram-between",
        ),
        pytest.param(_answer({"value": [1, "2"]}), id="no-metric"),
        pytest.param(_answer({"metric": "web", "value": [1, "2"]}), id="metric-not-an-object"),
        pytest.param(
            _answer({"metric": {"job": "web"}, "value": [1, "2"], "histogram": {}}),
            id="extra-key",
        ),
        pytest.param(
            _answer({"metric": {"job": "web"}, "value": [1, "2"]}).replace(
                '"value": [1, "2"]', '"value": [1, "2"], "value": [1, "4"]'
            ),
            id="duplicate-key",
        ),
        pytest.param(_answer([1, "2"]), id="series-not-an-object"),
    ],
)
@pytest.mark.parametrize(
    "like", [pytest.param([], id="first-answer"), pytest.param(LIKE, id="after-an-answer")]
)
def test_a_grouped_answer_reads_as_the_plain_decoding_did(body: str, like: Any) -> None:
    assert _outcome(_paired(body, like)) == _outcome(_plain(body))


def test_a_series_is_kept_as_its_labels_and_value_only() -> None:
    """What a tick keeps of 10,000 series: a labels dict and a float each, nothing else of
    the answer (the `metric`/`value` object, the sample list, the value's text)."""
    body = _answer({"metric": {"job": "web"}, "value": [1.5, "12"]})
    (pair,) = _paired(body)
    assert type(pair) is tuple and pair == ({"job": "web"}, 12.0)
    ((labels, _),) = series_set(QUERY, "vector", [pair]).series
    assert labels is pair[0]


def test_the_same_series_as_the_answer_before_reuse_its_label_dicts() -> None:
    """An answer with the series of the one before makes no label dict of its own (each
    tick, 10,000 of them would be made and dropped); other labels get their own."""
    body = _answer(
        {"metric": {"job": "web"}, "value": [2, "3"]},
        {"metric": {"group": "a", "job": "api"}, "value": [2, "4"]},
        {"metric": {"job": "new"}, "value": [2, "5"]},
    )
    web, api, new = _paired(body, LIKE)
    assert web[0] is LIKE[0][0] and api[0] is LIKE[1][0]
    assert new == ({"job": "new"}, 5.0)
    moved = _paired(_answer({"metric": {"job": "api", "group": "a"}, "value": [2, "4"]}), LIKE)
    assert moved[0][0] is not LIKE[1][0] and moved[0][0] == LIKE[1][0]  # not at its place


def test_a_series_left_unread_keeps_the_next_series_reusing_the_answer_befores_labels() -> None:
    """A native histogram at one place of an answer (kept as unusable) left every later
    series compared with the wrong one of the answer before: none reused its labels, and
    10,000 label dicts were made again each tick."""
    like = [({"job": f"j{i}"}, 1.0) for i in range(4)]
    body = _answer(
        {"metric": {"job": "j0"}, "value": [2, "3"]},
        {"metric": {"job": "j1"}, "histogram": [2, {"count": "1", "sum": "1"}]},
        {"metric": {"job": "j2"}, "value": [2, "3"]},
        {"metric": {"job": "j3"}, "value": [2, "3"]},
    )
    first, _histogram, third, fourth = _paired(body, like)
    assert first[0] is like[0][0]
    assert third[0] is like[2][0] and fourth[0] is like[3][0]


HISTOGRAM = {"count": "3", "sum": "1.5", "buckets": [[0, "0.5", "1", "3"]]}


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        pytest.param(
            {"metric": {"job": "api"}, "histogram": [1, HISTOGRAM]},
            "a native histogram, not a number: read a number of it with histogram_count(), "
            "histogram_sum() or histogram_quantile()",
            id="native-histogram",
        ),
        pytest.param(
            {"metric": {"job": "api"}},
            "no value in the series from Prometheus (it has: metric)",
            id="no-value",
        ),
        pytest.param(
            {"metric": {"job": "api"}, "value": [1, "abc"]},
            "its value [1, 'abc'] is not a sample (time, number) from Prometheus",
            id="not-a-number",
        ),
        pytest.param(
            {"metric": {"job": "api"}, "values": [[1, "7"]]},
            "no value in the series from Prometheus (it has: metric, values)",
            id="range-series",
        ),
        # Read as numbers before: "12" as its second character, 2; true as 1; a number
        # where Prometheus writes a string, and a sample of three, as given.
        pytest.param(
            {"metric": {"job": "api"}, "value": "12"},
            "its value '12' is not a sample (time, number) from Prometheus",
            id="string-value",
        ),
        pytest.param(
            {"metric": {"job": "api"}, "value": [1, True]},
            "its value [1, True] is not a sample (time, number) from Prometheus",
            id="bool-value",
        ),
        pytest.param(
            {"metric": {"job": "api"}, "value": [1, 5]},
            "its value [1, 5] is not a sample (time, number) from Prometheus",
            id="number-value",
        ),
        pytest.param(
            {"metric": {"job": "api"}, "value": [1, "2", "3"]},
            "its value [1, '2', '3'] is not a sample (time, number) from Prometheus",
            id="long-sample",
        ),
        pytest.param(
            {"metric": {"job": "api"}, **{f"key{i:03}": 1 for i in range(100)}},
            "no value in the series from Prometheus (it has: key000, key001, key002, key003, "
            "key004, key005, key006, key0…)",
            id="many-keys-shown-short",
        ),
    ],
)
@pytest.mark.parametrize(
    "like", [pytest.param([], id="first-answer"), pytest.param(LIKE, id="after-an-answer")]
)
def test_a_series_without_a_usable_value_fails_only_the_target_that_picks_it(
    bad: dict[str, Any], reason: str, like: Any
) -> None:
    # Before, one such series failed the whole answer, so every target of the template.
    body = _answer({"metric": {"job": "web"}, "value": [1, "5"]}, bad)
    found = series_set(QUERY, "vector", _paired(body, like))
    assert found.pick((("job", "web"),)) == 5.0
    with pytest.raises(QueryError) as caught:
        found.pick((("job", "api"),))
    assert str(caught.value) == f"the series with job='api' of {QUERY!r} is unusable: {reason}"


def test_an_answer_whose_series_cannot_be_told_apart_still_fails_as_a_whole() -> None:
    """A series without labels (or not an object) belongs to no target: the answer is not
    Prometheus' shape, and every target's check fails, as before."""
    for bad in ({"value": [1, "2"]}, {"metric": "api", "value": [1, "2"]}, [1, "2"]):
        body = _answer({"metric": {"job": "web"}, "value": [1, "5"]}, bad)
        with pytest.raises(QueryError, match="unexpected result shape"):
            series_set(QUERY, "vector", _paired(body))
