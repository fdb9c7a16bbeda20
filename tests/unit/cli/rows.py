"""A plan row for the output tests: one policy scaling up on one check, on `target`."""

from __future__ import annotations

from datetime import UTC, datetime

from autoscaler.core.model import Action, CheckResult, Decision
from autoscaler.engine.evaluation import Evaluation


def up_row(
    target: str, reason: str = "load: 420 / 50 per instance → 9", error: str | None = None
) -> Evaluation:
    """web, 2 → 9 (dry-run) on `target`, for `reason`, with the evaluation's `error`."""
    check = CheckResult(name="load", query="q", value=420.0, desired=9, error=None)
    decision = Decision(
        policy="web",
        target=target,
        time=datetime(2026, 12, 3, tzinfo=UTC),
        current=2,
        desired=9,
        action=Action.UP,
        dry_run=True,
        reasons=(reason,),
        checks=(check,),
    )
    return Evaluation(decision=decision, error=error)
