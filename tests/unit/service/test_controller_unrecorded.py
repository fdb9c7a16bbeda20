"""The API's last decision of a policy says when its write failed after it was reported.

Regression: a decision that did not wait for its write (it lingered, see
`adapters.state.layered`) was shown by `GET /v1/policies/NAME` as it was reported, with
no error, though the write after it failed and it was in memory only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from autoscaler.adapters.state import LayeredStateStore, MemoryStateStore
from autoscaler.core.model import Action, Decision, Policy
from autoscaler.core.ports import MetricSource
from autoscaler.engine.evaluation import Evaluation
from autoscaler.engine.reconciler import Reconciler
from autoscaler.errors import StateError
from autoscaler.service.controller import Controller
from autoscaler.service.notify import Notifier
from autoscaler.service.registry import PolicyRegistry
from autoscaler.service.telemetry import Telemetry
from tests.support.controllers import StubReconciler
from tests.support.net import wait_until

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class _Unwritable(MemoryStateStore):
    """A durable store whose writes fail (a locked database)."""

    generation = 0

    def record(self, decision: Decision) -> None:
        raise StateError("state database s.db: database is locked")


class _Reconciler(StubReconciler):
    """Records a `none` decision as the real one does (`state.record`, which returns at
    once when the decision lingers) and reports it."""

    def __init__(self, state: LayeredStateStore) -> None:
        self.state = state

    def evaluate(self, policy: Policy, *, dry_run: bool = False, apply: bool = True) -> Evaluation:
        decision = Decision(
            policy=policy.name,
            target=str(policy.target),
            time=NOW,
            current=2,
            desired=2,
            action=Action.NONE,
            dry_run=dry_run,
            reasons=("load: 2 → 2",),
        )
        self.state.record(decision)
        return Evaluation(decision=decision)


def test_a_last_decision_whose_write_failed_after_it_was_shown_says_so(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(
        "name: web\ntarget: {type: aws-asg, asg: web}\nmin: 1\nmax: 10\ninterval: 1h\n"
        "checks:\n  - {name: load, query: 'sum(x)', strategy: per-instance, target: 10}\n"
    )
    state = LayeredStateStore(_Unwritable(), linger=0.05)
    controller = Controller(
        registry=PolicyRegistry([str(tmp_path)]),
        reconciler=cast(Reconciler, _Reconciler(state)),
        state=state,
        source=cast(MetricSource, object()),
        telemetry=Telemetry(),
        notifier=Notifier([]),
        clock=lambda: NOW,
    )
    controller.reload()
    assert controller.scheduler.run_due() == 1
    wait_until(lambda: state.durability_problem() is not None, timeout=5, what="the failed write")

    shown = controller.get_policy("web").last_decision
    assert shown is not None
    assert shown.reasons[0] == "load: 2 → 2"
    assert shown.reasons[-1].startswith("state not durable (state database s.db: database is")
    assert controller.get_policy("web").last_error_kind == "state"
    state.close()
