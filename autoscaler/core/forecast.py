"""Forecasts of a check's value from its own history: seasonal profiles plus the recent level.

A `SeasonalModel` learns one check's value in buckets of `resolution` (the mean of what it
was fed in each bucket): first the history the engine reads from Prometheus with range
queries, then each evaluation's value. For every season (one day, one week by default) the
profile at a bucket is the median of the same phase in the last periods (up to
`MAX_PERIODS`); the forecast for the bucket `lead` ahead is that profile plus the recent
level, the mean residual (value − profile) over the last `LEVEL_WINDOW`. Every forecast is
scored when its bucket completes, so each season carries its recent error (mean absolute
error / mean absolute value over the last `ERROR_WINDOW`), and `forecast` answers with the
season whose recent error is smallest, or says why there is no usable forecast: too little
history, too few forecasts scored yet, or a recent error above `max_error`.

Pure and incremental: no I/O and no clock (times are epoch seconds passed in); each
completed bucket costs a few medians of at most `MAX_PERIODS` values, so a replay that
evaluates every 15 seconds pays microseconds, and memory is one float per bucket of
history plus two per bucket of the error window.
"""

from __future__ import annotations

import functools
import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from autoscaler.core.durations import format_duration
from autoscaler.core.model import ForecastReading, ForecastSettings
from autoscaler.core.strategies import fmt_number

LEVEL_WINDOW = timedelta(minutes=10)
ERROR_WINDOW = timedelta(days=1)
# The recent error is judged once this share of its window holds scored forecasts.
MIN_SCORED_SHARE = 0.25
MAX_PERIODS = 7
_NAN = math.nan
_MICROSECOND = timedelta(microseconds=1)


@dataclass
class _Ring:
    """A running sum over the last `size` buckets, one slot per bucket (NaN: nothing)."""

    size: int

    def __post_init__(self) -> None:
        self.a = array("d", [_NAN]) * self.size
        self.b = array("d", [_NAN]) * self.size
        self.sum_a = 0.0
        self.sum_b = 0.0
        self.count = 0
        self._writes = 0

    def put(self, bucket: int, a: float, b: float) -> None:
        """Slot of `bucket` := (a, b); NaN for nothing. Drops what the slot held before."""
        i = bucket % self.size
        old_a, old_b = self.a[i], self.b[i]
        if not math.isnan(old_a):
            self.sum_a -= old_a
            self.sum_b -= old_b
            self.count -= 1
        self.a[i], self.b[i] = a, b
        if not math.isnan(a):
            self.sum_a += a
            self.sum_b += b
            self.count += 1
        self._writes += 1
        if self._writes >= 4 * self.size:  # running sums drift: recompute now and then
            self._writes = 0
            kept = [(x, y) for x, y in zip(self.a, self.b, strict=True) if not math.isnan(x)]
            self.sum_a = math.fsum(x for x, _ in kept)
            self.sum_b = math.fsum(y for _, y in kept)
            self.count = len(kept)


class _Season:
    """One seasonal profile: its period, its recent level and the error of its forecasts."""

    def __init__(self, period: timedelta, buckets: int, periods: int, level: int, errors: int):
        self.period = period
        self.buckets = buckets  # the period in buckets
        self.periods = periods  # how many past periods the profile takes the median of
        self.residuals = _Ring(level)  # (value − profile, 0) per recent bucket
        self.errors = _Ring(errors)  # (|forecast − value|, |value|) per scored bucket
        self.pending: dict[int, float] = {}  # bucket -> forecast made `lead` before it
        # bucket -> its profile, computed once every bucket it reads had completed (by a
        # forecast, or when `lead` before it), and final then (see `SeasonalModel._profiled`)
        self.profiles: dict[int, float] = {}

    def error(self, minimum: int) -> float | None:
        """The recent relative error, or None while fewer than `minimum` buckets are scored."""
        if self.errors.count < minimum:
            return None
        if self.errors.sum_b <= 0:
            return 0.0 if self.errors.sum_a <= 0 else math.inf
        return self.errors.sum_a / self.errors.sum_b


