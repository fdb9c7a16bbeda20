"""A scale that happened reaches the history even when the lease lapses locally before its
record: the local tenure check may stop a decision from being acted on, not a done scale
from being written; the database's fence (the epoch checked in the write) decides that."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from autoscaler.adapters.state import LayeredStateStore, MemoryStateStore
from autoscaler.core.model import Action, Cooldown, Decision, Memory, TargetStatus
from autoscaler.core.ports import StateStore
from autoscaler.engine.reconciler import Reconciler
from autoscaler.errors import NotLeader, StateError, TargetForbidden, TargetUnavailable
from tests.unit.engine.test_reconciler import (
    KEY,
    T0,
    FakeSource,
    FakeTarget,
    _policy,
    _reconciler,
)


class TakenOverStore(MemoryStateStore):
    """A store whose database refuses every decision: another replica leads now."""

    def record(self, decision: Decision) -> None:
        raise NotLeader("lease epoch 3 is no longer current (expired or taken over)")


def _leased(
    target: FakeTarget,
    state: StateStore,
    tenure: Callable[[float], None],
    *,
    scale_up_unrecorded: bool = False,
) -> Reconciler:
    """A leader's reconciler on `target` (load 60: up to 6), its lease confirmed before
    each scale call and its tenure checked by `tenure`."""
    return _reconciler(
        FakeSource({"sum(load)": 60.0}),
        target,
        state,
        scale_up_unrecorded=scale_up_unrecorded,
        fence=lambda _begun: 1e12,
        tenure=tenure,
    )


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

    return _leased(target, state, tenure)


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
    )  # not kept to write later (a store that keeps nothing): not "not recorded yet"


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

    reconciler = _leased(target, state, tenure)
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
    assert [
        r.levelname
        for r in caplog.records
        if r.name == "autoscaler.adapters.state.layered" and "no longer current" in r.getMessage()
    ] == ["WARNING"]
    durable.refuse = False  # the same replica renews the same epoch
    state.flush()
    (recorded,) = durable.history(policy="web")
    assert (recorded.action, recorded.desired) == (Action.UP, 6)


def _lapsed(_begun: float) -> None:
    raise NotLeader("the leader lease lapsed while this evaluation ran")


def test_a_scale_refused_outright_is_not_taken_for_one_that_may_have_landed() -> None:
    # A cooldown counted from now (the last action recorded in the future: a clock ahead)
    # looked like one a call without an answer kept: a 403 after a lapse was recorded.
    state = MemoryStateStore()
    state.save("web", KEY, Memory(last_scaled_at=T0 + timedelta(days=1)))
    target = FakeTarget(
        status_value=TargetStatus(count=2), scale_error=TargetForbidden("403 denied")
    )
    checks: list[float] = []

    def tenure(begun: float) -> None:
        checks.append(begun)
        if len(checks) > 1:  # lapses once the scale call was made
            _lapsed(begun)

    reconciler = _leased(target, state, tenure)
    policy = _policy(cooldown=Cooldown(up=timedelta(0), down=timedelta(minutes=5)))
    evaluation = reconciler.evaluate(policy)
    assert not evaluation.maybe_scaled
    assert evaluation.decision.reasons[-1].startswith("not recorded: ")
    assert state.history(policy="web") == []


class Unwritable(MemoryStateStore):
    """A database that takes no write at all."""

    generation = 0

    def save(self, *args: Any, **kwargs: Any) -> None:
        raise StateError("the database is down")

    def record(self, *args: Any, **kwargs: Any) -> None:
        raise StateError("the database is down")


def _kept_after_a_lapse(error: Exception | None) -> int:
    """Decisions kept to write of a scale-up with `--scale-up-unrecorded` while the state
    takes no write, the call failing with `error`, the lease lapsing locally after it."""
    state = LayeredStateStore(Unwritable())
    state.lead(1)
    target = FakeTarget(status_value=TargetStatus(count=2), scale_error=error)

    def tenure(begun: float) -> None:
        if target.expected:  # once the scale call was made
            _lapsed(begun)

    reconciler = _leased(target, state, tenure, scale_up_unrecorded=True)
    reconciler.evaluate(_policy())
    return len(state.history(policy="web"))


def test_a_scale_that_may_have_landed_while_the_state_is_not_durable_waits_as_a_done_one() -> None:
    # `not_durable` replaced its error kind ("scale") with "state", and a scale that may
    # have landed was dropped after a lapse where a done one waited to be written.
    assert _kept_after_a_lapse(None) == 1
    assert _kept_after_a_lapse(TargetUnavailable("no answer", maybe_applied=True)) == 1


class Releading(LayeredStateStore):
    """A state whose replica takes the lease again under a new epoch while it evaluates."""

    def remember(self, policy: str, target_key: str, memory: Memory) -> None:
        super().remember(policy, target_key, memory)
        self.lead(2)


class Refusing(MemoryStateStore):
    """The database's fence refuses every write."""

    generation = 0

    def record(self, decision: Decision) -> None:
        raise NotLeader("lease epoch 1 of a is no longer current: nothing was written")


def _evaluated(state: LayeredStateStore, *, dry_run: bool = False) -> Decision:
    state.lead(1)
    reconciler = _leased(FakeTarget(status_value=TargetStatus(count=2)), state, lambda _begun: None)
    return reconciler.evaluate(_policy(), dry_run=dry_run).decision


def test_a_decision_dropped_at_a_new_epoch_says_not_recorded_not_that_it_waits() -> None:
    durable = Gen()
    state = Releading(durable)
    decision = _evaluated(state)
    assert decision.reasons[-1].startswith("not recorded: ")
    state.flush()
    assert durable.history(policy="web") == []


def test_a_dry_run_change_the_fence_refuses_is_reported_as_the_version_that_waits() -> None:
    # It was turned into a hold ("not scaled: ..."), while the version waiting to be
    # written, and written if the same lease leads again, was the dry-run change.
    state = LayeredStateStore(Refusing())
    decision = _evaluated(state, dry_run=True)
    assert decision.action is Action.UP and decision.dry_run
    assert decision.reasons[-1].startswith("not recorded yet: ")
    (waiting,) = state.history(policy="web")
    assert waiting.action is Action.UP


class Gen(MemoryStateStore):
    generation = 0
