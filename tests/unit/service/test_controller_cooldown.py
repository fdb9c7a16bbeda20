"""The API's `cooldown_remaining` and the decision hold on the very same cooldown.

Regression: the API once counted only our own last action, so after someone else scaled
the target it reported 0 s left while every decision was held by the cooldown.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

from autoscaler.adapters.state import MemoryStateStore
from autoscaler.core.decision import decide
from autoscaler.core.model import Action, Memory, Observation, Policy, TargetStatus
from autoscaler.core.ports import MetricSource
from autoscaler.engine.evaluation import Evaluation
from autoscaler.engine.reconciler import Reconciler
from autoscaler.service.controller import Controller
from autoscaler.service.notify import Notifier
from autoscaler.service.registry import PolicyRegistry
from autoscaler.service.telemetry import Telemetry
from tests.support.controllers import StubReconciler

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SCALED_BY_SOMEONE_ELSE = NOW - timedelta(seconds=25)


class _Reconciler(StubReconciler):
    """Decides with the real core on a target that someone else scaled 25 s ago."""

    def evaluate(self, policy: Policy, *, dry_run: bool = False, apply: bool = True) -> Evaluation:
        status = TargetStatus(count=2, last_scaled_at=SCALED_BY_SOMEONE_ELSE)
        outcome = decide(
            policy,
            status=status,
            observations=[Observation(check="load", value=90.0)],
            memory=Memory(),
            now=NOW,
        )
        return Evaluation(decision=outcome.decision, status=status)


def test_api_cooldown_counts_the_targets_own_record_as_decide_does(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(
        "name: web\ntarget: {type: aws-asg, asg: web}\nmin: 1\nmax: 10\ninterval: 1h\n"
        "cooldown: {up: 1m, down: 5m}\n"
        "checks:\n  - {name: load, query: 'sum(x)', strategy: per-instance, target: 10}\n"
    )
    controller = Controller(
        registry=PolicyRegistry([str(tmp_path)]),
        reconciler=cast(Reconciler, _Reconciler()),
        state=MemoryStateStore(),
        source=cast(MetricSource, object()),
        telemetry=Telemetry(),
        notifier=Notifier([]),
        clock=lambda: NOW,
    )
    controller.reload()
    assert controller.scheduler.run_due() == 1
    shown = controller.get_policy("web")
    assert shown is not None and shown.last_decision is not None
    assert shown.last_decision.action == Action.HOLD.value
    assert "cooldown up: 35 s left → hold" in shown.last_decision.reasons
    assert shown.cooldown_remaining.up_seconds == 35
    assert shown.cooldown_remaining.down_seconds == 275
    assert shown.cooldown_remaining.last_scaled_at == SCALED_BY_SOMEONE_ELSE
