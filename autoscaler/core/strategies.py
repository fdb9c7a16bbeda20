"""Strategies: one check's value and the current count -> that check's desired count.

Each strategy is a small pure function, so a new one is one function plus one line in
`_STRATEGIES`. Every result carries a short reason (`p95-latency: 0.41 / 0.25 → 9`) that
the decision core copies into the decision, so users can see how each number came about.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from autoscaler.core.model import Change, Check, Step, Strategy
from autoscaler.core.ranges import MAX_COUNT

# Float arithmetic lands a hair above whole numbers (0.3 / 0.1 = 3.0000000000000004);
# without this slack, ceil would ask for one instance too many.
_EPSILON = 1e-9


@dataclass(frozen=True)
class StrategyResult:
    """The count one check asks for, and a short human-readable reason."""

    count: int
    reason: str


def desired(check: Check, value: float | None, current: int) -> StrategyResult:
    """The count `check` asks for, given its query's finite `value` and the current count.

    `value` is ignored by `fixed` and required by every other strategy. Raises ValueError
    when the check lacks a setting its strategy needs (validation normally prevents this)
    or when `value` is missing or not finite.
    """
    if check.strategy is Strategy.FIXED:
        return _fixed(check)
    if value is None or not math.isfinite(value):
        raise ValueError(f"check {check.name!r} needs a finite value, got {value!r}")
    return _STRATEGIES[check.strategy](check, value, current)


def ceil_count(x: float) -> int:
    """`ceil(x)` as a count: float noise just above a whole number is ignored, never below 0,
    never above `MAX_COUNT` (a policy's max is at most that, so bounds give the same count).

    Raises ValueError for NaN (e.g. 0 × ∞ from extreme inputs), which fails the check.
    """
    if math.isnan(x):
        raise ValueError("the computed count is not a number")
    if x >= MAX_COUNT:
        return MAX_COUNT
    return max(0, math.ceil(x - _EPSILON))


def fmt_number(x: float) -> str:
    """A compact rendering of a metric value for reasons: `9`, `0.41`, `1234.5`, `1.2e-05`."""
    if not math.isfinite(x):
        return str(x)
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    if abs(x) >= 1000:
        return f"{x:.1f}"
    return f"{x:.4g}"


def _target_value(check: Check, value: float, current: int) -> StrategyResult:
    target = _positive_target(check)
    shown = f"{check.name}: {fmt_number(value)} / {fmt_number(target)}"
    ratio = value / target
    if current == 0:
        count = ceil_count(ratio)
        return StrategyResult(count, f"{shown} from 0 → {count}")
    if abs(ratio - 1) <= check.tolerance + _EPSILON:
        tolerance = f"±{fmt_number(check.tolerance * 100)}%"
        return StrategyResult(current, f"{shown} within tolerance {tolerance} → {current}")
    count = ceil_count(current * ratio)
    return StrategyResult(count, f"{shown} → {count}")


def _per_instance(check: Check, value: float, current: int) -> StrategyResult:
    target = _positive_target(check)
    shown = f"{check.name}: {fmt_number(value)} / {fmt_number(target)} per instance"
    # The dead band (extension): no change while the current count carries the value within
    # the tolerance of its target, as target-value does; from 0 there is nothing to compare.
    if current > 0 and check.tolerance > 0:
        ratio = value / (target * current)
        if abs(ratio - 1) <= check.tolerance + _EPSILON:
            tolerance = f"±{fmt_number(check.tolerance * 100)}%"
            return StrategyResult(current, f"{shown} within tolerance {tolerance} → {current}")
    count = ceil_count(value / target)
    return StrategyResult(count, f"{shown} → {count}")


def _threshold(check: Check, value: float, current: int) -> StrategyResult:
    shown = f"{check.name}: {fmt_number(value)}"
    for step in check.steps:
        if _matches(step, value):
            count = apply_change(step.change, current)
            return StrategyResult(count, f"{shown} {_condition(step)}: {step.change} → {count}")
    return StrategyResult(current, f"{shown} no step matched → {current}")


def _fixed(check: Check) -> StrategyResult:
    if check.count is None or check.count < 0:
        raise ValueError(f"fixed check {check.name!r} needs a count >= 0")
    return StrategyResult(check.count, f"{check.name}: fixed → {check.count}")


def _pass_through(check: Check, value: float, current: int) -> StrategyResult:
    count = ceil_count(value)
    return StrategyResult(count, f"{check.name}: {fmt_number(value)} → {count}")


_STRATEGIES: dict[Strategy, Callable[[Check, float, int], StrategyResult]] = {
    Strategy.TARGET_VALUE: _target_value,
    Strategy.PER_INSTANCE: _per_instance,
    Strategy.THRESHOLD: _threshold,
    Strategy.PASS_THROUGH: _pass_through,
}


def apply_change(change: Change, current: int) -> int:
    """`current` moved by a threshold step's change; a percentage's magnitude rounds up.

    Rounding up means `-10%` of 3 still removes one instance and `+50%` of 1 adds one,
    so a matching step always moves the count. The result stays within 0..MAX_COUNT.
    """
    magnitude = abs(change.amount)
    if change.percent:
        magnitude = current * magnitude / 100
    step = ceil_count(magnitude)
    moved = current + step if change.amount >= 0 else current - step
    return max(0, min(MAX_COUNT, moved))


def _matches(step: Step, value: float) -> bool:
    """True when `value` is above `step.above` and below `step.below`, where they are set."""
    if step.above is not None and not value > step.above:
        return False
    return step.below is None or value < step.below


def _condition(step: Step) -> str:
    parts = []
    if step.above is not None:
        parts.append(f"> {fmt_number(step.above)}")
    if step.below is not None:
        parts.append(f"< {fmt_number(step.below)}")
    return " and ".join(parts) or "always"


def _positive_target(check: Check) -> float:
    if check.target is None or not check.target > 0:
        raise ValueError(f"check {check.name!r} ({check.strategy}) needs a target > 0")
    return check.target
