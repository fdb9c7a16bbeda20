"""Step 2 of the decision: each check's value through its strategy -> its desired count.

A failed check (an error, a missing or non-finite value, checks that share a name, a check
given different answers) gets its reason and never counts as zero; a forecast gives the
strategy max(observed, forecast); the anomaly guard holds what an implausible value asks
for. Apart from the pipeline (`decision`) because it is the one step that reads each
check on its own: what to do with all of them together is the pipeline's.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from autoscaler.core.durations import format_duration
from autoscaler.core.frozen import built
from autoscaler.core.model import (
    AnomalyGuard,
    AnomalyReading,
    Check,
    CheckResult,
    ForecastReading,
    Observation,
    Policy,
)
from autoscaler.core.names import counted
from autoscaler.core.noise import within_noise
from autoscaler.core.reasons import later
from autoscaler.core.strategies import (
    STRATEGIES,
    fmt_agreeing,
    fmt_number,
    needs_query,
    reason_part,
)
from autoscaler.core.strategies import desired as strategy_desired

NOT_EVALUATED = "not evaluated"
_CHECK_RESULT = built(CheckResult)  # `CheckResult(...)`, cheaper: one per check evaluated


@dataclass(slots=True)  # never changed once made; not frozen, as that costs
class Evaluated:
    """One check's result plus its reasons (None when the check failed).

    `blocks_scale_in` says why this check, though it has a value, forbids a scale-in (an
    implausible value); `count_independent` is the check's strategy's.
    """

    result: CheckResult
    reason: str | None
    notes: tuple[str, ...] = ()
    blocks_scale_in: str | None = None
    count_independent: bool = False


def evaluate_checks(
    policy: Policy, observations: Sequence[Observation], current: int | None
) -> list[Evaluated]:
    """Every check in policy order, matched with its observation by name (`current` None:
    unknown, see `without_target`)."""
    by_name: dict[str, Observation] = {}
    answers: dict[str, set[Observation]] | None = None  # names given different observations
    for observation in observations:
        seen = by_name.setdefault(observation.check, observation)
        if seen is not observation and seen != observation:
            answers = answers if answers is not None else {}
            answers.setdefault(observation.check, {seen}).add(observation)
    guard = policy.anomaly if policy.anomaly is not None and policy.anomaly.enabled else None
    checks = policy.checks
    if answers is not None or (len(checks) > 1 and len({c.name for c in checks}) < len(checks)):
        return _ambiguous(checks, by_name, answers or {}, current, guard)
    return [_evaluate(check, by_name.get(check.name), current, guard) for check in checks]


def _ambiguous(
    checks: Sequence[Check],
    by_name: dict[str, Observation],
    answers: dict[str, set[Observation]],
    current: int | None,
    guard: AnomalyGuard | None,
) -> list[Evaluated]:
    """Every check, failed where its value cannot be told: values are matched with checks
    by name, so checks sharing a name (the loader refuses such a policy; one built
    otherwise must never be read with another check's value) and a check given different
    observations (`answers`: never picked from, the first no more than the last) fail."""
    names = [c.name for c in checks]
    evaluated = []
    for check in checks:
        shared = names.count(check.name)
        if shared > 1:
            error = f"{shared} checks are named {check.name!r}: their values cannot be told apart"
            evaluated.append(Evaluated(failed_result(check, error), None))
        elif check.name in answers and needs_query(check):
            error = (
                f"{len(answers[check.name])} different answers for check {check.name!r}: "
                "which one is its value cannot be told"
            )
            evaluated.append(Evaluated(failed_result(check, error), None))
        else:
            evaluated.append(_evaluate(check, by_name.get(check.name), current, guard))
    return evaluated


def _evaluate(
    check: Check, observation: Observation | None, current: int | None, guard: AnomalyGuard | None
) -> Evaluated:
    """One check's desired count, or the reason it failed (`current` None: unknown)."""
    value: float | None = None
    forecast = anomaly = None
    spec = STRATEGIES[check.strategy]  # (`needs_query(check)` is `spec.query`)
    if spec.query:
        if observation is None:
            return Evaluated(failed_result(check, NOT_EVALUATED), None)
        forecast = observation.forecast if check.forecast is not None else None
        anomaly = observation.anomaly if guard is not None else None
        error = _unusable(observation)
        if error is not None:
            return Evaluated(failed_result(check, error, forecast=forecast), None)
        value = observation.value
    notes: tuple[str, ...] = ()  # (a tuple from the start: most checks have none or one)
    used = value
    if value is not None and forecast is not None:
        used, note = _with_forecast(check, value, forecast)
        notes = (note,)
    try:
        result = strategy_desired(check, used, current)
        if forecast is not None and current and used is not None:  # extension: `noise`
            result = within_noise(check, used, current, forecast, result)
        count, reason, blocks = result.count, reason_part(result), None
        # Without the current count (a preview) nothing is capped relative to it.
        if (
            guard is not None
            and anomaly is not None
            and anomaly.implausible
            and current is not None
        ):
            assert value is not None
            assert used is not None
            count, reason, blocks = _guarded(
                check, current, count, value=value, used=used, anomaly=anomaly, guard=guard
            )
            if reason != result.reason:
                notes = (*notes, result.reason)
    except (ValueError, ArithmeticError) as exc:
        failed = failed_result(check, str(exc), value, forecast=forecast)
        return Evaluated(failed, None)
    check_result = _CHECK_RESULT(
        name=check.name,
        query=check.query,
        value=value,
        desired=count,
        error=None,
        forecast=forecast,
        anomaly=anomaly,
    )
    return Evaluated(check_result, reason, notes, blocks, not spec.current)


def _with_forecast(check: Check, value: float, forecast: ForecastReading) -> tuple[float, str]:
    """The value the strategy gets, max(observed, forecast), and a reason that shows both
    (made when read)."""
    used, ahead = value, forecast.value
    if ahead is not None and math.isfinite(ahead) and not forecast.only and ahead > value:
        used = ahead
    return used, later(_forecast_text, check.name, value, forecast)


def _forecast_text(name: str, value: float, forecast: ForecastReading) -> str:
    if forecast.value is None:
        return f"{name}: no forecast ({forecast.reason}): reactive"
    if not math.isfinite(forecast.value):  # an overflowed model: unusable, like a NaN value
        return f"{name}: forecast {forecast.value} is not a finite number: reactive"
    ahead = forecast.value
    if forecast.only:
        ahead_shown = fmt_number(ahead)
    else:  # both numbers with the digits that show which one is acted on
        above = ahead > value
        ahead_shown, observed = fmt_agreeing([ahead, value], lambda s: (s[0] > s[1]) == above)
    shown = f"{name}: forecast {ahead_shown} in {_lead(forecast.lead)}"
    if forecast.error is not None:
        shown += f" (recent error {forecast.error * 100:.0f} %)"
    if forecast.only:
        return f"{shown}, forecast only: not acted on"
    if ahead > value:
        return f"{shown} above the observed {observed}: acting on it"
    return f"{shown}, not above the observed {observed}"


@functools.lru_cache(maxsize=64)
def _lead(lead: timedelta) -> str:
    return format_duration(lead)


def _guarded(
    check: Check,
    current: int,
    count: int,
    *,
    value: float,
    used: float,
    anomaly: AnomalyReading,
    guard: AnomalyGuard,
) -> tuple[int, str, str | None]:
    """The count, reason and scale-in block of a check whose value is implausible.

    An implausible value never scales in (the block); a scale-out it asks for that adds
    more than `guard.large_percent` % of the current count needs `guard.confirm` implausible
    evaluations in a row, and until then the check asks only for what the largest
    plausible value needs (never less than the current count).
    """
    shown = (
        f"{check.name}: {fmt_number(value)} is implausible against its last "
        f"{format_duration(guard.window)} (robust z {anomaly.z:+.1f}, plausible "
        f"{fmt_number(anomaly.low)} to {fmt_number(anomaly.high)})"
    )
    block = f"{shown}: no scale-in on it"
    large = count - current > max(1.0, current * guard.large_percent / 100)
    if not large:
        return count, shown + f" → {count}", block
    if anomaly.streak >= guard.confirm:
        streak = counted(anomaly.streak, "evaluation")
        confirmed = f"{shown}, {streak} in a row: scale-out confirmed → {count}"
        return count, confirmed, block
    # A forecast above the value is learned from history, no anomaly: it keeps its ask.
    # Else the nearest plausible value: a value implausibly *low* can ask for a large
    # scale-out too (a threshold step `below`, an inverse metric), and min() alone let it.
    plausible = used if used > value else max(anomaly.low, min(value, anomaly.high))
    capped = min(count, max(current, strategy_desired(check, plausible, current).count))
    held = (
        f"{shown}: a scale-out of more than {guard.large_percent:g} % needs {guard.confirm} "
        f"such evaluations in a row ({anomaly.streak} so far) → {capped} instead of {count}"
    )
    return capped, held, block


def _unusable(observation: Observation) -> str | None:
    """Why an observation gives no usable value, or None when it holds a finite number."""
    if observation.error is not None:
        return observation.error
    if observation.value is None:
        return "no value"
    if not math.isfinite(observation.value):
        return f"value {observation.value} is not a finite number"
    return None


def failed_result(
    check: Check,
    error: str,
    value: float | None = None,
    *,
    forecast: ForecastReading | None = None,
) -> CheckResult:
    return CheckResult(
        name=check.name,
        query=check.query,
        value=value,
        desired=None,
        error=error,
        forecast=forecast,
    )
