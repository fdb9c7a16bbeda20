"""A scale that happened reaches the history even when the lease lapses locally before its
record: the local tenure check may stop a decision from being acted on, not a done scale
from being written; the database's fence (the epoch checked in the write) decides that."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.adapters.state import LayeredStateStore, MemoryStateStore
from autoscaler.core.model import Action, Decision, TargetStatus
from autoscaler.engine.reconciler import Reconciler
from autoscaler.errors import NotLeader, TargetUnavailable
from tests.unit.engine.test_reconciler import KEY, T0, FakeSource, FakeTarget, _policy


class TakenOverStore(MemoryStateStore):
    """A store whose database refuses every decision: another replica leads now."""

    def record(self, decision: Decision) -> None:
        raise NotLeader("lease epoch 3 is no longer current (expired or taken over)")


def _lapsing_after_the_scale(
    target: FakeTarget, state: MemoryStateStore | LayeredStateStore, refuse: Fenced | None = None
) -> Reconciler:
    """A reconciler whose lease lapses locally once `target` was scaled (and in the
    database `refuse`, when given)."""

    if refuse is not None:
        scale = target.scale

        def scale_then_lapse(*args: Any, **kwargs: Any) -> Any:
            done = scale(*args, **kwargs)
            refuse.refuse = True
            return done

        target.scale = scale_then_lapse  # type: ignore[method-assign]

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
        "not recorded yet: lease epoch 3 is no longer current (expired or taken over); "
        "written if this replica leads again under the same lease, dropped if another "
        "replica takes over"
    )


def test_a_scale_that_may_have_landed_is_recorded_even_if_the_lease_lapsed_locally() -> None:
    # Before, its decision (held: the call got no answer, its cooldown kept) said "not
    # recorded" and was never written, as a done scale was before: the history and the
    # next leader's last decision left out a scale that may have happened.
    state = MemoryStateStore()
    target = FakeTarget(
        status_value=TargetStatus(count=2),
        scale_error=TargetUnavailable("no answer", maybe_applied=True),
    )

    def tenure(_begun: float) -> None:
        if target.scale_error is not None and state.load("web", KEY).last_scaled_at == T0:
            raise NotLeader("the leader lease lapsed while this evaluation ran")

    reconciler = Reconciler(
        source=FakeSource({"sum(load)": 60.0}),
        targets=lambda _ref: target,
        state=state,
        clock=lambda: T0,
        fence=lambda _begun: 1e12,
        tenure=tenure,
    )
    evaluation = reconciler.evaluate(_policy())
    assert evaluation.error_kind == "scale" and evaluation.decision.action is Action.HOLD
    assert not any("not recorded" in r for r in evaluation.decision.reasons)
    (recorded,) = state.history(policy="web")
    assert "it may have landed" in recorded.reasons[-1]


class Fenced(MemoryStateStore):
    """The database: its fence refuses writes while `refuse` (the lease lapsed there)."""

    refuse = False
    generation = 0

    def record(self, decision: Decision) -> None:
        if self.refuse:
            raise NotLeader("lease epoch 1 of a is no longer current: nothing was written")
        super().record(decision)


def test_a_scale_the_fence_refused_is_written_once_the_same_lease_leads_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Before, it said "not recorded" though it waited with the unwritten decisions and was
    # written once the same replica renewed its lease (nobody took it), and the refusal
    # was logged as an outage ("state database cannot be written").
    durable = Fenced()
    state = LayeredStateStore(durable)
    target = FakeTarget(status_value=TargetStatus(count=2))
    evaluation = _lapsing_after_the_scale(target, state, refuse=durable).evaluate(_policy())
    assert evaluation.scaled and evaluation.decision.reasons[-1].startswith("not recorded yet: ")
    assert not [r for r in caplog.records if "cannot be written" in r.getMessage()]
    assert any("no longer current" in r.getMessage() for r in caplog.records)
    durable.refuse = False  # the same replica renews the same epoch
    state.flush()
    (recorded,) = durable.history(policy="web")
    assert (recorded.action, recorded.desired) == (Action.UP, 6)
