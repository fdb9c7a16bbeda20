"""Held-out traces: load the recommended policy was never tuned on, to report beside the
second halves of the shared traces.

Two kinds, each cut into history (what Prometheus would hold, read by forecasts) and the
evaluated part (what is scored):

- Other time windows of the Wikipedia hourly file, away from the 2011-12 stretch whose
  first half the settings were chosen on: March 2009 and March 2013 (after the level shift
  of November 2012), four weeks each, two of history and two scored.
- Synthetic load generated with fixed seeds (the same traces on every run), shaped like
  what the shared traces do not cover in the same way:
  `synthetic web`: three weeks of per-minute web traffic (diurnal and weekly cycle, slow
  growth, Poisson noise) with unannounced flash crowds; `synthetic batch`: two weeks at
  10 s of a steady service plus scheduled jobs at fixed times of day (start jittered by
  minutes, a fifth of them skipped); `synthetic bursty`: two hours of per-second arrivals
  switching between quiet and bursts at random (a Markov-modulated Poisson process).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from autoscaler.replay.trace import Trace, read_trace

DAY = 86_400.0
WIKIPEDIA = "wikipedia_all_projects_hourly_2008-2013.csv"
# Offsets in the Wikipedia file (t = 0 is 2008-05-17 10:00 UTC).
MARCH_2009 = 24_675_600.0  # 2009-03-01 00:00 UTC
MARCH_2013 = 150_300_000.0  # 2013-03-01 00:00 UTC


@dataclass(frozen=True)
class HeldOut:
    """A trace, and where its scored part starts (the part before is history)."""

    label: str
    trace: Trace
    split: float
    origin: str


def heldout_traces(traces_dir: Path) -> list[HeldOut]:
    """Every held-out trace; the Wikipedia windows only when the shared file is there."""
    found: list[HeldOut] = []
    wikipedia = traces_dir / WIKIPEDIA
    if wikipedia.exists():
        hourly = read_trace(wikipedia)
        for label, start in (
            ("Wikipedia, March 2009", MARCH_2009),
            ("Wikipedia, March 2013", MARCH_2013),
        ):
            window = hourly.window(start, start + 28 * DAY)
            found.append(HeldOut(label, window, 14 * DAY, "shared Wikipedia file, another window"))
    found.append(HeldOut("synthetic web (seed 11)", synthetic_web(11), 14 * DAY, "generated"))
    found.append(HeldOut("synthetic batch (seed 12)", synthetic_batch(12), 7 * DAY, "generated"))
    found.append(HeldOut("synthetic bursty (seed 13)", synthetic_bursty(13), 3600.0, "generated"))
    return found


def _trace(name: str, step: float, count: int, rate: Callable[[int], float]) -> Trace:
    times = [step * k for k in range(count)]
    return Trace(name, times, [max(0.0, rate(k)) for k in range(count)], step, step * count)


def _poisson_mean(rnd: random.Random, mean_rate: float, seconds: float) -> float:
    """The observed mean rate over `seconds` of Poisson arrivals at `mean_rate` (normal
    approximation above 50 expected arrivals)."""
    expected = mean_rate * seconds
    if expected > 50:
        return max(0.0, rnd.gauss(expected, math.sqrt(expected))) / seconds
    # Knuth's method for small means
    limit, k, p = math.exp(-expected), 0, 1.0
    while True:
        p *= rnd.random()
        if p <= limit:
            return k / seconds
        k += 1


def synthetic_web(seed: int, days: int = 21) -> Trace:
    """Per-minute web traffic: a diurnal and weekly cycle, 0.3 %/day growth, Poisson
    noise, and about four flash crowds a week (×1.5 to ×3, decaying over 10 to 40 min)."""
    rnd = random.Random(seed)
    crowds: list[tuple[float, float, float]] = []  # start, extra factor, decay seconds
    t = rnd.expovariate(4 / (7 * DAY))
    while t < days * DAY:
        crowds.append((t, rnd.uniform(0.5, 2.0), rnd.uniform(600, 2400)))
        t += rnd.expovariate(4 / (7 * DAY))

    def rate(k: int) -> float:
        t = 60.0 * k
        hour = (t % DAY) / 3600
        day = int(t // DAY)
        diurnal = 0.3 + 0.7 * ((1 - math.cos(2 * math.pi * (hour - 4) / 24)) / 2) ** 1.5
        weekly = 0.65 if day % 7 in (5, 6) else 1.0
        level = 40.0 * diurnal * weekly * (1 + 0.003 * day)
        extra = sum(a * math.exp(-(t - s) / d) for s, a, d in crowds if s <= t < s + 6 * d)
        return _poisson_mean(rnd, level * (1 + extra), 60.0)

    return _trace("synthetic-web", 60.0, days * 1440, rate)


def synthetic_batch(seed: int, days: int = 14) -> Trace:
    """Every 10 s: a steady 20 req/s service plus jobs at 02:00, 09:30, 13:00 and 18:45
    (each +50 to +100 req/s for 15 to 45 min, start jittered by ±3 min, 20 % skipped)."""
    rnd = random.Random(seed)
    jobs: list[tuple[float, float, float]] = []  # start, end, extra rate
    for day in range(days):
        for hour in (2.0, 9.5, 13.0, 18.75):
            if rnd.random() < 0.2:
                continue
            start = day * DAY + hour * 3600 + rnd.uniform(-180, 180)
            jobs.append((start, start + rnd.uniform(900, 2700), rnd.uniform(50, 100)))

    def rate(k: int) -> float:
        t = 10.0 * k
        level = 20.0 + sum(extra for s, e, extra in jobs if s <= t < e)
        return _poisson_mean(rnd, level, 10.0)

    return _trace("synthetic-batch", 10.0, days * 8640, rate)


def synthetic_bursty(seed: int, hours: int = 2) -> Trace:
    """Per-second arrivals alternating between quiet (2/s, about 90 s) and bursts (15 to
    40/s, about 20 s), with exponentially distributed durations."""
    rnd = random.Random(seed)
    rates: list[float] = []
    bursting = False
    left = rnd.expovariate(1 / 90)
    level = 2.0
    for _ in range(hours * 3600):
        if left <= 0:
            bursting = not bursting
            left = rnd.expovariate(1 / 20) if bursting else rnd.expovariate(1 / 90)
            level = rnd.uniform(15, 40) if bursting else 2.0
        rates.append(_poisson_mean(rnd, level, 1.0))
        left -= 1
    return _trace("synthetic-bursty", 1.0, len(rates), lambda k: rates[k])
