"""Each strategy: value and current count -> desired count, with a reason that shows why."""

from __future__ import annotations

import math
import sys

import pytest

from autoscaler.core.model import Change, Check, Step, Strategy
from autoscaler.core.strategies import StrategyResult, apply_change, desired


def target_value(target: float, tolerance: float = 0.0) -> Check:
    return Check(
        name="p95-latency",
        strategy=Strategy.TARGET_VALUE,
        query="q",
        target=target,
        tolerance=tolerance,
    )


def per_instance(target: float) -> Check:
    return Check(name="open", strategy=Strategy.PER_INSTANCE, query="q", target=target)


def threshold(*steps: Step) -> Check:
    return Check(name="error-ratio", strategy=Strategy.THRESHOLD, query="q", steps=steps)


def step(change: str, above: float | None = None, below: float | None = None) -> Step:
    sign = -1 if change.startswith("-") else 1
    number = change.lstrip("+-").rstrip("%")
    parsed = Change(amount=sign * float(number), percent=change.endswith("%"))
    return Step(change=parsed, above=above, below=below)


ERROR_STEPS = (step("+2", above=0.05), step("-1", below=0.01))


@pytest.mark.parametrize(
    ("check", "value", "current", "count", "reason"),
    [
        pytest.param(
            target_value(0.25), 0.41, 5, 9, "p95-latency: 0.41 / 0.25 → 9", id="scales-up"
        ),
        pytest.param(target_value(0.25), 0.1, 10, 4, "0.1 / 0.25 → 4", id="scales-down"),
        pytest.param(
            target_value(0.25, 0.1),
            0.26,
            5,
            5,
            "p95-latency: 0.26 / 0.25 within tolerance ±10% → 5",
            id="within-tolerance",
        ),
        pytest.param(
            target_value(0.25, 0.1),
            0.275,
            5,
            5,
            "within tolerance",
            id="tolerance-edge-despite-float-noise",
        ),
        pytest.param(target_value(0.25, 0.1), 0.3, 5, 6, "0.3 / 0.25 → 6", id="past-tolerance"),
        pytest.param(target_value(0.25, 0.1), 0.41, 0, 2, "0.41 / 0.25 from 0 → 2", id="from-zero"),
        pytest.param(target_value(0.25), 0.0, 0, 0, "from 0 → 0", id="from-zero-stays-zero"),
        pytest.param(target_value(1.0), 1.1, 10, 11, "→ 11", id="float-noise-no-extra"),
        pytest.param(target_value(1.0), 0.0, 5, 0, "0 / 1 → 0", id="zero-value"),
        pytest.param(target_value(1.0), -3.0, 5, 0, "-3 / 1 → 0", id="negative-value"),
    ],
)
def test_target_value(check: Check, value: float, current: int, count: int, reason: str) -> None:
    result = desired(check, value, current)
    assert result.count == count
    assert reason in result.reason


@pytest.mark.parametrize(
    ("value", "target", "count"),
    [
        pytest.param(420.0, 50.0, 9, id="rounds-up"),
        pytest.param(400.0, 50.0, 8, id="exact"),
        pytest.param(0.3, 0.1, 3, id="float-noise-no-extra"),
        pytest.param(0.0, 50.0, 0, id="zero"),
        pytest.param(-10.0, 50.0, 0, id="negative-is-zero"),
    ],
)
def test_per_instance(value: float, target: float, count: int) -> None:
    result = desired(per_instance(target), value, current=3)
    assert result.count == count
    assert result.reason.endswith(f"per instance → {count}")


