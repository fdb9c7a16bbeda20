"""The simulator: fleet timing, one-scrape-late observations, the real decision pipeline."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta
from fractions import Fraction
from typing import Any

import pytest

from autoscaler.core.model import (
    AsgTarget,
    Check,
    Cooldown,
    Policy,
    Stabilization,
    StepLimit,
    Strategy,
)
from autoscaler.replay.scores import SCORE_KEYS
from autoscaler.replay.simulate import (
    Setup,
    Simulation,
    SimulationError,
    _closed_loop,
    _Windows,
    simulate,
)
from autoscaler.replay.trace import Trace, TraceError


def step_trace(before: float, after: float, at: float, end: float) -> Trace:
    """`before` req/s until `at` seconds, then `after` until `end`."""
    return Trace("step.csv", [0.0, at], [before, after], at, end)


def policy(name: str = "web", check: str = "load", **fields: object) -> Policy:
    base = Policy(
        name=name,
        target=AsgTarget(asg=name),
        min=1,
        max=50,
        interval=timedelta(seconds=15),
        checks=(Check(name=check, strategy=Strategy.PER_INSTANCE, query="q", target=10.0),),
        cooldown=Cooldown(up=timedelta(0), down=timedelta(0)),
        stabilization=Stabilization(up=timedelta(0), down=timedelta(0)),
    )
    return replace(base, **fields)  # type: ignore[arg-type]


SETUP = Setup(capacity=10.0, target_utilization=1.0, provisioning=120.0)


def test_a_load_step_is_seen_one_scrape_late_and_served_after_provisioning() -> None:
    # 10 req/s, then 50 from t=300 (tick 20). The window of tick k is
    # [15k - 30, 15k - 15): tick 22 is the first to see only the new load.
    sim = simulate(step_trace(10, 50, 300, 900), SETUP, [policy()], compare=[])
    run = sim.runs[0]
    assert [(a.tick, a.before, a.after) for a in run.actions] == [(22, 1, 5)]
    assert run.billed[21:23] == [1, 5]
    assert run.ready[29:31] == [1, 5]  # 8 ticks = 120 s of provisioning
    assert run.scores.under_provisioned_pct == pytest.approx(100 * 10 / 60)
    assert any("load: 50 / 10 per instance → 5" in r for r in run.actions[0].reasons)


def test_every_controller_starts_at_the_first_demand_all_ready() -> None:
    sim = simulate(step_trace(42, 42, 300, 600), SETUP, [policy()])
    assert [run.name for run in sim.runs] == ["web", "hpa", "aws-tt", "static", "oracle"]
    for run in sim.runs:
        assert run.ready[0] == run.billed[0] == 5, run.name
        assert run.actions == [], run.name


def test_the_policy_decides_through_the_production_pipeline() -> None:
    # A 1-minute scale-up cooldown and a limit of +2 per action: both are core rules.
    slow = policy(cooldown=Cooldown(up=timedelta(minutes=1), down=timedelta(0)))
    slow = replace(slow, limits=replace(slow.limits, up=StepLimit(count=2)))
    sim = simulate(step_trace(10, 100, 300, 1200), SETUP, [slow], compare=[])
    actions = [(a.tick, a.before, a.after) for a in sim.runs[0].actions]
    assert actions == [(22, 1, 3), (26, 3, 5), (30, 5, 7), (34, 7, 9), (38, 9, 10)]


def test_a_policy_evaluates_only_at_its_interval() -> None:
    sim = simulate(
        step_trace(10, 50, 300, 900), SETUP, [policy(interval=timedelta(minutes=1))], compare=[]
    )
    # evaluations at ticks 0, 4, 8...; the window of tick k is [15k - 75, 15k - 15):
    # tick 24 sees 15 s at 10 and 45 s at 50 req/s (mean 40), tick 28 only 50
    actions = [(a.tick, a.before, a.after) for a in sim.runs[0].actions]
    assert actions == [(24, 1, 4), (28, 4, 5)]


def test_a_dry_run_policy_is_simulated_as_if_live() -> None:
    sim = simulate(step_trace(10, 50, 300, 900), SETUP, [policy(dry_run=True)], compare=[])
    assert sim.runs[0].actions


def test_oracle_is_perfect_and_static_holds_the_peak() -> None:
    sim = simulate(step_trace(10, 50, 300, 900), SETUP, [], compare=["static", "oracle"])
    static, oracle = sim.runs
    assert set(static.ready) == {5}
    assert oracle.ready == sim.demand
    assert oracle.scores.accuracy_u == oracle.scores.timeshare_o == 0.0
    assert oracle.scores.jitter_per_hour == 0.0 and oracle.scores.actions == 1


def test_checks_named_after_a_signal_need_no_mapping_and_others_do() -> None:
    trace = step_trace(10, 50, 300, 900)
    simulate(trace, SETUP, [policy(check="latency-p95")], compare=[])  # `-` or `_` alike
    with pytest.raises(SimulationError, match="check 'rps' has no signal: pass --signal rps="):
        simulate(trace, SETUP, [policy(check="rps")], compare=[])
    sim = simulate(trace, SETUP, [policy(check="rps")], signals={"rps": "load"}, compare=[])
    assert sim.runs[0].actions
    with pytest.raises(SimulationError, match="--signal rps=cpu is not one"):
        simulate(trace, SETUP, [policy(check="rps")], signals={"rps": "cpu"}, compare=[])
    with pytest.raises(SimulationError, match="names no check of the policies: nope"):
        simulate(trace, SETUP, [policy()], signals={"nope": "load"}, compare=[])


def test_unknown_baselines_and_clashing_names_are_refused() -> None:
    trace = step_trace(10, 50, 300, 900)
    with pytest.raises(
        SimulationError,
        match=r"unknown baseline knative: --compare takes .* \(or none, for the policy alone\)",
    ):
        simulate(trace, SETUP, [policy()], compare=["knative"])
    with pytest.raises(SimulationError, match="two controllers named hpa"):
        simulate(trace, SETUP, [policy(name="hpa")], compare=["hpa"])


def test_json_document_has_exactly_the_contract_keys() -> None:
    sim = simulate(step_trace(10, 50, 300, 900), SETUP, [policy()])
    doc = sim.to_json()
    assert list(doc) == ["trace", "capacity", "controllers"]
    assert doc["trace"] == "step.csv" and doc["capacity"] == 10.0
    assert [c["name"] for c in doc["controllers"]] == ["web", "hpa", "aws-tt", "static", "oracle"]
    for controller in doc["controllers"]:
        assert tuple(controller) == SCORE_KEYS


def test_a_trace_shorter_than_a_tick_is_a_trace_error() -> None:
    with pytest.raises(TraceError, match="shorter than one 15-second tick"):
        simulate(Trace("short.csv", [0.0, 5.0], [1.0, 1.0], 5.0, 10.0), SETUP, [policy()])


def test_setup_rejects_impossible_values() -> None:
    with pytest.raises(SimulationError, match="--capacity"):
        Setup(capacity=0)
    with pytest.raises(SimulationError, match="--target-utilization"):
        Setup(capacity=1, target_utilization=1.5)
    assert Setup(capacity=10, target_utilization=0.7).demand(0.0) == 1
    assert Setup(capacity=10, target_utilization=0.7).demand(70.0) == 10


def test_a_capacity_too_small_to_divide_by_is_a_setup_error() -> None:
    # 1e-300 × 1e-300 is 0.0 in floats: the demand divided by zero (a traceback).
    with pytest.raises(SimulationError, match=r"--capacity × --target-utilization .* is 0"):
        Setup(capacity=1e-300, target_utilization=1e-300)


class _Recording:
    """A controller that records the ticks it is asked at and never changes the count."""

    name = "recording"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.ticks: list[int] = []

    def decide(self, t: float, load: float, seen_ready: int, fleet: Any) -> int:
        self.ticks.append(round(t / 15))
        desired: int = fleet.desired
        return desired

    def explain(self) -> tuple[str, ...]:
        return ()


@pytest.mark.parametrize("interval", ["20", "25", "37.5", "100", "15", "60", "7"])
def test_a_controller_evaluates_at_the_first_tick_at_or_after_each_multiple_of_its_interval(
    interval: str,
) -> None:
    # Adding interval / 15 s again and again drifted: for 20 s, 660 s was evaluated at
    # 675 s (3,512 late evaluations in a week).
    n = 2000
    trace = Trace("flat", [15.0 * k for k in range(n)], [10.0] * n, 15.0, 15.0 * n)
    setup = Setup(capacity=10)
    windows = _Windows(trace)
    sim = Simulation(trace, setup, windows.loads, setup.demands(windows.loads))
    controller = _Recording(float(interval))
    _closed_loop(
        sim, controller=controller, kind="baseline", windows=windows, count=1, provisioning=8
    )
    every = Fraction(interval)
    if every >= 15:
        expected = sorted({math.ceil(m * every / 15) for m in range(3 * n)} & set(range(n)))
    else:
        expected = list(range(n))  # more often than a tick: once per tick
    assert controller.ticks == expected
