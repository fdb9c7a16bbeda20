"""promtool's expanding notation, read as check values per evaluation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.replay.series import MAX_VALUES, Gap, SeriesError, expand

_ = Gap.MISSING


@pytest.mark.parametrize(
    ("text", "values"),
    [
        # The examples of promtool's documentation.
        pytest.param("-2+4x3", [-2.0, 2.0, 6.0, 10.0], id="a+bxn"),
        pytest.param(" 1-2x4", [1.0, -1.0, -3.0, -5.0, -7.0], id="a-bxn"),
        pytest.param(" 1x4", [1.0] * 5, id="axn-is-n-plus-one-values"),
        pytest.param(" 1 _x3 stale", [1.0, _, _, _, Gap.STALE], id="_xn-is-n-values"),
        # The example and the rest of the notation.
        pytest.param("20x4 60x6", [20.0] * 5 + [60.0] * 7, id="issue-example"),
        pytest.param("1+1x0", [1.0], id="x0-is-one-value"),
        pytest.param("1.5e2 .5 -0.25", [150.0, 0.5, -0.25], id="plain-numbers"),
        pytest.param("1e-3+1e-3x1", [0.001, 0.002], id="exponents"),
        pytest.param("_", [_], id="one-missing"),
        pytest.param("", [], id="empty"),
        pytest.param("3\t4\n5", [3.0, 4.0, 5.0], id="any-whitespace"),
    ],
)
def test_expanding_notation_gives_one_value_per_evaluation(text: str, values: list[object]) -> None:
    assert expand(text) == values


def test_special_floats_are_values_the_reconciler_will_refuse() -> None:
    nan, inf, minus_inf, plus_inf, infs = expand("NaN Inf -Inf +Inf Infx1")[:5]
    assert isinstance(nan, float) and math.isnan(nan)
    assert (inf, minus_inf, plus_inf, infs) == (math.inf, -math.inf, math.inf, math.inf)
    assert expand("Infx2") == [math.inf] * 3  # no Inf + 0 * Inf = NaN


def test_inf_and_nan_are_read_in_any_case_as_promtool_reads_them() -> None:
    # promtool's lexer folds them (`inf`, `NAN`); before, only `Inf` and `NaN` were read.
    values = expand("inf -inf +INF iNf 1+infx1 infx1")
    assert values == [math.inf, -math.inf, math.inf, math.inf, 1.0, math.inf, math.inf, math.inf]
    assert all(isinstance(v, float) and math.isnan(v) for v in expand("nan NAN -nan +NaN"))
    with pytest.raises(SeriesError, match="item 1 'Infinity'"):  # promtool refuses it too
        expand("Infinity")


@pytest.mark.parametrize(
    ("text", "values"),
    [
        pytest.param("1-Infx1", [1.0, -math.inf], id="infinite-increment-starts-at-a"),
        pytest.param("1+Infx2", [1.0, math.inf, math.inf], id="plus-inf"),
        pytest.param(
            "0.1+0.1x9",
            [
                *(0.1, 0.2, 0.30000000000000004, 0.4, 0.5, 0.6, 0.7),
                *(0.7999999999999999, 0.8999999999999999, 0.9999999999999999),
            ],
            id="rounding-as-promtool-sums",
        ),
    ],
)
def test_an_expanding_item_adds_its_increment_to_the_value_before_as_promtool(
    text: str, values: list[float]
) -> None:
    # promtool (promql's series_item) appends `a`, then `a += b` n times. Before, `a + i * b`:
    # `1-Infx1` was [NaN, -Inf] (0 * Inf is NaN), and the rounding differed from promtool's.
    assert expand(text) == values


@pytest.mark.parametrize(
    ("text", "item", "bad"),
    [
        pytest.param("1 2 x3", 3, "x3", id="detached-x"),
        pytest.param("1x", 1, "1x", id="x-without-count"),
        pytest.param("20 6O", 2, "6O", id="letter-o-for-zero"),
        pytest.param("1+x3", 1, "1+x3", id="increment-missing"),
        pytest.param("stalex2", 1, "stalex2", id="stale-does-not-repeat"),
        pytest.param("1,2", 1, "1,2", id="commas"),
        pytest.param("_+1x2", 1, "_+1x2", id="missing-cannot-increment"),
    ],
)
def test_a_bad_item_is_named_with_its_position(text: str, item: int, bad: str) -> None:
    with pytest.raises(SeriesError) as raised:
        expand(text)
    assert (raised.value.item, raised.value.text) == (item, bad)
    assert f"item {item} {bad!r}" in str(raised.value) and "'a+bxn'" in str(raised.value)


def test_a_runaway_expansion_is_refused_before_it_fills_the_memory() -> None:
    with pytest.raises(SeriesError, match="exceeds"):
        expand(f"1x{MAX_VALUES + 1}")
    with pytest.raises(SeriesError, match="exceeds"):
        expand(f"1x{MAX_VALUES // 2} 2x{MAX_VALUES // 2}")


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="0123456789.+-xe_ NaInfstale", max_size=30))
def test_any_text_expands_or_names_its_bad_item(text: str) -> None:
    items = text.split()
    bad: SeriesError | None = None
    try:
        values = expand(text)
    except SeriesError as error:
        bad, values = error, []
    assert all(isinstance(v, float | Gap) for v in values)
    if bad is not None:
        assert 1 <= bad.item <= len(items) and items[bad.item - 1] == bad.text
