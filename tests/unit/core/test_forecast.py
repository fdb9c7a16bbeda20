"""The seasonal forecaster on synthetic series: it recovers the season, follows the level,
picks the period that fits, and says why when it has no usable forecast."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.core.forecast import SeasonalModel, describe
from autoscaler.core.model import ForecastReading, ForecastSettings
from tests.support.fuzz import fuzz_settings

DAY = 86_400.0
LEAD = timedelta(minutes=3)


def daily(t: float) -> float:
    """A diurnal load: 100 ± 50, peaking at 06:00."""
    return 100 + 50 * math.sin(2 * math.pi * t / DAY)


def feed(
    model: SeasonalModel,
    load: Callable[[float], float],
    until: float,
    *,
    start: float = 0.0,
    every: float = 30.0,
    noise: float = 0.0,
) -> None:
    rnd = random.Random(7)
    t = start
    while t < until:
        model.add(t, load(t) + rnd.gauss(0, noise))
        t += every


def test_recovers_a_daily_season_from_three_days_of_noisy_values() -> None:
    model = SeasonalModel(ForecastSettings(), LEAD)
    feed(model, daily, 3 * DAY, noise=3.0)
    for hour in range(0, 24, 2):
        at = 3 * DAY + hour * 3600
        reading = model.forecast(at)
        assert reading.value is not None
        assert reading.value == pytest.approx(daily(at + LEAD.total_seconds()), abs=6)
        assert reading.season == timedelta(days=1)
        assert reading.error is not None
        assert reading.error < 0.05
        assert reading.lead == LEAD


def test_forecasts_the_ramp_ahead_of_the_observed_value() -> None:
    # At midnight the load rises towards its 06:00 peak: two hours ahead it is 25 higher.
    model = SeasonalModel(ForecastSettings(), timedelta(hours=2))
    feed(model, daily, 3 * DAY)
    reading = model.forecast(3 * DAY)
    assert reading.value is not None
    assert reading.value > daily(3 * DAY) + 20
    assert reading.value == pytest.approx(daily(3 * DAY + 7200), abs=2)


def test_follows_a_new_level_within_the_level_window() -> None:
    model = SeasonalModel(ForecastSettings(), LEAD)
    feed(model, daily, 3 * DAY)
    feed(model, lambda t: daily(t) + 40, 3 * DAY + 1800, start=3 * DAY)  # +40 for 30 min
    reading = model.forecast(3 * DAY + 1800)
    assert reading.value is not None
    assert reading.value == pytest.approx(daily(3 * DAY + 1800 + 180) + 40, abs=3)


def test_picks_the_weekly_season_when_weekends_differ() -> None:
    def weekly(t: float) -> float:
        weekend = (t // DAY) % 7 >= 5
        return daily(t) * (0.3 if weekend else 1.0)

    model = SeasonalModel(ForecastSettings(), LEAD)
    feed(model, weekly, 19 * DAY + 12 * 3600, every=60.0)  # into the third Saturday
    at = 19 * DAY + 12 * 3600
    reading = model.forecast(at)
    assert reading.season == timedelta(days=7)
    assert reading.value is not None
    assert reading.value == pytest.approx(weekly(at + 180), rel=0.05)


def test_has_no_forecast_before_min_history_and_says_why() -> None:
    model = SeasonalModel(ForecastSettings(min_history=timedelta(days=1)), LEAD)
    feed(model, daily, 5 * 3600 + 60)  # five whole hours, and the bucket being filled
    reading = model.forecast(5 * 3600 + 60)
    assert reading.value is None
    assert reading.reason == "history of 5h is shorter than the 1d needed"


def test_has_no_forecast_while_its_recent_error_is_too_large() -> None:
    rnd = random.Random(3)
    model = SeasonalModel(ForecastSettings(max_error=0.2), LEAD)
    feed(model, lambda t: rnd.choice([10.0, 200.0]), 3 * DAY, every=60.0)
    reading = model.forecast(3 * DAY)
    assert reading.value is None
    assert reading.reason is not None
    assert reading.reason.startswith("recent error above 20 % or unknown (1d: ")


def test_a_gap_longer_than_the_history_kept_starts_over() -> None:
    settings = ForecastSettings(history=timedelta(days=2), seasons=(timedelta(days=1),))
    model = SeasonalModel(settings, LEAD)
    feed(model, daily, 2 * DAY)
    assert model.history_span() >= timedelta(days=1)
    model.add(10 * DAY, 100.0)
    model.add(10 * DAY + 60, 100.0)
    assert model.history_span() == timedelta(minutes=1)
    assert model.forecast(10 * DAY + 60).value is None


def test_values_older_than_the_bucket_being_filled_are_ignored() -> None:
    model = SeasonalModel(ForecastSettings(), LEAD)
    model.add(600.0, 10.0)
    model.add(30.0, 1e9)  # late: dropped
    model.add(660.0, 10.0)
    assert model.last_time == 720.0
    assert model.history_span() == timedelta(minutes=1)


@pytest.mark.parametrize(
    ("reading", "shown"),
    [
        pytest.param(
            ForecastReading(value=130.0, lead=timedelta(seconds=135), error=0.12),
            "130 in 2m15s (recent error 12 %)",
            id="forecast",
        ),
        pytest.param(
            ForecastReading(value=130.0, lead=timedelta(minutes=3), error=0.1, only=True),
            "130 in 3m (recent error 10 %), forecast only",
            id="forecast-only",
        ),
        pytest.param(
            ForecastReading(value=None, lead=timedelta(minutes=3), reason="history of 5h"),
            "none in 3m: history of 5h",
            id="none",
        ),
    ],
)
def test_a_forecast_reads_in_one_line(reading: ForecastReading, shown: str) -> None:
    assert describe(reading) == shown


class _Forgetting(dict[int, float]):
    """A season's profiles that keep nothing: every profile computed afresh."""

    def __setitem__(self, key: int, value: float) -> None:
        return None


