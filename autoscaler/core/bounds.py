"""Step limits and min/max bounds: the last shaping of a count before cooldown.

Kept apart from `decision` because both answer one question, "how far may the count
move?", and both must be explainable: every function here returns the new count together
with the reasons for any change it made. Order (as in the Kubernetes HPA): limits first,
then the policy's bounds (replaced by active schedules), then the target's own bounds, so
bounds always win over limits and the target's bounds win over everything.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from autoscaler.core.model import Limits, Policy, Schedule, StepLimit, TargetStatus
from autoscaler.core.schedules import active
from autoscaler.core.strategies import ceil_count


@dataclass(frozen=True)
class Bounds:
    """The min/max in force at one instant and what set each (for reasons)."""

    min: int
    max: int
    min_source: str = "min"  # "min", or "schedule NAME min"
    max_source: str = "max"
    note: str | None = None  # set when a schedule's min forced the max up


def allowed_step(limit: StepLimit | None, current: int) -> int | None:
    """The largest change `limit` allows from `current` (at least 1), or None if unlimited.

    With both count and percent set the larger wins; a percentage rounds up, and an
    allowance of at least 1 keeps a small target (or one at 0) from being stuck.
    """
    if limit is None or (limit.count is None and limit.percent is None):
        return None
    by_percent = ceil_count(current * limit.percent / 100) if limit.percent else 0
    return max(limit.count or 0, by_percent, 1)


def limit(limits: Limits, count: int, current: int) -> tuple[int, list[str]]:
    """`count` moved no further from `current` than the step limit of its direction."""
    if count > current:
        step = allowed_step(limits.up, current)
        if step is not None and count - current > step:
            return current + step, [f"limit up +{step}: {count} capped to {current + step}"]
    elif count < current:
        step = allowed_step(limits.down, current)
        if step is not None and current - count > step:
            return current - step, [f"limit down -{step}: {count} capped to {current - step}"]
    return count, []


def effective_bounds(policy: Policy, now: datetime) -> Bounds:
    """The policy's min/max, replaced by those of the schedules active at `now`.

    With several active schedules the highest min and the highest max among those that
    set them apply. A min above the max raises the max to it, since a floor set for an
    event must not be silently undone by an unrelated ceiling.
    """
    if not policy.schedules and policy.min <= policy.max:
        return _plain(policy.min, policy.max)  # no schedule: what the code below gives
    windows = active(policy.schedules, now)
    low, low_source = _highest(windows, "min", policy.min)
    high, high_source = _highest(windows, "max", policy.max)
    if low <= high:
        return Bounds(low, high, low_source, high_source)
    note = f"{low_source} {low} is above {high_source} {high}: max raised to {low}"
    return Bounds(low, low, low_source, low_source, note)


@functools.lru_cache(maxsize=256)
def _plain(low: int, high: int) -> Bounds:
    """The bounds of a policy without schedules (immutable, so one per min/max will do)."""
    return Bounds(low, high)


def bound(bounds: Bounds, count: int) -> tuple[int, list[str]]:
    """`count` clamped into `bounds`, with a reason for the clamp (and any min/max clash)."""
    reasons = [bounds.note] if bounds.note else []
    if count < bounds.min:
        reasons.append(f"{bounds.min_source} {bounds.min}: {count} → {bounds.min}")
        return bounds.min, reasons
    if count > bounds.max:
        reasons.append(f"{bounds.max_source} {bounds.max}: {count} → {bounds.max}")
        return bounds.max, reasons
    return count, reasons


def target_bound(status: TargetStatus, count: int) -> tuple[int, list[str]]:
    """`count` clamped into the target's own bounds (e.g. an ASG's MinSize/MaxSize).

    The target would refuse anything outside them, so they win over the policy's.
    """
    if status.max_size is not None and count > status.max_size:
        return status.max_size, [f"target max size {status.max_size}: {count} → {status.max_size}"]
    if status.min_size is not None and count < status.min_size:
        return status.min_size, [f"target min size {status.min_size}: {count} → {status.min_size}"]
    return count, []


def _highest(windows: Sequence[Schedule], field: str, default: int) -> tuple[int, str]:
    """The highest `field` ("min"/"max") set by `windows` and its source, else `default`."""
    best: tuple[int, str] | None = None
    for schedule in windows:
        value: int | None = getattr(schedule, field)
        if value is not None and (best is None or value > best[0]):
            best = (value, f"schedule {schedule.name} {field}")
    return best if best is not None else (default, field)
