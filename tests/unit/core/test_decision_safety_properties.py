"""The safety rules of `decide` where its features meet, over random inputs.

`test_decision_properties` draws policies, observations and memory; this file adds what
those leave out, so each rule is checked with every feature that could bend it: the
anomaly guard's readings, forecasts (finite, NaN, ±inf, forecast-only), a target that is
launching instances (a scale-up may go ahead while it is busy), and last actions dated
after now (a clock that disagrees, a state restored from another host). Each property is
one promise of the spec or the README, restated on the decision alone.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from autoscaler.core.cooldown import cooldown_left, last_action, plausible
from autoscaler.core.decision import decide
from autoscaler.core.model import (
    Action,
    AnomalyGuard,
    AnomalyReading,
    ForecastReading,
    ForecastSettings,
    MissingData,
    Observation,
    Strategy,
)
from autoscaler.core.run import Outcome
from tests.support.fuzz import fuzz_settings
from tests.unit.core.test_decision_properties import NOW, Case, cases, values

SETTINGS = fuzz_settings(ci=100)

# Last actions up to 20 minutes ago or ahead: within and beyond every drawn cooldown.
skewed = st.integers(min_value=-1200, max_value=1200).map(lambda s: NOW - timedelta(seconds=s))
readings_values = st.none() | values | st.sampled_from([math.nan, math.inf, -math.inf])


@st.composite
def forecasts(draw: st.DrawFn) -> ForecastReading:
    value = draw(readings_values)
    return ForecastReading(
        value=value,
        lead=timedelta(minutes=2),
        error=draw(st.none() | st.floats(min_value=0, max_value=1)),
        reason="too little history" if value is None else None,
        only=draw(st.booleans()),
    )


@st.composite
def anomalies(draw: st.DrawFn) -> AnomalyReading:
    low = draw(st.floats(min_value=-50, max_value=500))
    implausible = draw(st.booleans())
    return AnomalyReading(
        z=draw(st.floats(min_value=-20, max_value=20)),
        low=low,
        high=low + draw(st.floats(min_value=0, max_value=200)),
        implausible=implausible,
        streak=draw(st.integers(min_value=1, max_value=3)) if implausible else 0,
        samples=30,
    )


@st.composite
def combined(draw: st.DrawFn) -> Case:
    """A case of `test_decision_properties` with the extensions added at random."""
    case = draw(cases())
    forecasting = (Strategy.PER_INSTANCE, Strategy.PASS_THROUGH)
    policy_checks = tuple(
        replace(c, forecast=ForecastSettings())
        if c.strategy in forecasting and draw(st.booleans())
        else c
        for c in case.policy.checks
    )
    guard = draw(
        st.none()
        | st.builds(
            AnomalyGuard,
            confirm=st.integers(min_value=1, max_value=3),
            large_percent=st.sampled_from([10.0, 50.0, 200.0]),
        )
    )
    observations = tuple(
        Observation(
            check=o.check,
            value=o.value,
            error=o.error,
            forecast=draw(st.none() | forecasts()),
            anomaly=draw(st.none() | anomalies()),
        )
        for o in case.observations
    )
    status = replace(
        case.status,
        scale_up_allowed=draw(st.booleans()),
        last_scaled_at=draw(st.none() | skewed),
    )
    return Case(
        replace(case.policy, checks=policy_checks, anomaly=guard),
        status,
        observations,
        replace(case.memory, last_scaled_at=draw(st.none() | skewed)),
    )


def failed(outcome: Outcome) -> bool:
    return any(c.error is not None for c in outcome.decision.checks)


def implausible(case: Case, outcome: Outcome) -> bool:
    """A check with a value the policy's guard found implausible (the guard is on)."""
    if case.policy.anomaly is None:
        return False
    return any(
        c.error is None and c.anomaly is not None and c.anomaly.implausible
        for c in outcome.decision.checks
    )


@SETTINGS
@given(combined())
def test_missing_or_implausible_data_never_scales_in(case: Case) -> None:
    """Whatever else applies (lowered bounds, the fallback, a forecast, the windows), a
    failed check or an implausible value never removes capacity."""
    outcome = case.decide()
    if failed(outcome) or implausible(case, outcome):
        assert outcome.decision.desired is not None
        assert outcome.decision.desired >= case.status.count
        assert outcome.decision.action is not Action.DOWN


@SETTINGS
@given(combined())
def test_a_forecast_never_lowers_the_decision(case: Case) -> None:
    """A forecast (noise band off) only ever adds: without it the count is no higher."""
    outcome = case.decide()
    plain = replace(
        case, observations=tuple(replace(o, forecast=None) for o in case.observations)
    ).decide()
    assert outcome.decision.desired is not None
    assert plain.decision.desired is not None
    assert outcome.decision.desired >= plain.decision.desired


@SETTINGS
@given(combined())
def test_a_dry_run_decides_exactly_as_a_live_run(case: Case) -> None:
    """A dry-run decision is reported exactly like a real one, marked dry-run; it keeps the
    same memory, and neither starts a cooldown (only whoever applies a decision does)."""
    live = case.decide()
    dry = decide(
        case.policy,
        status=case.status,
        observations=case.observations,
        memory=case.memory,
        now=NOW,
        dry_run=True,
    )
    assert dry.decision == replace(live.decision, dry_run=True)
    assert dry.memory == live.memory
    assert dry.memory.last_scaled_at == case.memory.last_scaled_at


@SETTINGS
@given(combined())
def test_reasons_claim_only_what_happened(case: Case) -> None:
    """Every hold says why, and no reason names a cause the inputs do not have."""
    outcome = case.decide()
    decision, current = outcome.decision, case.status.count
    text = " | ".join(decision.reasons)
    assert decision.reasons
    if "a check failed" in text:
        assert failed(outcome)
    if "implausible" in text:
        assert implausible(case, outcome)
    if "fallback to at least" in text:
        assert case.policy.on_missing_data is MissingData.FALLBACK
    if "keeps rising" in text:
        assert decision.action is Action.UP
    theirs = plausible(case.status.last_scaled_at, case.policy.cooldown, NOW)
    left = cooldown_left(case.policy.cooldown, last_action(case.memory.last_scaled_at, theirs), NOW)
    for direction in ("up", "down"):
        if f"cooldown {direction}:" in text:
            assert decision.desired is not None
            assert (decision.desired > current) == (direction == "up")
            assert left.of(direction) > timedelta(0)
    if "scale-down waits until the target is ready" in text:
        assert not case.status.ready
    if decision.action is Action.HOLD:
        assert (
            not case.status.ready
            or "holding" in text
            or "cooldown" in text
            or "scale-down waits" in text
        ), text