class _Afresh(SeasonalModel):
    """The model computing every profile when needed, as it did before keeping any."""

    def _reset(self) -> None:
        super()._reset()
        for season in self.seasons:
            season.profiles = _Forgetting()


@fuzz_settings(ci=40)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    lead=st.integers(min_value=1, max_value=8 * 3600),
    seasons=st.sampled_from([(6, 18), (3, 7), (2, 5), (1, 3)]),
)
def test_profiles_kept_from_a_forecast_are_those_computed_afresh(
    seed: int, lead: int, seasons: tuple[int, int]
) -> None:
    """A bucket's profile is kept from when its forecast was made `lead` before, or from a
    forecast that looked at it once every bucket it reads had completed (here the
    forecasts at `at + 30 min`): the model forecasts, scores and learns as when it
    computed every profile afresh (seasons as short as one bucket, shorter than the
    lead, gaps longer than the history included)."""
    settings = ForecastSettings(
        history=timedelta(hours=40),
        resolution=timedelta(hours=1),  # an error window of 24 buckets: scored soon
        seasons=tuple(timedelta(hours=h) for h in seasons),
        min_history=timedelta(hours=2),
        max_error=50.0,
    )
    kept = SeasonalModel(settings, timedelta(seconds=lead))
    afresh = _Afresh(settings, timedelta(seconds=lead))
    rng = random.Random(seed)
    at, answered = 0.0, 0
    for _ in range(600):
        at += 900 * rng.choice([1, 1, 1, 1, 2, 4, 0]) + (3600 * 50 if rng.random() < 0.003 else 0)
        value = math.nan if rng.random() < 0.05 else 100 + 50 * math.sin(at / 7000) + rng.random()
        kept.add(at, value)
        afresh.add(at, value)
        assert _state(kept) == _state(afresh)
        reading = kept.forecast(at)
        assert reading == afresh.forecast(at)
        assert kept.forecast(at + 1800) == afresh.forecast(at + 1800)
        answered += reading.value is not None
    assert answered > 100  # the forecasts compared are mostly real ones
    assert all(not s.profiles for s in afresh.seasons)


def _state(model: SeasonalModel) -> list[tuple[object, ...]]:
    """What the model learned, season by season (NaN-free: sums, counts, pending)."""
    return [
        (
            s.pending,
            s.residuals.sum_a,
            s.residuals.count,
            s.errors.sum_a,
            s.errors.sum_b,
            s.errors.count,
        )
        for s in model.seasons
    ]
