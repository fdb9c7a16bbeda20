"""The replay harness decides exactly as `run`: cooldowns, missing data and history."""

from __future__ import annotations

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
