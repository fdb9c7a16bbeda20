"""The forecast's noise band (`forecast.noise_band`): a scale-out within the forecast's
recent error above the current count waits; nothing else changes."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.core.decision import decide
from autoscaler.core.model import (
    Action,
    AsgTarget,
    Check,
    Cooldown,
    ForecastReading,
    ForecastSettings,
    Memory,
    Observation,
    Policy,
    Stabilization,
    Strategy,
    TargetStatus,
)
from autoscaler.core.noise import band, carried, within_noise
from autoscaler.core.strategies import desired

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ZERO = timedelta(0)
LEAD = timedelta(seconds=135)
LOAD = Check(
    name="load",
    strategy=Strategy.PER_INSTANCE,
    query="sum(rate(requests[1m]))",
    target=10.0,
    tolerance=0.05,
    forecast=ForecastSettings(noise_band=0.25),
)


def reading(
    value: float | None = 50.0, error: float | None = 0.2, **fields: Any
) -> ForecastReading:
    return ForecastReading(value=value, lead=LEAD, error=error, **fields)


def ask(check: Check, value: float, current: int, forecast: ForecastReading | None) -> int:
    return within_noise(check, value, current, forecast, desired(check, value, current)).count


# --- the pure rule -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(55.0, 5, id="10 % above: within the noise"),
        pytest.param(60.0, 5, id="20 % above: at the band's edge, within"),
        pytest.param(61.0, 7, id="22 % above: past the noise, scale out"),
        pytest.param(120.0, 12, id="far above: scale out to what the value needs"),
    ],
)
def test_a_scale_out_waits_only_while_within_the_recent_error(value: float, expected: int) -> None:
    assert ask(LOAD, value, 5, reading(error=0.2)) == expected


def test_the_band_is_at_most_noise_band() -> None:
    # recent error 40 %, band capped at 25 %: 30 % above the current count scales out
    assert band(LOAD, reading(error=0.4)) == 0.25
    assert ask(LOAD, 65.0, 5, reading(error=0.4)) == 7
    assert ask(LOAD, 62.0, 5, reading(error=0.4)) == 5


@pytest.mark.parametrize(
    ("check", "forecast"),
    [
        pytest.param(replace(LOAD, forecast=ForecastSettings()), reading(), id="noise_band 0"),
        pytest.param(replace(LOAD, forecast=None), reading(), id="no forecast settings"),
        pytest.param(LOAD, None, id="no reading"),
        pytest.param(LOAD, reading(value=None, error=None, reason="too little"), id="none yet"),
        pytest.param(LOAD, reading(error=None), id="error unknown"),
        pytest.param(LOAD, reading(error=math.nan), id="error NaN"),
        pytest.param(LOAD, reading(value=math.inf), id="forecast not finite"),
        pytest.param(LOAD, reading(only=True), id="forecast only"),
        pytest.param(LOAD, reading(error=0.03), id="error below the tolerance"),
    ],
)
def test_without_a_usable_forecast_the_tolerance_alone_applies(
    check: Check, forecast: ForecastReading | None
) -> None:
    assert band(check, forecast) is None
    assert ask(check, 55.0, 5, forecast) == 6  # 10 % above, outside the 5 % tolerance


def test_a_scale_in_is_untouched() -> None:
    assert ask(LOAD, 20.0, 5, reading(error=0.25)) == 2


def test_from_zero_there_is_nothing_to_compare_with() -> None:
    assert ask(LOAD, 3.0, 0, reading(error=0.25)) == 1


def test_a_pass_through_check_compares_with_the_current_count() -> None:
    check = Check(
        name="workers",
        strategy=Strategy.PASS_THROUGH,
        query="queue_depth_workers",
        forecast=ForecastSettings(noise_band=0.25),
    )
    assert ask(check, 11.0, 10, reading(error=0.2)) == 10
    assert ask(check, 13.0, 10, reading(error=0.2)) == 13


@given(
    value=st.floats(min_value=0, max_value=1e6),
    current=st.integers(min_value=0, max_value=10_000),
    error=st.floats(allow_nan=True, allow_infinity=True),
    noise_band=st.floats(min_value=0, max_value=0.99),
)
def test_the_band_never_asks_for_less_than_the_current_count_nor_more_than_the_strategy(
    value: float, current: int, error: float, noise_band: float
) -> None:
    check = replace(LOAD, forecast=ForecastSettings(noise_band=noise_band))
    plain = desired(check, value, current).count
    banded = ask(check, value, current, reading(error=error))
    assert banded <= plain
    assert banded >= min(plain, current)
    assert banded in (plain, current)


# --- through the decision ------------------------------------------------------------------


def make_policy(check: Check = LOAD) -> Policy:
    return Policy(
        name="web",
        target=AsgTarget(asg="web"),
        min=1,
        max=100,
        checks=(check,),
        cooldown=Cooldown(up=ZERO, down=ZERO),
        stabilization=Stabilization(up=ZERO, down=ZERO),
    )


def test_the_decision_holds_within_the_noise_and_says_why() -> None:
    observation = Observation(check="load", value=57.0, forecast=reading(value=50.0, error=0.2))
    outcome = decide(
        make_policy(),
        status=TargetStatus(count=5),
        observations=[observation],
        memory=Memory(),
        now=NOW,
    )
    decision = outcome.decision
    assert (decision.desired, decision.action) == (5, Action.NONE)
    assert decision.checks[0].desired == 5
    assert decision.reasons == (
        "load: forecast 50 in 2m15s (recent error 20 %), not above the observed 57",
        "load: 57 is 14 % above what 5 carry, within the forecast's noise band of 20 % "
        "(recent error 20 %, at most 25 %) → 5 instead of 6",
    )


def test_the_decision_acts_on_a_forecast_past_the_noise() -> None:
    observation = Observation(check="load", value=50.0, forecast=reading(value=90.0, error=0.2))
    outcome = decide(
        make_policy(),
        status=TargetStatus(count=5),
        observations=[observation],
        memory=Memory(),
        now=NOW,
    )
    assert (outcome.decision.desired, outcome.decision.action) == (9, Action.UP)


def test_only_count_independent_strategies_with_a_target_have_a_band() -> None:
    latency = Check(name="p95", strategy=Strategy.TARGET_VALUE, query="p95", target=0.2)
    assert (
        ask(replace(latency, forecast=ForecastSettings(noise_band=0.25)), 0.22, 5, reading()) == 6
    )
    assert carried(replace(LOAD, target=None), 5) is None
