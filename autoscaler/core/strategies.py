"""Strategies: one check's value and the current count -> that check's desired count.

Each strategy is a small pure function, registered in `STRATEGIES` with the traits the rest
of the controller reads (does it run a query, does its count depend on the current count,
which `Check` settings does it use), so a new one is one function plus one entry there
(and a check model in `policy.schema`; see the README's Development section). Every
result carries a short reason (`p95-latency: 0.41 / 0.25 → 9`) that the decision core
copies into the decision, so users can see how each number came about.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from autoscaler.core.frozen import fast_init
from autoscaler.core.model import Change, Check, Step, Strategy
from autoscaler.core.ranges import MAX_COUNT
from autoscaler.core.reasons import LATER, later, rendered_on_read, text

# Float arithmetic lands a hair above whole numbers (0.3 / 0.1 = 3.0000000000000004);
# without this slack, ceil would ask for one instance too many.
_EPSILON = 1e-9


@fast_init
@dataclass(frozen=True, slots=True)
class StrategyResult:
    """The count one check asks for, and a short human-readable reason.

    The reason may be given as `reasons.later(render, ...)`: it is then made when first
    read (`reason_part` hands it on to a decision unmade).
    """

    count: int
    reason: str


_REASON = rendered_on_read(StrategyResult, "reason", text, LATER)


def reason_part(result: StrategyResult) -> str:
    """The result's reason as given: its text, or the `later` one, not made here (typed as
    its text, as `later` is)."""
    part: str = _REASON.stored(result)
    return part


@dataclass(frozen=True, kw_only=True)
class StrategySpec:
    """One strategy as the rest of the controller sees it.

    `query`: it runs a PromQL query, whose value `compute` receives (else the value is 0
    and ignored). `current`: its count depends on the current count, so it gives none
    while that is unknown (a `plan` whose target cannot be read); one without (a
    count-independent strategy; per-instance's dead band aside) may skip the cooldown up
    while its value keeps rising (`decision`, step 6). `settings`: the `Check`
    fields it reads besides `name`, `strategy` and `query`; the policy format's check
    model for the strategy has exactly these keys (tests/unit/test_registries.py).
    """

    compute: Callable[[Check, float, int], StrategyResult]
    query: bool = True
    current: bool = False
    settings: frozenset[str] = frozenset()


def desired(check: Check, value: float | None, current: int | None) -> StrategyResult:
    """The count `check` asks for, given its query's finite `value` and the current count.

    `value` is ignored by strategies without a query (`fixed`) and required by every other.
    `current` is None when unknown: strategies whose count depends on it then give none.
    Raises ValueError when the check lacks a setting its strategy needs (validation
    normally prevents this), when `value` is missing or not finite, or when the current
    count is needed and unknown.
    """
    spec = STRATEGIES[check.strategy]
    if spec.query and (value is None or not math.isfinite(value)):
        raise ValueError(f"check {check.name!r} needs a finite value, got {value!r}")
    if current is None and spec.current:
        raise ValueError(f"{check.strategy} needs the current count, which is unknown")
    return spec.compute(check, value if spec.query and value is not None else 0.0, current or 0)


def needs_query(check: Check) -> bool:
    """Whether `check` runs a query (and fails without an observation)."""
    return STRATEGIES[check.strategy].query


def ceil_count(x: float) -> int:
    """`ceil(x)` as a count: float noise just above a whole number is ignored, never below 0,
    never above `MAX_COUNT` (a policy's max is at most that, so bounds give the same count).

    Raises ValueError for NaN (e.g. 0 × ∞ from extreme inputs), which fails the check.
    """
    if math.isnan(x):
        raise ValueError("the computed count is not a number")
    if x >= MAX_COUNT:
        return MAX_COUNT
    count = math.ceil(x - _EPSILON)
    return count if count > 0 else 0  # (not `max(0, ...)`: a call less, in every evaluation)


def fmt_number(x: float) -> str:
    """A compact rendering of a metric value for reasons: `9`, `0.41`, `1234.5`, `1.2e-05`
    (`1e+300`: an exponent from 1e15 up, never hundreds of digits)."""
    return _digits(x, 4) if math.isfinite(x) else str(x)


def fmt_agreeing(numbers: Sequence[float], agrees: Callable[[Sequence[float]], bool]) -> list[str]:
    """`numbers` as a reason shows them: each `fmt_number`, then all with more significant
    digits together while `agrees(shown)` is false, up to their exact values.

    A reason is read as the arithmetic that made the decision, so the numbers it shows must
    bear it out: `agrees` redoes that arithmetic on the numbers as shown (a value against
    a step's bound, a value over a target, a forecast against the observed value) and says
    whether it decides as the real numbers did. So 0.050001 against a step `above: 0.05`
    shows as `0.050001 > 0.05`, never `0.05 > 0.05`, and 200.04 per instance over a target
    of 40 as `200.04 / 40 → 6`. Only reasons pay for this, when they are read.
    """
    shown = [fmt_number(x) for x in numbers]
    if not all(math.isfinite(x) for x in numbers):
        return shown
    digits = 5
    while not _agree(agrees, shown):
        if digits > 17:
            return [_exact(x) for x in numbers]
        shown = [_digits(x, digits) for x in numbers]
        digits += 1
    return shown


def _agree(agrees: Callable[[Sequence[float]], bool], shown: Sequence[str]) -> bool:
    """`agrees` of the numbers as `shown`; False when one reads back as no finite number
    (`1.798e+308` is past the largest float) or the arithmetic fails on them: more digits
    then, up to the exact ones, on which it succeeded."""
    numbers = [float(text) for text in shown]
    if not all(math.isfinite(x) for x in numbers):
        return False
    try:
        return agrees(numbers)
    except (ValueError, ArithmeticError):
        return False


def fmt_deciding(x: float, decides: Callable[[float], object]) -> str:
    """`fmt_agreeing` of one number: shown with the digits that make `decides` give what it
    gives for `x` itself."""
    want = decides(x)
    (shown,) = fmt_agreeing([x], lambda v: decides(v[0]) == want)
    return shown


def _digits(x: float, digits: int) -> str:
    """Finite `x` with `digits` significant digits: whole numbers as they are, and from 1000
    to 1e15 written out (no exponent) with at least one decimal."""
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    if 1000 <= abs(x) < 1e15:
        return f"{x:.{max(1, digits - len(str(int(abs(x)))))}f}"
    return f"{x:.{digits}g}"


def _exact(x: float) -> str:
    """The shortest text that reads back as `x` itself (`40`, not `40.0`)."""
    return str(int(x)) if x == int(x) and abs(x) < 1e15 else repr(x)


# Each strategy's reason is made when read (`reasons.later`): a replay reads few of them.


def _target_value(check: Check, value: float, current: int) -> StrategyResult:
    count, within = _target_value_count(check, value, current)
    if within:
        return StrategyResult(count, later(_within_text, check, value, "", count, current))
    what = " from 0" if current == 0 else ""
    return StrategyResult(count, later(_target_text, check, value, what, count, current))


def _target_value_count(check: Check, value: float, current: int) -> tuple[int, bool]:
    """Target-value's count, and whether the value is within the tolerance."""
    ratio = value / _positive_target(check)
    if current == 0:
        return ceil_count(ratio), False
    if abs(ratio - 1) <= check.tolerance + _EPSILON:
        return current, True
    return ceil_count(current * ratio), False


def _per_instance(check: Check, value: float, current: int) -> StrategyResult:
    count, within = _per_instance_count(check, value, current)
    if within:
        return StrategyResult(count, later(_within_text, check, value, _PER, count, current))
    return StrategyResult(count, later(_target_text, check, value, _PER, count, current))


def _per_instance_count(check: Check, value: float, current: int) -> tuple[int, bool]:
    """Per-instance's count, and whether the value is within the tolerance."""
    target = _positive_target(check)
    # The dead band (extension): no change while the current count carries the value within
    # the tolerance of its target, as target-value does; from 0 there is nothing to compare.
    if current > 0 and check.tolerance > 0:
        ratio = value / (target * current)
        if abs(ratio - 1) <= check.tolerance + _EPSILON:
            return current, True
    return ceil_count(value / target), False


_PER = " per instance"


def _target_text(check: Check, value: float, what: str, count: int, current: int) -> str:
    shown, target = _over_target(check, value, current)
    return f"{check.name}: {shown} / {target}{what} → {count}"


def _within_text(check: Check, value: float, what: str, count: int, current: int) -> str:
    shown, target, tolerance = _over_target(check, value, current, tolerance=True)
    return f"{check.name}: {shown} / {target}{what} within tolerance ±{tolerance}% → {count}"


def _over_target(check: Check, value: float, current: int, *, tolerance: bool = False) -> list[str]:
    """The check's value and target (and, with `tolerance`, its tolerance in percent) as
    its reason shows them: with the digits that give, redone on the shown numbers, its
    count and whether it is within the tolerance (whose reason reads otherwise)."""
    count = _per_instance_count if check.strategy is Strategy.PER_INSTANCE else _target_value_count
    want = count(check, value, current)
    numbers = [value, _positive_target(check)]
    if tolerance:
        numbers.append(check.tolerance * 100)

    def agrees(shown: Sequence[float]) -> bool:
        v, target, *percent = shown
        seen = replace(check, target=target)
        if percent:
            seen = replace(seen, tolerance=percent[0] / 100)
        return target > 0 and count(seen, v, current) == want

    return fmt_agreeing(numbers, agrees)


def _threshold(check: Check, value: float, current: int) -> StrategyResult:
    for step in check.steps:
        if _matches(step, value):
            count = apply_change(step.change, current)
            return StrategyResult(count, later(_step_text, check, value, step, count))
    return StrategyResult(current, later(_no_step_text, check, value, current))


def _step_text(check: Check, value: float, step: Step, count: int) -> str:
    bounds = [b for b in (step.above, step.below) if b is not None]
    index = _first_match(check.steps, value)

    def agrees(shown: Sequence[float]) -> bool:  # the shown value meets the shown bounds
        v, *shown_bounds = shown
        return _first_match(check.steps, v) == index and _matches(_bounded(step, shown_bounds), v)

    shown, *bounds_shown = fmt_agreeing([value, *bounds], agrees)
    return f"{check.name}: {shown} {_condition(step, bounds_shown)}: {step.change} → {count}"


def _no_step_text(check: Check, value: float, count: int) -> str:
    shown = fmt_deciding(value, functools.partial(_first_match, check.steps))
    return f"{check.name}: {shown} no step matched → {count}"


def _bounded(step: Step, bounds: Sequence[float]) -> Step:
    """`step` with its bounds (`above`, then `below`, those it has) replaced by `bounds`."""
    rest = iter(bounds)
    above = None if step.above is None else next(rest)
    below = None if step.below is None else next(rest)
    return replace(step, above=above, below=below)


def _first_match(steps: tuple[Step, ...], value: float) -> int | None:
    """The index of the first step `value` matches, or None."""
    for index, step in enumerate(steps):
        if _matches(step, value):
            return index
    return None


def _fixed(check: Check, value: float, current: int) -> StrategyResult:
    if check.count is None or check.count < 0:
        raise ValueError(f"fixed check {check.name!r} needs a count >= 0")
    return StrategyResult(check.count, f"{check.name}: fixed → {check.count}")


def _pass_through(check: Check, value: float, current: int) -> StrategyResult:
    count = ceil_count(value)
    return StrategyResult(count, later(_pass_text, check.name, value, count))


def _pass_text(name: str, value: float, count: int) -> str:
    return f"{name}: {fmt_deciding(value, ceil_count)} → {count}"


# Every member of `Strategy`, checked below at import: a strategy without an entry fails
# at once rather than at its first evaluation.
STRATEGIES: dict[Strategy, StrategySpec] = {
    Strategy.TARGET_VALUE: StrategySpec(
        compute=_target_value, current=True, settings=frozenset({"target", "tolerance"})
    ),
    Strategy.PER_INSTANCE: StrategySpec(
        compute=_per_instance, settings=frozenset({"target", "tolerance", "forecast"})
    ),
    Strategy.THRESHOLD: StrategySpec(
        compute=_threshold, current=True, settings=frozenset({"steps"})
    ),
    Strategy.FIXED: StrategySpec(compute=_fixed, query=False, settings=frozenset({"count"})),
    Strategy.PASS_THROUGH: StrategySpec(compute=_pass_through, settings=frozenset({"forecast"})),
}
_missing = [s.value for s in Strategy if s not in STRATEGIES]
if _missing:  # pragma: no cover - a programming error, caught by the first test run
    raise ImportError(f"strategies without an entry in STRATEGIES: {', '.join(_missing)}")


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


def _condition(step: Step, shown: Sequence[str]) -> str:
    """`> 0.05 and < 0.1`: the step's bounds as `shown` (above, then below, those it has)."""
    rest = iter(shown)
    parts = []
    if step.above is not None:
        parts.append(f"> {next(rest)}")
    if step.below is not None:
        parts.append(f"< {next(rest)}")
    return " and ".join(parts) or "always"


def _positive_target(check: Check) -> float:
    if check.target is None or not check.target > 0:
        raise ValueError(f"check {check.name!r} ({check.strategy}) needs a target > 0")
    return check.target
