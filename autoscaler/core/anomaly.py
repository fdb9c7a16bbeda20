"""Is a check's value plausible against what it read lately? The anomaly guard's judgement.

The robust z-score of a value against a window of recent values is (value − median) /
(1.4826 × MAD), MAD being the median absolute deviation: unlike a mean and a standard
deviation, one wild value in the window barely moves either, so a broken exporter or a
counter reset stands out instead of hiding itself. A flat window has no spread at all, so
the spread is at least `MIN_RELATIVE_SPREAD` of the median (and a tiny absolute floor):
a step of a few percent on a steady metric is never "implausible".

What the decision does with an implausible value (never scale in on it; confirm a large
scale-out over several evaluations) is in `checks` and `missing_data`.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable, Sequence

from autoscaler.core.model import AnomalyGuard, AnomalyReading

# Fewer values than this in the window: too little to judge, the value is taken as it is.
MIN_SAMPLES = 10
MIN_RELATIVE_SPREAD = 0.05
_MAD_TO_SIGMA = 1.4826  # MAD × this estimates the standard deviation of normal data
_ABSOLUTE_SPREAD = 1e-9


def assess(
    window: Sequence[float], value: float, guard: AnomalyGuard, streak: int
) -> AnomalyReading | None:
    """How `value` compares with the finite values of `window`; None when too few to judge.

    `streak` is how many evaluations in a row were implausible before this one; the
    reading's `streak` includes this one (0 when this value is plausible).
    """
    values = [v for v in window if math.isfinite(v)]
    if len(values) < MIN_SAMPLES or not math.isfinite(value):
        return None
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    spread = max(_MAD_TO_SIGMA * mad, MIN_RELATIVE_SPREAD * abs(median), _ABSOLUTE_SPREAD)
    z = (value - median) / spread
    implausible = abs(z) > guard.z
    return AnomalyReading(
        z=z,
        low=median - guard.z * spread,
        high=median + guard.z * spread,
        implausible=implausible,
        streak=streak + 1 if implausible else 0,
        samples=len(values),
    )


def screened(
    points: Iterable[tuple[float, float]],
    guard: AnomalyGuard,
    before: Iterable[tuple[float, float]] = (),
) -> list[tuple[float, float]]:
    """`points` (epoch seconds, value; in time order) with each value the guard would not
    let the forecast learn replaced by NaN (a gap): judged as a live value is, against the
    values of the `guard.window` before it (`before`: those already judged), and learned
    once `guard.confirm` implausible ones come in a row (each point counts as one
    evaluation). History read back from Prometheus goes through this, so the forecast
    never learns from it a spike the guard refused when it was live."""
    points = list(points)
    first = points[0][0] if points else math.inf  # what `before` holds from then on is later
    span = guard.window.total_seconds()
    window: deque[tuple[float, float]] = deque(
        (t, v) for t, v in before if t < first and math.isfinite(v)
    )
    kept: list[tuple[float, float]] = []
    streak = 0
    for t, value in points:
        while window and window[0][0] <= t - span:
            window.popleft()
        reading = assess([v for _, v in window], value, guard, streak)
        streak = reading.streak if reading is not None else 0
        refused = reading is not None and reading.implausible and streak < guard.confirm
        kept.append((t, math.nan if refused else value))
        if math.isfinite(value):
            window.append((t, value))
    return kept