@pytest.mark.parametrize(
    ("steps", "value", "current", "count", "reason"),
    [
        pytest.param(ERROR_STEPS, 0.07, 5, 7, "error-ratio: 0.07 > 0.05: +2 → 7", id="above-adds"),
        pytest.param(ERROR_STEPS, 0.005, 5, 4, "0.005 < 0.01: -1 → 4", id="below-removes"),
        pytest.param(
            ERROR_STEPS, 0.03, 5, 5, "error-ratio: 0.03 no step matched → 5", id="no-match"
        ),
        pytest.param(ERROR_STEPS, 0.05, 5, 5, "no step matched", id="equal-is-not-above"),
        pytest.param(ERROR_STEPS, 0.005, 0, 0, "-1 → 0", id="never-below-zero"),
        pytest.param(
            (step("+1", above=1), step("+5", above=10)), 20.0, 5, 6, "> 1: +1", id="first-wins"
        ),
        pytest.param(
            (step("+3", above=1, below=10),), 5.0, 5, 8, "> 1 and < 10: +3", id="range-inside"
        ),
        pytest.param((step("+3", above=1, below=10),), 10.0, 5, 5, "no step", id="range-out"),
        pytest.param((step("+50%", above=0),), 1.0, 3, 5, "+50% → 5", id="percent-up-rounds-up"),
        pytest.param((step("-10%", above=0),), 1.0, 3, 2, "-10% → 2", id="percent-down-ceil"),
        pytest.param((step("-100%", above=0),), 1.0, 7, 0, "-100% → 0", id="percent-to-zero"),
        pytest.param((step("+10%", above=0),), 1.0, 0, 0, "+10% → 0", id="percent-of-zero"),
    ],
)
def test_threshold(
    steps: tuple[Step, ...], value: float, current: int, count: int, reason: str
) -> None:
    result = desired(threshold(*steps), value, current)
    assert result.count == count
    assert reason in result.reason


def test_fixed_ignores_value() -> None:
    check = Check(name="sales-floor", strategy=Strategy.FIXED, count=6)
    assert desired(check, None, current=2) == StrategyResult(6, "sales-floor: fixed → 6")
    assert desired(check, 100.0, current=2).count == 6


@pytest.mark.parametrize(
    ("value", "count"),
    [
        pytest.param(7.2, 8, id="rounds-up"),
        pytest.param(7.0, 7, id="whole"),
        pytest.param(7.0000000001, 7, id="float-noise"),
        pytest.param(0.0, 0, id="zero"),
        pytest.param(-3.0, 0, id="negative-is-zero"),
    ],
)
def test_pass_through(value: float, count: int) -> None:
    check = Check(name="forecast", strategy=Strategy.PASS_THROUGH, query="q")
    result = desired(check, value, current=4)
    assert result.count == count
    assert result.reason.startswith("forecast: ")
    assert result.reason.endswith(f"→ {count}")


@pytest.mark.parametrize(
    ("change", "current", "expected"),
    [
        pytest.param(Change(amount=2), 5, 7, id="plus"),
        pytest.param(Change(amount=-2), 5, 3, id="minus"),
        pytest.param(Change(amount=-9), 5, 0, id="minus-floors-at-zero"),
        pytest.param(Change(amount=50, percent=True), 5, 8, id="plus-percent-ceil"),
        pytest.param(Change(amount=-50, percent=True), 5, 2, id="minus-percent-ceil"),
        pytest.param(Change(amount=-10, percent=True), 1, 0, id="small-percent-still-moves"),
        pytest.param(Change(amount=10, percent=True), 10, 11, id="exact-percent"),
    ],
)
def test_apply_change(change: Change, current: int, expected: int) -> None:
    assert apply_change(change, current) == expected


@pytest.mark.parametrize(
    ("check", "value"),
    [
        pytest.param(target_value(0.25), None, id="missing-value"),
        pytest.param(target_value(0.25), math.nan, id="nan"),
        pytest.param(per_instance(50), math.inf, id="inf"),
        pytest.param(target_value(0.0), 1.0, id="zero-target"),
        pytest.param(
            Check(name="x", strategy=Strategy.PER_INSTANCE, query="q"), 1.0, id="no-target"
        ),
        pytest.param(Check(name="x", strategy=Strategy.FIXED), None, id="fixed-without-count"),
    ],
)
def test_unusable_input_raises_value_error(check: Check, value: float | None) -> None:
    with pytest.raises(ValueError, match="needs"):
        desired(check, value, current=3)


def test_without_the_current_count_only_strategies_that_need_it_refuse() -> None:
    assert desired(per_instance(10), 73.0, None).count == 8
    assert desired(Check(name="f", strategy=Strategy.FIXED, count=3), None, None).count == 3
    with pytest.raises(ValueError, match="needs the current count"):
        desired(target_value(0.25), 0.5, None)
    with pytest.raises(ValueError, match="needs the current count"):
        desired(threshold(*ERROR_STEPS), 0.1, None)