class SeasonalModel:
    """The forecaster of one check (see the module docstring).

    `lead` is how far ahead `forecast` looks; the model scores its forecasts at that lead.
    Feed it values in time order with `add` (older ones are ignored).
    """

    def __init__(self, settings: ForecastSettings, lead: timedelta) -> None:
        if settings.resolution <= timedelta(0):
            raise ValueError("the forecast resolution must be positive")
        self.settings = settings
        self.lead = lead
        self.step = settings.resolution.total_seconds()
        self._lead_seconds = lead.total_seconds()
        # The history needed, in whole microseconds as `timedelta` compares them.
        self._resolution_us = settings.resolution // _MICROSECOND
        self._min_history_us = settings.min_history // _MICROSECOND
        self.lead_buckets = max(1, math.ceil(lead / settings.resolution - 1e-9))
        level = max(1, round(LEVEL_WINDOW / settings.resolution))
        errors = max(1, round(ERROR_WINDOW / settings.resolution))
        self._min_scored = max(1, math.ceil(MIN_SCORED_SHARE * errors))
        self._sizes = (level, errors)
        self._kept = max(1, math.ceil(settings.history / settings.resolution))
        for period in settings.seasons:
            buckets = max(1, round(period / settings.resolution))
            periods = self._periods(period)
            self._kept = max(self._kept, buckets * periods + self.lead_buckets + 1)
        self._reset()

    def _periods(self, period: timedelta) -> int:
        return max(1, min(MAX_PERIODS, int(self.settings.history // period) or 1))

    def _reset(self) -> None:
        """Forget everything learned (the start, or a gap longer than the history kept)."""
        level, errors = self._sizes
        self.seasons = [
            _Season(
                period,
                max(1, round(period / self.settings.resolution)),
                self._periods(period),
                level,
                errors,
            )
            for period in self.settings.seasons
        ]
        self._values = array("d", [_NAN]) * self._kept
        self._first: int | None = None  # first bucket with a value since the (re)start
        self._last: int | None = None  # last completed bucket
        self._open: int | None = None  # the bucket being filled
        self._sum = 0.0
        self._n = 0
        # The last answer: it changes only when a bucket completes or the target moves on.
        self._answer: tuple[int | None, int, ForecastReading] | None = None

    # --- feeding ---------------------------------------------------------------------

    @property
    def last_time(self) -> float | None:
        """Epoch seconds of the end of the last bucket with data fed, or None when empty."""
        bucket = self._open if self._open is not None else self._last
        return None if bucket is None else (bucket + 1) * self.step

    def add(self, at: float, value: float) -> None:
        """Learn that the check read `value` at `at` (epoch seconds); NaN/±Inf are gaps."""
        bucket = math.floor(at / self.step)
        if self._open is not None and bucket < self._open:
            return  # older than what is being filled: already past
        if self._open is None and self._last is not None and bucket <= self._last:
            return
        if self._open is not None and bucket > self._open:
            self._close_until(bucket)
        if self._open is None:
            self._open, self._sum, self._n = bucket, 0.0, 0
        if math.isfinite(value):
            self._sum += value
            self._n += 1

    def extend(self, points: Iterable[tuple[float, float]]) -> None:
        """`add` each (epoch seconds, value), in time order (a range query's samples)."""
        for at, value in points:
            self.add(at, value)

    def _close_until(self, bucket: int) -> None:
        """Complete the open bucket and every empty one before `bucket`."""
        assert self._open is not None
        self._complete(self._open, self._sum / self._n if self._n else _NAN)
        start = self._open + 1
        self._open = None
        if bucket - start > len(self._values):  # a gap longer than the memory: start over
            self._reset()
            return
        for empty in range(start, bucket):
            self._complete(empty, _NAN)

    # --- what completing a bucket does -----------------------------------------------

    def _complete(self, bucket: int, value: float) -> None:
        self._values[bucket % len(self._values)] = value
        self._last = bucket
        if self._first is None and not math.isnan(value):
            self._first = bucket
        for season in self.seasons:
            self._score(season, bucket, value)
            profile = self._profiled(season, bucket)
            residual = value - profile
            if math.isnan(residual):
                season.residuals.put(bucket, _NAN, _NAN)
            else:
                season.residuals.put(bucket, residual, 0.0)
            ahead = bucket + self.lead_buckets
            profile = self._final_profile(season, ahead)
            forecast = profile + self._level(season)
            if not math.isnan(forecast):
                season.pending[ahead] = forecast

    def _final_profile(self, season: _Season, bucket: int) -> float:
        """`_profile(season, bucket)`, kept for later when every bucket it reads has
        completed (`bucket - period` and before), and taken from there if it already was.

        Such a profile is final: completed buckets are never written again, the values
        kept span every period read and the lead (it is read until `bucket` completes),
        and a reset (a long gap) starts new seasons. So the forecasts that look at one
        bucket ahead (two a minute at a 15-second interval), the bucket's completion
        `lead` before it (`_complete`) and the residual when it completes
        (`_profiled`) compute its median once between them."""
        profiles = season.profiles
        profile = profiles.get(bucket)
        if profile is not None:
            return profile
        profile = self._profile(season, bucket)
        last = self._last
        if last is not None and bucket - season.buckets <= last:
            profiles[bucket] = profile
        return profile

    def _profiled(self, season: _Season, bucket: int) -> float:
        """`_profile(season, bucket)`, taken from `season.profiles` if it was kept there
        (see `_final_profile`), which then forgets it and every older bucket's."""
        profiles = season.profiles
        profile = profiles.get(bucket)
        if profile is None:
            return self._profile(season, bucket)
        for done in [b for b in profiles if b <= bucket]:
            del profiles[done]
        return profile

    def _score(self, season: _Season, bucket: int, value: float) -> None:
        made = season.pending.pop(bucket, None)
        for stale in [b for b in season.pending if b < bucket]:
            del season.pending[stale]
        if made is None or math.isnan(value):
            season.errors.put(bucket, _NAN, _NAN)
        else:
            season.errors.put(bucket, abs(made - value), abs(value))

    def _value(self, bucket: int) -> float:
        """The completed bucket's mean, NaN when missing or no longer held."""
        last, first = self._last, self._first
        if last is None or first is None or bucket > last or bucket < first:
            return _NAN
        if last - bucket >= len(self._values):
            return _NAN
        return self._values[bucket % len(self._values)]

    def _profile(self, season: _Season, bucket: int) -> float:
        """Median of the same phase in the last `periods` periods before `bucket` (NaN: none)."""
        # `_value` of each bucket, inlined: this runs several times per completed bucket.
        last, first, values_kept = self._last, self._first, self._values
        size = len(values_kept)
        values = []
        if last is not None and first is not None:
            for k in range(1, season.periods + 1):
                b = bucket - k * season.buckets
                if first <= b <= last and last - b < size:
                    v = values_kept[b % size]
                    if not math.isnan(v):
                        values.append(v)
        values.sort()
        if not values:
            return _NAN
        middle = len(values) // 2
        if len(values) % 2:
            return values[middle]
        return (values[middle - 1] + values[middle]) / 2

    def _level(self, season: _Season) -> float:
        """Mean residual over the level window (the buckets of it that hold a value, as a
        replay evaluating every 5 minutes fills one in five); NaN when none does."""
        ring = season.residuals
        if ring.count == 0:
            return _NAN
        return ring.sum_a / ring.count

    # --- forecasting -----------------------------------------------------------------

    def history_span(self) -> timedelta:
        """How much history the model holds, from its first value to its last bucket."""
        if self._first is None or self._last is None:
            return timedelta(0)
        return (self._last - self._first + 1) * self.settings.resolution

    def forecast(self, at: float) -> ForecastReading:
        """The check's value forecast for `at + lead` (epoch seconds), or why there is none."""
        target = math.floor((at + self._lead_seconds) / self.step)
        answer = self._answer
        if answer is not None and answer[0] == self._last and answer[1] == target:
            return answer[2]  # nothing completed and the same bucket ahead: the same answer
        reading = self._forecast(target)
        self._answer = (self._last, target, reading)
        return reading

    def _forecast(self, target: int) -> ForecastReading:
        settings, lead = self.settings, self.lead
        first, last = self._first, self._last
        held = 0 if first is None or last is None else last - first + 1
        if held * self._resolution_us < self._min_history_us:  # `history_span() < min_history`
            return self._none(
                f"history of {_span(self.history_span())} is shorter than the "
                f"{_span(settings.min_history)} needed"
            )
        best: tuple[float, float, _Season] | None = None
        errors: list[str] = []
        for season in self.seasons:
            error = season.error(self._min_scored)
            if error is None:
                errors.append(f"{_span(season.period)}: too few forecasts scored yet")
                continue
            if error > settings.max_error:
                errors.append(f"{_span(season.period)}: {_percent(error)}")
                continue
            profile = self._final_profile(season, target)
            value = profile + self._level(season)
            if math.isnan(value):
                errors.append(f"{_span(season.period)}: no history at this phase")
                continue
            if best is None or error < best[0]:
                best = (error, value, season)
        if best is None:
            return self._none(
                f"recent error above {_percent(settings.max_error)} or unknown ("
                + "; ".join(errors)
                + ")"
            )
        error, value, season = best
        return ForecastReading(
            value=value, lead=lead, error=error, season=season.period, only=settings.only
        )

    def _none(self, reason: str) -> ForecastReading:
        return ForecastReading(value=None, lead=self.lead, reason=reason, only=self.settings.only)


def describe(reading: ForecastReading) -> str:
    """A forecast in one line for tables: `130 in 2m15s (recent error 12 %)`, or why none."""
    lead = format_duration(reading.lead)
    if reading.value is None:
        return f"none in {lead}: {reading.reason}"
    error = "" if reading.error is None else f" (recent error {_percent(reading.error)})"
    only = ", forecast only" if reading.only else ""
    return f"{fmt_number(reading.value)} in {lead}{error}{only}"


@functools.lru_cache(maxsize=4096)  # a day of 1-minute spans while the history is short
def _span(duration: timedelta) -> str:
    return format_duration(duration) if duration > timedelta(0) else "0s"


def _percent(ratio: float) -> str:
    if math.isinf(ratio):
        return "∞ %"
    return f"{ratio * 100:.0f} %"
