"""Forecasts in `simulate`: the trace before the window is the history they learn from, and a
forecasting policy has capacity ready before a daily ramp that a reactive one meets late."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from autoscaler.core.model import (
    AsgTarget,
    Check,
    Cooldown,
    ForecastSettings,
    Policy,
    Stabilization,
    Strategy,
)
from autoscaler.replay.simulate import Recorded, Setup, TraceHistory, simulate
from autoscaler.replay.trace import Trace

DAY = 86_400.0
RAMP = 8 * 3600.0  # every day at 08:00 the load jumps from 20 to 100 req/s in two minutes


def morning_load(t: float) -> float:
    phase = t % DAY
    if phase < RAMP:
        return 20.0
    if phase < RAMP + 120:
        return 20.0 + 80.0 * (phase - RAMP) / 120
    if phase < 18 * 3600:
        return 100.0
    return 20.0


def days(n: int) -> Trace:
    times = [60.0 * k for k in range(int(n * DAY / 60))]
    return Trace("mornings.csv", times, [morning_load(t) for t in times], 60.0, n * DAY)


def policy(*, forecast: bool) -> Policy:
    check = Check(
        name="load",
        strategy=Strategy.PER_INSTANCE,
        query="sum(rate(requests[1m]))",
        target=10.0,
        forecast=ForecastSettings(seasons=(timedelta(days=1),)) if forecast else None,
    )
    return Policy(
        name="ahead" if forecast else "reactive",
        target=AsgTarget(asg="ahead" if forecast else "reactive"),
        min=1,
        max=50,
        checks=(check,),
        provisioning=timedelta(minutes=2),
        cooldown=Cooldown(up=timedelta(0), down=timedelta(minutes=5)),
        stabilization=Stabilization(up=timedelta(0), down=timedelta(minutes=5)),
    )


def test_the_trace_history_is_what_a_load_check_read_one_scrape_late() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    history = TraceHistory(days(1), start, {"q": 30.0})
    (series,) = history.query_range(
        "q",
        start=start + timedelta(seconds=RAMP),
        end=start + timedelta(seconds=RAMP + 180),
        step=timedelta(minutes=1),
    )
    at = [t - start.timestamp() - RAMP for t, _ in series.points]
    assert at == [0.0, 60.0, 120.0, 180.0]
    # At 08:02 the check read the load of 08:01:15 to 08:01:45: the row of 08:01.
    assert series.points[2][1] == pytest.approx(morning_load(RAMP + 60))
    assert history.query_range("other", start=start, end=start, step=timedelta(minutes=1)) == []
    before = history.query_range("q", start=start, end=start, step=timedelta(minutes=1))
    assert before == []  # nothing before the trace's first row


# 41 s in the last fresh CI, a third of the suite's 120 s limit, on a machine that other
# workers keep busy: room as the golden simulation has.
@pytest.mark.timeout(600)
def test_a_forecasting_policy_is_ready_before_the_daily_ramp() -> None:
    trace = days(4)
    window = trace.window(3 * DAY, 4 * DAY)  # the fourth day, the first three as history
    setup = Setup(capacity=10.0, target_utilization=1.0, provisioning=120.0)
    sim = simulate(
        window,
        setup,
        [policy(forecast=True), replace(policy(forecast=False))],
        compare=[],
        recorded=Recorded(trace, 3 * DAY),
    )
    ahead, reactive = sim.runs
    ramp = int(RAMP // 15)
    first_up = min(a.tick for a in ahead.actions if a.after > a.before and a.tick > ramp - 40)
    assert first_up < ramp  # scaled up before 08:00
    assert ahead.ready[ramp + 10] == 10  # all ready 2.5 minutes into the ramp
    assert reactive.ready[ramp + 10] == 2  # still waiting for its first new instances
    assert ahead.scores.under_provisioned_pct < reactive.scores.under_provisioned_pct / 2
    reasons = next(a.reasons for a in ahead.actions if a.tick == first_up)
    assert any("forecast" in r and "above the observed" in r for r in reasons)