@pytest.mark.parametrize(
    ("check", "value", "current", "reason"),
    [
        pytest.param(
            target_value(0.25, 0.1),
            0.27501,
            5,
            "p95-latency: 0.27501 / 0.25 → 6",
            id="just-past-the-tolerance-is-not-shown-as-its-edge",
        ),
        pytest.param(
            target_value(0.6), 1.0003141422013955, 30, "1.0003 / 0.6 → 51", id="target-value"
        ),
        pytest.param(
            per_instance(40),
            200.04004926954494,
            7,
            "open: 200.04 / 40 per instance → 6",
            id="per-instance-a-hair-above-a-whole-count",
        ),
        pytest.param(
            threshold(*ERROR_STEPS),
            0.0500001,
            5,
            "error-ratio: 0.0500001 > 0.05: +2 → 7",
            id="threshold-a-hair-above-the-step",
        ),
        pytest.param(
            threshold(*ERROR_STEPS),
            0.0099999,
            5,
            "error-ratio: 0.0099999 < 0.01: -1 → 4",
            id="threshold-a-hair-below-the-step",
        ),
        pytest.param(
            threshold(*ERROR_STEPS),
            0.04999996,
            5,
            "error-ratio: 0.05 no step matched",
            id="threshold-a-hair-short-of-the-step-shown-short-as-0.05-matches-none-either",
        ),
        pytest.param(
            Check(name="queue", strategy=Strategy.PASS_THROUGH, query="q"),
            12.001025462704739,
            4,
            "queue: 12.001 → 13",
            id="pass-through-a-hair-above-a-whole-count",
        ),
        pytest.param(
            per_instance(40), 200.5, 7, "open: 200.5 / 40 per instance → 6", id="plain-when-clear"
        ),
    ],
)
def test_a_reason_shows_the_digits_that_decide_its_count(
    check: Check, value: float, current: int, reason: str
) -> None:
    """`0.275 / 0.25 → 6` past a ±10 % tolerance, `0.05 > 0.05`, `200 / 40 → 6` read as
    arithmetic that did not happen: the value shows as many digits as its count needs."""
    assert reason in desired(check, value, current).reason


@pytest.mark.parametrize(
    ("check", "value", "reason"),
    [
        pytest.param(
            threshold(step("-1", below=0.0100004)), 0.0100002,
            "error-ratio: 0.0100002 < 0.0100004: -1 → 4", id="a-bound-with-more-digits",
        ),
        pytest.param(
            threshold(step("+2", above=1234.56)), 1234.58,
            "error-ratio: 1234.58 > 1234.56: +2 → 7", id="a-bound-above-1000",
        ),
        pytest.param(
            Check(name="q", strategy=Strategy.PASS_THROUGH, query="q"), 123449.04,
            "q: 123449.04 → 123450", id="above-1000-written-out-not-as-an-exponent",
        ),
        pytest.param(
            per_instance(7.00004), 14.0001, "open: 14.0001 / 7.00004 per instance → 3",
            id="a-target-with-more-digits",
        ),
        pytest.param(
            Check(name="q", strategy=Strategy.PASS_THROUGH, query="q"), 1e300,
            "q: 1e+300 → 1000000", id="huge-as-an-exponent",
        ),
        pytest.param(
            target_value(0.25, 0.123456), 0.2808639, "p95-latency: 0.28086 / 0.25 within "
            "tolerance ±12.346% → 5", id="a-tolerance-with-more-digits",
        ),
    ],
)  # fmt: skip
def test_a_reasons_settings_show_the_digits_that_decide_too(
    check: Check, value: float, reason: str
) -> None:
    """`0.01 < 0.01` read as false arithmetic as well, from the setting's side."""
    assert desired(check, value, 5).reason == reason


@pytest.mark.parametrize(
    ("check", "value"),
    [
        pytest.param(
            Check(name="q", strategy=Strategy.PASS_THROUGH, query="q"), -sys.float_info.max,
            id="pass-through-at-minus-the-largest-float",
        ),
        pytest.param(target_value(sys.float_info.max), sys.float_info.max, id="target-value"),
        pytest.param(per_instance(sys.float_info.max), sys.float_info.max, id="per-instance"),
    ],
)  # fmt: skip
def test_a_reason_of_the_largest_floats_is_made_without_raising(check: Check, value: float) -> None:
    # At four digits they read back as ±inf (`1.798e+308`), on which the count's arithmetic
    # raised: when the reason was read, after the scale's cooldown had been recorded.
    reason = desired(check, value, 5).reason
    assert "e+308" in reason and "inf" not in reason


def test_a_value_that_only_its_last_digit_decides_is_shown_exactly() -> None:
    edge = 0.05
    above = math.nextafter(edge, 1.0)
    shown = desired(threshold(*ERROR_STEPS), above, 5).reason
    assert shown == f"error-ratio: {above!r} > 0.05: +2 → 7"
    assert float(shown.split()[1]) > edge
