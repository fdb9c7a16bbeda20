"""A scale that happened reaches the history even when the lease lapses locally before its
record: the local tenure check may stop a decision from being acted on, not a done scale
from being written; the database's fence (the epoch checked in the write) decides that."""

from __future__ import annotations

from autoscaler.adapters.state import MemoryStateStore
from autoscaler.core.model import Action, Decision, TargetStatus
from autoscaler.engine.reconciler import Reconciler
from autoscaler.errors import NotLeader
from tests.unit.engine.test_reconciler import KEY, T0, FakeSource, FakeTarget, _policy


class TakenOverStore(MemoryStateStore):
    """A store whose database refuses every decision: another replica leads now."""

    def record(self, decision: Decision) -> None:
        raise NotLeader("lease epoch 3 is no longer current (expired or taken over)")


def _lapsing_after_the_scale(target: FakeTarget, state: MemoryStateStore) -> Reconciler:
    """A reconciler whose lease lapses locally once `target` was scaled."""

    def tenure(_begun: float) -> None:
        if target.scaled:
            raise NotLeader("the leader lease lapsed while this evaluation ran")

    return Reconciler(
        source=FakeSource({"sum(load)": 60.0}),
        targets=lambda _ref: target,
        state=state,
        clock=lambda: T0,
        fence=lambda _begun: 1e12,
        tenure=tenure,
    )


def test_a_scale_made_before_the_lease_lapsed_locally_is_recorded() -> None:
    # Before, the decision said "not recorded: ..." and was never written, though the
    # same replica still held the same epoch: /v1/decisions and the next leader's last
    # decision left the scale out (its cooldown, saved before the call, was there).
    state = MemoryStateStore()
    target = FakeTarget(status_value=TargetStatus(count=2))
    evaluation = _lapsing_after_the_scale(target, state).evaluate(_policy())
    assert target.scaled and evaluation.scaled
    assert evaluation.error_kind is None
    assert not any("not recorded" in r for r in evaluation.decision.reasons)
    assert state.load("web", KEY).last_scaled_at == T0
    (recorded,) = state.history(policy="web")
    assert (recorded.action, recorded.desired) == (Action.UP, 6)


def test_a_scale_the_database_refuses_to_record_says_it_was_made_and_not_recorded() -> None:
    target = FakeTarget(status_value=TargetStatus(count=2))
    evaluation = _lapsing_after_the_scale(target, TakenOverStore()).evaluate(_policy())
    assert target.scaled and evaluation.scaled
    assert evaluation.decision.action is Action.UP  # it happened: not turned into a hold
    assert evaluation.error_kind == "lease"
    assert evaluation.decision.reasons[-1] == (
        "not recorded: lease epoch 3 is no longer current (expired or taken over)"
    )
