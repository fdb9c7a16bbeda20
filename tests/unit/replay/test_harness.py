"""The replay harness decides exactly as `run`: cooldowns, missing data and history."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from autoscaler.core.model import (
    Action,
    AsgTarget,
    Check,
    Cooldown,
    Policy,
    Stabilization,
    Strategy,
    TargetStatus,
)
from autoscaler.replay.harness import Replay

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _policy() -> Policy:
    return Policy(
        name="web",
        target=AsgTarget(asg="web"),
        min=1,
        max=20,
        checks=(
            Check(name="rps", strategy=Strategy.PER_INSTANCE, query="sum(rate(x[1m]))", target=10),
        ),
        cooldown=Cooldown(up=timedelta(minutes=2), down=timedelta(minutes=5)),
        stabilization=Stabilization(up=timedelta(0), down=timedelta(0)),
    )


def test_scale_up_is_recorded_and_starts_the_cooldown() -> None:
    replay = Replay(_policy(), start=T0, count=2)
    first = replay.evaluate(T0, {"rps": 55.0}, TargetStatus(count=2))
    assert first.scaled and first.decision.action is Action.UP and first.decision.desired == 6
    # Still short of 6 (an instance lost), on the same load: not rising, so the cooldown holds.
    held = replay.evaluate(T0 + timedelta(seconds=30), {"rps": 55.0}, TargetStatus(count=5))
    assert not held.scaled and held.decision.action is Action.HOLD
    assert any("cooldown up" in reason for reason in held.decision.reasons)
    later = replay.evaluate(T0 + timedelta(minutes=2), {"rps": 95.0}, TargetStatus(count=6))
    assert later.scaled and later.decision.desired == 10


def test_missing_value_holds_and_never_scales_in() -> None:
    replay = Replay(_policy(), start=T0, count=8)
    for minutes, value in ((0, None), (1, "query timed out")):
        evaluation = replay.evaluate(
            T0 + timedelta(minutes=minutes), {"rps": value}, TargetStatus(count=8)
        )
        assert evaluation.decision.action is Action.HOLD and not evaluation.scaled
    absent = replay.evaluate(T0 + timedelta(minutes=2), {}, TargetStatus(count=8))
    assert absent.decision.action is Action.HOLD


def test_dry_run_decides_without_scaling_and_history_is_oldest_first() -> None:
    replay = Replay(_policy(), start=T0, count=2)
    dry = replay.evaluate(T0, {"rps": 55.0}, TargetStatus(count=2), dry_run=True)
    assert dry.decision.action is Action.UP and dry.decision.dry_run and not dry.scaled
    replay.evaluate(T0 + timedelta(minutes=1), {"rps": 15.0}, TargetStatus(count=2))
    times = [d.time for d in replay.history()]
    assert times == [T0, T0 + timedelta(minutes=1)]


def test_checks_sharing_a_query_each_read_their_own_value() -> None:
    # `simulate` maps such checks to different signals, `autoscaler test` gives each its
    # own input values: one check must never read the other's.
    policy = replace(
        _policy(),
        checks=(
            Check(name="utilization", strategy=Strategy.TARGET_VALUE, query="q", target=0.7),
            Check(name="load", strategy=Strategy.PER_INSTANCE, query="q", target=70),
        ),
    )
    replay = Replay(policy, start=T0, count=2)
    both = replay.evaluate(T0, {"utilization": 0.35, "load": 700.0}, TargetStatus(count=2))
    assert {c.name: c.value for c in both.decision.checks} == {"utilization": 0.35, "load": 700.0}
    assert both.decision.desired == 10
    alone = replay.evaluate(T0 + timedelta(minutes=1), {"load": 700.0}, TargetStatus(count=10))
    checks = {c.name: c for c in alone.decision.checks}
    assert checks["utilization"].value is None and checks["utilization"].error is not None
    assert checks["load"].value == 700.0


def test_a_grouped_check_reads_its_own_value_beside_a_check_of_the_same_query() -> None:
    select = (("job", "web"),)
    policy = replace(
        _policy(),
        checks=(
            Check(name="a", strategy=Strategy.PER_INSTANCE, query="q", target=10, select=select),
            Check(name="b", strategy=Strategy.PER_INSTANCE, query="q", target=10, select=select),
        ),
    )
    replay = Replay(policy, start=T0, count=2)
    evaluation = replay.evaluate(T0, {"a": 30.0, "b": None}, TargetStatus(count=2))
    checks = {c.name: c for c in evaluation.decision.checks}
    assert checks["a"].value == 30.0 and checks["b"].error is not None
