"""The decision core's extensions of issue 11: forecasts, the anomaly guard, scaling up a
target that is launching instances, the cooldown of a metric that keeps rising, and the
per-instance dead band."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from autoscaler.core.decision import decide, without_target
from autoscaler.core.model import (
    Action,
    AnomalyGuard,
    AnomalyReading,
    AsgTarget,
    Change,
    Check,
    Cooldown,
    ForecastReading,
    ForecastSettings,
    Limits,
    Memory,
    Observation,
    Policy,
    Recommendation,
    Stabilization,
    Step,
    StepLimit,
    Strategy,
    TargetStatus,
)
from autoscaler.core.run import Outcome

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ZERO = timedelta(0)
LEAD = timedelta(seconds=150)
LOAD = Check(
    name="load",
    strategy=Strategy.PER_INSTANCE,
    query="sum(rate(requests[1m]))",
    target=10.0,
    forecast=ForecastSettings(),
)
LATENCY = Check(
    name="latency", strategy=Strategy.TARGET_VALUE, query="p95", target=0.2, tolerance=0.0
)


def make_policy(*checks: Check, **overrides: Any) -> Policy:
    fields: dict[str, Any] = {
        "name": "web",
        "target": AsgTarget(asg="web"),
        "min": 1,
        "max": 100,
        "checks": checks or (LOAD,),
        "cooldown": Cooldown(up=ZERO, down=ZERO),
        "stabilization": Stabilization(up=ZERO, down=ZERO),
    }
    fields.update(overrides)
    return Policy(**fields)


def run(
    policy: Policy,
    *observations: Observation,
    current: int = 5,
    memory: Memory | None = None,
    status: TargetStatus | None = None,
) -> Outcome:
    return decide(
        policy,
        status=status or TargetStatus(count=current),
        observations=observations,
        memory=memory or Memory(),
        now=NOW,
    )


def forecast(value: float | None, **fields: Any) -> ForecastReading:
    fields.setdefault("error", 0.12 if value is not None else None)
    return ForecastReading(value=value, lead=LEAD, **fields)


# --- forecasts -----------------------------------------------------------------------------


def test_a_forecast_above_the_observed_value_is_acted_on_and_explained() -> None:
    outcome = run(make_policy(), Observation(check="load", value=50.0, forecast=forecast(83.0)))
    decision = outcome.decision
    assert (decision.desired, decision.action) == (9, Action.UP)
    assert decision.reasons[:2] == (
        "load: forecast 83 in 2m30s (recent error 12 %) above the observed 50: acting on it",
        "load: 83 / 10 per instance → 9",
    )
    assert decision.checks[0].value == 50.0
    assert decision.checks[0].forecast == forecast(83.0)


def test_a_forecast_below_the_observed_value_never_scales_in() -> None:
    outcome = run(make_policy(), Observation(check="load", value=50.0, forecast=forecast(12.0)))
    assert (outcome.decision.desired, outcome.decision.action) == (5, Action.NONE)
    assert outcome.decision.reasons[0] == (
        "load: forecast 12 in 2m30s (recent error 12 %), not above the observed 50"
    )


@pytest.mark.parametrize(
    ("observed", "ahead", "shown"),
    [
        pytest.param(50.0001, 50.0002, "forecast 50.0002 in 2m30s (recent error 12 %) above "
                     "the observed 50.0001", id="a-hair-apart"),
        pytest.param(168.468, 168.52547, "forecast 168.53 in 2m30s (recent error 12 %) above "
                     "the observed 168.47", id="both-round-to-168.5"),
    ],
)  # fmt: skip
def test_a_forecast_a_hair_above_the_observed_value_shows_the_digits_that_decide(
    observed: float, ahead: float, shown: str
) -> None:
    """At four digits both would read the same: `forecast 50 above the observed 50`."""
    outcome = run(
        make_policy(), Observation(check="load", value=observed, forecast=forecast(ahead))
    )
    assert outcome.decision.reasons[0] == f"load: {shown}: acting on it"


@given(
    observed=st.floats(min_value=0, max_value=1e6),
    predicted=st.floats(min_value=-1e6, max_value=1e6),
    current=st.integers(min_value=1, max_value=1000),
)
def test_with_a_forecast_the_check_never_asks_for_less_than_without(
    observed: float, predicted: float, current: int
) -> None:
    policy = make_policy(max=1_000_000)
    plain = run(policy, Observation(check="load", value=observed), current=current)
    ahead = Observation(check="load", value=observed, forecast=forecast(predicted))
    with_forecast = run(policy, ahead, current=current)
    assert with_forecast.decision.checks[0].desired is not None
    assert plain.decision.checks[0].desired is not None
    assert with_forecast.decision.checks[0].desired >= plain.decision.checks[0].desired


@given(
    observed=st.floats(min_value=0, max_value=1e6),
    predicted=st.floats(allow_nan=True, allow_infinity=True),
    current=st.integers(min_value=1, max_value=1000),
)
@example(observed=50.0, predicted=math.inf, current=5)
@example(observed=50.0, predicted=math.nan, current=5)
@example(observed=50.0, predicted=1e300, current=5)
def test_any_forecast_even_not_finite_never_fails_the_check_nor_asks_for_less(
    observed: float, predicted: float, current: int
) -> None:
    """A forecast is an addition to a good observation: whatever it says (NaN, ±inf from a
    model that overflowed), the check keeps the count its observed value asks for, at
    least. An infinite forecast had failed the check, which then held a needed scale-up."""
    policy = make_policy(max=1_000_000)
    plain = run(policy, Observation(check="load", value=observed), current=current)
    ahead = Observation(check="load", value=observed, forecast=forecast(predicted))
    with_forecast = run(policy, ahead, current=current)
    checked = with_forecast.decision.checks[0]
    assert checked.error is None
    assert checked.desired is not None
    assert plain.decision.checks[0].desired is not None
    assert checked.desired >= plain.decision.checks[0].desired
    assert with_forecast.decision.desired is not None
    assert plain.decision.desired is not None
    assert with_forecast.decision.desired >= plain.decision.desired


def test_forecast_only_is_shown_but_not_acted_on() -> None:
    outcome = run(
        make_policy(), Observation(check="load", value=50.0, forecast=forecast(83.0, only=True))
    )
    assert outcome.decision.desired == 5
    assert outcome.decision.reasons[0] == (
        "load: forecast 83 in 2m30s (recent error 12 %), forecast only: not acted on"
    )


def test_without_a_usable_forecast_the_check_is_reactive_and_says_why() -> None:
    reading = forecast(None, reason="history of 3h is shorter than the 1d needed")
    outcome = run(make_policy(), Observation(check="load", value=83.0, forecast=reading))
    assert outcome.decision.desired == 9
    assert outcome.decision.reasons[0] == (
        "load: no forecast (history of 3h is shorter than the 1d needed): reactive"
    )


def test_a_failed_check_keeps_its_forecast_for_reports() -> None:
    observation = Observation(check="load", error="no series", forecast=forecast(83.0))
    outcome = run(make_policy(), observation)
    assert outcome.decision.action is Action.HOLD
    assert outcome.decision.checks[0].forecast == forecast(83.0)


def test_a_preview_without_the_target_shows_the_forecast_and_acts_on_it() -> None:
    """`plan` for a target it cannot read: the checks still run, forecasts included; the
    guard, whose cap is relative to the unknown current count, only shows its reading."""
    policy = make_policy(anomaly=GUARD)
    observation = Observation(
        check="load", value=50.0, forecast=forecast(83.0), anomaly=implausible(9.0)
    )
    decision = without_target(
        policy, observations=[observation], now=NOW, reason="target unreadable: AccessDenied"
    )
    assert (decision.current, decision.desired, decision.action) == (None, None, Action.HOLD)
    assert decision.reasons[:3] == (
        "target unreadable: AccessDenied",
        "load: forecast 83 in 2m30s (recent error 12 %) above the observed 50: acting on it",
        "load: 83 / 10 per instance → 9",
    )
    (check,) = decision.checks
    assert (check.value, check.desired, check.error) == (50.0, 9, None)
    assert check.forecast == forecast(83.0)
    assert check.anomaly == implausible(9.0)


# --- the anomaly guard ---------------------------------------------------------------------

GUARD = AnomalyGuard(confirm=2, large_percent=50.0)


def implausible(z: float, *, high: float = 60.0, streak: int = 1) -> AnomalyReading:
    return AnomalyReading(z=z, low=40.0, high=high, implausible=True, streak=streak, samples=60)


def test_an_implausibly_low_value_never_scales_in() -> None:
    reading = implausible(-9.0)
    outcome = run(
        make_policy(replace(LOAD, forecast=None), anomaly=GUARD),
        Observation(check="load", value=1.0, anomaly=reading),
        current=5,
    )
    assert (outcome.decision.desired, outcome.decision.action) == (5, Action.NONE)
    assert "an implausible value blocks scale-down: 5 instead of 1" in outcome.decision.reasons


def test_a_large_scale_out_on_an_implausible_value_waits_for_confirmation() -> None:
    policy = make_policy(replace(LOAD, forecast=None), anomaly=GUARD)
    first = run(policy, Observation(check="load", value=400.0, anomaly=implausible(12.0)))
    assert first.decision.desired == 6  # what the largest plausible value, 60, needs
    assert first.decision.reasons[-1] == (
        "load: 400 is implausible against its last 30m (robust z +12.0, plausible 40 to 60): "
        "a scale-out of more than 50 % needs 2 such evaluations in a row (1 so far) → 6 "
        "instead of 40"
    )
    confirmed = run(
        policy, Observation(check="load", value=400.0, anomaly=implausible(12.0, streak=2))
    )
    assert (confirmed.decision.desired, confirmed.decision.action) == (40, Action.UP)
    assert "scale-out confirmed → 40" in confirmed.decision.reasons[-1]


def test_a_large_scale_out_on_an_implausibly_low_value_waits_for_confirmation_too() -> None:
    # An inverse metric (free capacity, a success ratio): a glitch to 0 asks for +100 %.
    # The cap took min(value, high), still 0, so the scale-out went through at once.
    steps = (Step(change=Change(amount=100, percent=True), below=20.0),)
    spare = Check(name="load", strategy=Strategy.THRESHOLD, query="spare", steps=steps)
    policy = make_policy(spare, anomaly=GUARD)
    first = run(policy, Observation(check="load", value=0.0, anomaly=implausible(-9.0)), current=10)
    assert (first.decision.desired, first.decision.action) == (10, Action.NONE)
    assert first.decision.reasons[-1].endswith("(1 so far) → 10 instead of 20")
    confirmed = run(
        policy,
        Observation(check="load", value=0.0, anomaly=implausible(-9.0, streak=2)),
        current=10,
    )
    assert (confirmed.decision.desired, confirmed.decision.action) == (20, Action.UP)


def test_lowered_bounds_held_by_an_implausible_value_say_so_not_that_a_check_failed() -> None:
    # Hand-scaled to 30 above max 10, every check answered, one value implausible: the
    # scale-in waits, and the reason said "a check failed" (none had) "until every check
    # has data" (every one had).
    policy = make_policy(replace(LOAD, forecast=None), anomaly=GUARD, max=10)
    outcome = run(
        policy, Observation(check="load", value=1.0, anomaly=implausible(-9.0)), current=30
    )
    assert (outcome.decision.desired, outcome.decision.action) == (30, Action.NONE)
    assert outcome.decision.reasons[-1] == (
        "bounds allow 10, but a check's value is implausible: staying at 30 until every "
        "value is plausible"
    )
    assert not any("failed" in reason for reason in outcome.decision.reasons)


def test_lowered_bounds_held_by_a_failed_check_and_an_implausible_value_name_both() -> None:
    policy = make_policy(replace(LOAD, forecast=None), LATENCY, anomaly=GUARD, max=10)
    outcome = run(
        policy,
        Observation(check="load", value=1.0, anomaly=implausible(-9.0)),
        Observation(check="latency", error="timeout"),
        current=30,
    )
    assert (outcome.decision.desired, outcome.decision.action) == (30, Action.NONE)
    assert outcome.decision.reasons[-1] == (
        "bounds allow 10, but a check failed and a check's value is implausible: staying "
        "at 30 until every check has data and every value is plausible"
    )


def test_a_small_scale_out_on_an_implausible_value_needs_no_confirmation() -> None:
    policy = make_policy(replace(LOAD, forecast=None), anomaly=GUARD)
    outcome = run(policy, Observation(check="load", value=70.0, anomaly=implausible(6.0)))
    assert (outcome.decision.desired, outcome.decision.action) == (7, Action.UP)


def test_the_guard_is_ignored_when_the_policy_has_none() -> None:
    outcome = run(
        make_policy(replace(LOAD, forecast=None)),
        Observation(check="load", value=400.0, anomaly=implausible(12.0)),
    )
    assert outcome.decision.desired == 40
    assert outcome.decision.checks[0].anomaly is None


# --- a target launching instances ----------------------------------------------------------

LAUNCHING = TargetStatus(
    count=5,
    ready=False,
    not_ready_reason="scaling activity a-1 is InProgress: Launching a new EC2 instance",
    scale_up_allowed=True,
)


def test_a_target_launching_instances_is_scaled_further_up() -> None:
    outcome = run(
        make_policy(replace(LOAD, forecast=None)),
        Observation(check="load", value=90.0),
        status=LAUNCHING,
    )
    assert (outcome.decision.desired, outcome.decision.action) == (9, Action.UP)
    assert outcome.decision.reasons[:2] == (
        "scaling activity a-1 is InProgress: Launching a new EC2 instance",
        "it is launching instances: a scale-up may go ahead, a scale-down waits",
    )


def test_a_target_launching_instances_is_not_scaled_down() -> None:
    outcome = run(
        make_policy(replace(LOAD, forecast=None)),
        Observation(check="load", value=20.0),
        status=LAUNCHING,
    )
    assert (outcome.decision.desired, outcome.decision.action) == (2, Action.HOLD)
    assert outcome.decision.reasons[-1] == "scale-down waits until the target is ready → hold"


def test_a_busy_target_that_is_not_launching_holds_before_any_check() -> None:
    status = replace(LAUNCHING, scale_up_allowed=False, not_ready_reason="instance refresh")
    outcome = run(make_policy(replace(LOAD, forecast=None)), status=status)
    assert outcome.decision.action is Action.HOLD
    assert outcome.decision.reasons == ("instance refresh",)


# --- the cooldown of a metric that keeps rising --------------------------------------------

SCALED = NOW - timedelta(seconds=30)


def rising_policy(*checks: Check, **overrides: Any) -> Policy:
    return make_policy(
        *(checks or (replace(LOAD, forecast=None),)),
        cooldown=Cooldown(up=timedelta(minutes=3), down=timedelta(minutes=5)),
        stabilization=Stabilization(up=ZERO, down=timedelta(minutes=5)),
        **overrides,
    )


def after_scale_up(count: int) -> Memory:
    """The memory right after a scale-up decided 30 s ago on a recommendation of `count`."""
    return Memory(last_scaled_at=SCALED, recommendations=(Recommendation(at=SCALED, count=count),))


def test_a_per_instance_check_that_keeps_rising_skips_the_cooldown_up() -> None:
    outcome = run(rising_policy(), Observation(check="load", value=90.0), memory=after_scale_up(6))
    assert (outcome.decision.desired, outcome.decision.action) == (9, Action.UP)
    assert outcome.decision.reasons[-1] == (
        "cooldown up: 2 min 30 s left, but load keeps rising (asks 9, above the 6 recommended "
        "since the last scaling action): not delayed"
    )


def test_a_metric_rising_after_our_scale_down_is_not_said_to_follow_a_scale_up() -> None:
    # The last action was a scale-down (8 → 4, 30 s ago): the cooldown up runs from it too,
    # and the reason claimed "since the last scale-up", which never happened.
    memory = Memory(last_scaled_at=SCALED, recommendations=(Recommendation(at=SCALED, count=4),))
    outcome = run(rising_policy(), Observation(check="load", value=90.0), current=4, memory=memory)
    assert (outcome.decision.desired, outcome.decision.action) == (9, Action.UP)
    assert outcome.decision.reasons[-1] == (
        "cooldown up: 2 min 30 s left, but load keeps rising (asks 9, above the 4 recommended "
        "since the last scaling action): not delayed"
    )


def test_a_scale_up_on_a_metric_that_does_not_rise_further_waits_for_the_cooldown() -> None:
    # The limit took 9 to 6 last time; asking 9 again is not rising, so it waits.
    policy = rising_policy(limits=Limits(up=StepLimit(count=1)))
    outcome = run(
        policy, Observation(check="load", value=90.0), current=6, memory=after_scale_up(9)
    )
    assert (outcome.decision.desired, outcome.decision.action) == (7, Action.HOLD)
    assert outcome.decision.reasons[-1] == "cooldown up: 2 min 30 s left → hold"


def test_a_count_relative_check_never_skips_the_cooldown_up() -> None:
    outcome = run(
        rising_policy(LATENCY), Observation(check="latency", value=0.5), memory=after_scale_up(6)
    )
    assert outcome.decision.action is Action.HOLD
    assert outcome.decision.reasons[-1] == "cooldown up: 2 min 30 s left → hold"


def test_someone_elses_scaling_since_ours_keeps_the_cooldown() -> None:
    status = TargetStatus(count=5, last_scaled_at=NOW - timedelta(seconds=5))
    memory = replace(after_scale_up(6), last_scaled_at=NOW - timedelta(minutes=2))
    memory = replace(
        memory, recommendations=(Recommendation(at=NOW - timedelta(minutes=2), count=6),)
    )
    outcome = run(
        rising_policy(), Observation(check="load", value=90.0), memory=memory, status=status
    )
    assert outcome.decision.action is Action.HOLD


# --- per-instance tolerance ----------------------------------------------------------------


def test_per_instance_holds_within_its_tolerance() -> None:
    check = replace(LOAD, forecast=None, tolerance=0.1)
    inside = run(make_policy(check), Observation(check="load", value=54.0))
    assert (inside.decision.desired, inside.decision.action) == (5, Action.NONE)
    assert inside.decision.reasons[0] == "load: 54 / 10 per instance within tolerance ±10% → 5"
    outside = run(make_policy(check), Observation(check="load", value=56.0))
    assert outside.decision.desired == 6
