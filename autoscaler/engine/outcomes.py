"""How a step that fails changes an evaluation's decision, and says why.

The scale call failed or found the target busy, or the leader lease ends before it could
be made: the decision is held (`hold`, `out_of_lease`). This replica lost the lease: a
change is not made, nothing is written (`fenced`). The state cannot be written: the
decision is kept in memory only (`not_durable`). Each works on an `Evaluation` or on the
`Applied` decision and memory the reconciler carries through apply and save.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeVar

from autoscaler.core.model import Action, Decision, Memory
from autoscaler.engine.evaluation import Evaluation
from autoscaler.errors import NotLeader, TargetDeadline


@dataclass(slots=True, kw_only=True)  # private, only ever `replace`d: not frozen, as that costs
class Applied:
    """An evaluation's decision and memory as they go through apply and save."""

    decision: Decision
    memory: Memory
    error: str | None = None
    error_kind: str | None = None
    scaled: bool = False
    maybe_scaled: bool = False  # a scale call got no answer: it may have landed


# What goes through apply, save and record: the decision with its error (either form).
Outcome = TypeVar("Outcome", Applied, Evaluation)


def not_durable(applied: Outcome, problem: str, *, scale_up_unrecorded: bool = False) -> Outcome:
    """The state cannot be written: the decision is kept in memory only, and says so, with
    what waits for the record (every change; only scale-in with `--scale-up-unrecorded`)."""
    decision: Decision = applied.decision
    if applied.error_kind != "state":  # else the hold of the change already says why
        waits = "scale-in is held" if scale_up_unrecorded else "every change is held"
        decision = replace(
            decision,
            reasons=(
                *decision.reasons,
                f"state not durable ({problem}): this decision is kept in memory only, "
                f"and {waits} until it can be recorded",
            ),
        )
    return replace(applied, decision=decision, error=problem, error_kind="state")


def fenced(applied: Outcome, exc: NotLeader, *, scaled: bool = False) -> Outcome:
    """This replica lost the lease: a change it had decided is not made, nothing is written."""
    decision: Decision = applied.decision
    if decision.changes_target and not scaled:
        decision = hold(decision, f"not scaled: {exc}")
    else:
        decision = replace(decision, reasons=(*decision.reasons, f"not recorded: {exc}"))
    return replace(applied, decision=decision, error=str(exc), error_kind="lease")


def fenced_write(applied: Outcome, exc: NotLeader, *, scaled: bool = False) -> Outcome:
    """The state refused to write the decision: `fenced` when it is not kept (another
    replica took over, or this one leads under a new epoch, or a standby); else, refused
    by the database's fence, it waits with the other unwritten ones as it is (`exc.queued`), and
    says so: written if this replica leads again under the same lease, dropped when
    another takes over."""
    if not exc.queued:
        return fenced(applied, exc, scaled=scaled)
    decision: Decision = applied.decision
    reason = (
        f"not recorded yet: {exc}; written if this replica leads again under the same "
        "lease, dropped if another replica takes over"
    )
    decision = replace(decision, reasons=(*decision.reasons, reason))
    return replace(applied, decision=decision, error=str(exc), error_kind="lease")


def out_of_lease(decision: Decision, exc: TargetDeadline) -> str:
    """Why a scale call stopped where the leader lease ends is not applied (and, when its
    last request may still land, that the cooldown recorded before it stays)."""
    then = "retried" if exc.attempts else "sent"
    kept = "; its cooldown is kept" if exc.maybe_applied else ""
    return (
        f"scale to {decision.desired} not applied: the leader lease ends before the scale "
        f"call could be {then} ({exc}){kept}"
    )


def hold(decision: Decision, reason: str) -> Decision:
    return replace(decision, action=Action.HOLD, reasons=(*decision.reasons, reason))
