"""A replay that keeps no history decides exactly as one that does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from autoscaler.core.model import AsgTarget, Check, Cooldown, Policy, Strategy, TargetStatus
from autoscaler.replay.harness import Replay

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_same_decisions_with_and_without_history() -> None:
    policy = Policy(
        name="web",
        target=AsgTarget(asg="web"),
        min=1,
        max=20,
        checks=(Check(name="rps", strategy=Strategy.PER_INSTANCE, query="q", target=10),),
        cooldown=Cooldown(up=timedelta(minutes=1), down=timedelta(minutes=2)),
    )
    kept = Replay(policy, start=T0, count=2)
    forgetful = Replay(policy, start=T0, count=2, keep_history=False)
    counts = {"kept": 2, "forgetful": 2}
    values = [55.0, 95.0, 95.0, 20.0, None, 20.0, 12.0, 12.0, 80.0, 3.0, 3.0, 3.0] * 3
    for i, value in enumerate(values):
        now = T0 + timedelta(seconds=30 * i)
        results = []
        for name, replay in (("kept", kept), ("forgetful", forgetful)):
            evaluation = replay.evaluate(now, {"rps": value}, TargetStatus(count=counts[name]))
            if evaluation.scaled and evaluation.decision.desired is not None:
                counts[name] = evaluation.decision.desired
            results.append((evaluation.decision.action, evaluation.decision.reasons))
        assert results[0] == results[1], i
    assert len(kept.history()) == len(values) and forgetful.history() == []
