"""One evaluation in progress (`Run`) and how every path through the pipeline ends.

`decide` and the steps it calls (`checks`, `missing_data`, `stabilization`) add their
reasons to a `Run`; the main path and the fallback (`missing_data`) both end here: the
bounds (steps 5b, 5c), the cooldown and the action (6, 7), then the `Decision` with the
policy's memory (`Outcome`). It sits below them all, so the steps need not import the
pipeline that calls them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from autoscaler.core.bounds import bound, effective_bounds, target_bound
from autoscaler.core.cooldown import cooldown_left, last_action, plausible
from autoscaler.core.durations import human_seconds
from autoscaler.core.frozen import built, fast_init
from autoscaler.core.model import Action, CheckResult, Decision, Memory, Policy, TargetStatus
from autoscaler.core.reasons import later
from autoscaler.core.reasons import reasons as pending_reasons

_ZERO = timedelta(0)
_DECISION = built(Decision)  # every evaluation makes one: `Decision(...)`, cheaper


@fast_init
@dataclass(frozen=True)
class Outcome:
    """A decision and the policy's memory to keep for the next evaluation."""

    decision: Decision
    memory: Memory


@dataclass(slots=True)
class Run:
    """One evaluation in progress: its fixed inputs and the reasons gathered so far (texts,
    or `later` ones, made when the decision's reasons are first read)."""

    policy: Policy
    status: TargetStatus
    now: datetime
    dry_run: bool
    checks: tuple[CheckResult, ...]
    current: int  # the status's count
    reasons: list[str]  # (given, not a `default_factory`, which costs a call per evaluation)

    def collect(self, step: tuple[int, list[str]]) -> int:
        """A step's count, with the step's reasons added to the decision's."""
        count, reasons = step
        self.reasons.extend(reasons)
        return count

    def finish(self, desired: int, action: Action) -> Decision:
        return decision(
            self.policy,
            now=self.now,
            dry_run=self.dry_run,
            current=self.current,
            desired=desired,
            action=action,
            reasons=self.reasons,
            checks=self.checks,
        )


def bounded(run: Run, count: int) -> int:
    """`count` within the policy's (or active schedules') bounds, then the target's own."""
    count = run.collect(bound(effective_bounds(run.policy, run.now), count))
    return run.collect(target_bound(run.status, count))


def action(run: Run, memory: Memory, desired: int, rising: str | None = None) -> Action:
    """`up`, `down` or `none`; `hold` while the cooldown of that direction runs (a scale-up
    while the metric keeps rising excepted), and a scale-down while the target is busy."""
    if desired == run.current:
        return Action.NONE
    direction = "up" if desired > run.current else "down"
    if direction == "down" and not run.status.ready:
        run.reasons.append("scale-down waits until the target is ready → hold")
        return Action.HOLD
    theirs = plausible(run.status.last_scaled_at, run.policy.cooldown, run.now)
    last = last_action(memory.last_scaled_at, theirs)
    left = cooldown_left(run.policy.cooldown, last, run.now).of(direction)
    if left > _ZERO:
        if direction == "up" and rising is not None:
            run.reasons.append(later(_rising_text, left, rising))
            return Action.UP
        run.reasons.append(later(_cooldown_text, direction, left))
        return Action.HOLD
    return Action.UP if direction == "up" else Action.DOWN


def _rising_text(left: timedelta, rising: str) -> str:
    return f"cooldown up: {human_seconds(left)} left, but {rising}: not delayed"


def _cooldown_text(direction: str, left: timedelta) -> str:
    return f"cooldown {direction}: {human_seconds(left)} left → hold"


def decision(
    policy: Policy,
    *,
    now: datetime,
    dry_run: bool,
    current: int | None,
    desired: int | None,
    action: Action,
    reasons: Sequence[str],
    checks: tuple[CheckResult, ...],
) -> Decision:
    return _DECISION(
        policy=policy.name,
        target=str(policy.target),
        time=now,
        current=current,
        desired=desired,
        action=action,
        dry_run=dry_run or policy.dry_run,
        reasons=pending_reasons(reasons),
        checks=checks,
    )
