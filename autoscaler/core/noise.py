"""The forecast's noise band: a scale-out waits while the value stays within its own noise.

A check's value moves by its noise from one evaluation to the next: a request rate read
every 15 s swings by a fifth around its daily curve at night. A dead band of a few percent
(`tolerance`) lets every such swing above the current count's capacity buy an instance,
and the scale-down stabilization window then keeps the highest of those swings for its
whole length, so noisy load pays for the peaks of its noise all day. The forecast knows how
large that noise is: its recent error (mean |forecast − value| / mean value at its lead)
is what it could not predict. With `forecast.noise_band` set, a scale-out waits while the
value is within that error, at most `noise_band`, above what the current count carries.
On smooth load the error is small and the band is the tolerance again.

Extension of the policy format (docs/POLICY_SPEC.md, "Noise band"). Safe by construction:
the band only ever keeps the current count where the strategy asked for more; it never
asks for less than the current count, it is off without a usable forecast (too little
history, a recent error above `max_error`, `forecast_only`), and a scale-in is untouched.
"""

from __future__ import annotations

import math

from autoscaler.core.model import Check, ForecastReading, Strategy
from autoscaler.core.reasons import later
from autoscaler.core.strategies import StrategyResult, fmt_number

# Float slack, as in `strategies`: a value exactly at the band's edge is within it.
_EPSILON = 1e-9


def band(check: Check, forecast: ForecastReading | None) -> float | None:
    """The noise band of `check` now: min(noise_band, the forecast's recent error), or None
    when it does not apply (off, no usable forecast, or no wider than the tolerance)."""
    settings = check.forecast
    if settings is None or not settings.noise_band > 0 or forecast is None or forecast.only:
        return None
    if forecast.value is None or not math.isfinite(forecast.value):
        return None
    error = forecast.error
    if error is None or not math.isfinite(error) or error < 0:
        return None
    width = min(settings.noise_band, error)
    return width if width > check.tolerance else None


def carried(check: Check, current: int) -> float | None:
    """What `current` instances carry of the check's value at its target (None: the
    strategy has no such notion, and no band)."""
    if check.strategy is Strategy.PER_INSTANCE:
        if check.target is None or not check.target > 0:
            return None
        return check.target * current
    if check.strategy is Strategy.PASS_THROUGH:
        return float(current)
    return None


def within_noise(
    check: Check,
    value: float,
    current: int,
    forecast: ForecastReading | None,
    result: StrategyResult,
) -> StrategyResult:
    """`result` (what the strategy asked for `value`), or the current count when that is a
    scale-out by no more than the forecast's noise band (see the module docstring).

    `value` is what the strategy was given (max(observed, forecast)); `current` the count.
    """
    if current <= 0 or result.count <= current:
        return result
    width = band(check, forecast)
    if width is None:
        return result
    capacity = carried(check, current)
    if capacity is None or not capacity > 0:
        return result
    above = value / capacity - 1
    if above > width + _EPSILON:
        return result
    settings = check.forecast
    assert settings is not None
    assert forecast is not None
    assert forecast.error is not None
    reason = later(
        _within_text,
        check,
        (value, above, width, forecast.error),
        current,
        result.count,
    )
    return StrategyResult(current, reason)


def _within_text(
    check: Check, shares: tuple[float, float, float, float], current: int, asked: int
) -> str:
    value, above, width, error = shares
    assert check.forecast is not None
    return (
        f"{check.name}: {fmt_number(value)} is {above * 100:.0f} % above what {current} "
        f"carry, within the forecast's noise band of {width * 100:.0f} % (recent error "
        f"{error * 100:.0f} %, at most {fmt_number(check.forecast.noise_band * 100)} "
        f"%) → {current} instead of {asked}"
    )
