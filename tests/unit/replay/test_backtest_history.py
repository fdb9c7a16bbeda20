"""`backtest` hands forecasts and the anomaly guard the history `run` would have read.

Each case replays a forecasting policy over a noisy daily ramp and compares its changes
with those of the production reconciler driven over the same samples on a live-like clock
(`tests.support.run_like`): the decision code is the same, so any difference comes from
the history the forecast learned from.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from autoscaler.core.model import (
    AnomalyGuard,
    Check,
    Cooldown,
    ForecastSettings,
    Policy,
    Stabilization,
    Strategy,
)
from autoscaler.replay import backtest
from autoscaler.replay.backtest import Options, run_backtest
from autoscaler.replay.history import StoredHistory
from tests.support.run_like import Recorded, backtest_changes, run_changes
from tests.unit.replay.fakes import MINUTE, T0, policy

QUERY = 'sum(fc_rps{service="web"})'
DAY0 = datetime(2026, 1, 5, tzinfo=UTC)
MORNING = DAY0 + timedelta(days=3)  # the ramp at 08:00 every day, three days learned
FORECAST = ForecastSettings(
    history=timedelta(days=3), seasons=(timedelta(days=1),), min_history=timedelta(days=1)
)


def load(instant: float) -> float:
    """20 req/s, climbing to 100 in five minutes at 08:00 and back at 18:00."""
    since = instant % 86400 - 8 * 3600
    return 20.0 if since < 0 or since >= 10 * 3600 else 20.0 + 80.0 * min(1.0, since / 300)


def recorded(seed: int) -> Recorded:
    """A sample every 15 s, ±40 % noise: what a bucket averages differs from one sample."""
    rng = random.Random(seed)
    first, last = DAY0.timestamp(), (MORNING + timedelta(hours=12)).timestamp()
    count = int((last - first) // 15)
    samples = [(first + 15 * k, load(first + 15 * k) * rng.uniform(0.6, 1.4)) for k in range(count)]
    return Recorded({QUERY: samples})


def ahead(interval: timedelta, *, guard: bool = False) -> Policy:
    check = Check(
        name="rps", strategy=Strategy.PER_INSTANCE, query=QUERY, target=10, forecast=FORECAST
    )
    return policy(
        "ahead",
        query=QUERY,
        max=40,
        interval=interval,
        provisioning=timedelta(minutes=10),
        cooldown=Cooldown(up=timedelta(0), down=timedelta(0)),
        stabilization=Stabilization(up=timedelta(0), down=timedelta(0)),
        checks=(check,),
        anomaly=AnomalyGuard(z=50) if guard else None,
    )


def test_a_forecast_learns_every_bucket_between_evaluations_as_in_run() -> None:
    # A 5-minute interval with 1-minute buckets: `run` reads the four buckets its model
    # missed at every evaluation; the backtest must read them too, not leave them empty.
    source = recorded(seed=7)
    start, end = MORNING + timedelta(hours=7), MORNING + timedelta(hours=10)
    pol = ahead(timedelta(minutes=5))
    live = run_changes(pol, source, start, end, 2)
    assert any(s >= start for _, s, _, _ in source.ranges)  # run re-read inside the window
    assert backtest_changes(pol, source, start, end, 2) == live


def test_a_guarded_forecast_learns_one_sample_per_bucket_as_in_run() -> None:
    # The guard reads its window at the 15 s interval, the forecast its history at 1 m: the
    # forecast must not learn the guard's 15 s samples averaged per bucket.
    source = recorded(seed=11)
    start, end = MORNING + timedelta(hours=7), MORNING + timedelta(hours=9)
    pol = ahead(timedelta(seconds=15), guard=True)
    assert backtest_changes(pol, source, start, end, 2) == run_changes(pol, source, start, end, 2)


def test_a_forecast_reads_its_history_on_its_buckets_whatever_the_from() -> None:
    # --from 37 s past a minute (as a relative --from almost always is): the history is
    # read at whole minutes, as `run` reads it, not at --from minus whole minutes.
    source = recorded(seed=11)
    start = MORNING + timedelta(hours=7, seconds=37)
    end = start + timedelta(hours=2)
    pol = ahead(timedelta(seconds=15))
    assert backtest_changes(pol, source, start, end, 2) == run_changes(pol, source, start, end, 2)


def test_stored_history_answers_nothing_at_or_after_the_evaluation_asking() -> None:
    points = tuple((T0.timestamp() + 60 * k, float(k)) for k in range(10))
    stored = StoredHistory({("q", 60.0): points})
    stored.now = (T0 + 5 * MINUTE).timestamp()
    (answer,) = stored.query_range("q", start=T0, end=T0 + 9 * MINUTE, step=MINUTE)
    assert [v for _, v in answer.points] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_stored_history_answers_only_the_step_and_grid_it_was_read_at() -> None:
    points = tuple((T0.timestamp() + 15 * k, float(k)) for k in range(8))
    stored = StoredHistory({("q", 15.0): points})
    assert stored.query_range("q", start=T0, end=T0 + 2 * MINUTE, step=MINUTE) == []
    (answer,) = stored.query_range(
        "q", start=T0 + timedelta(seconds=30), end=T0 + MINUTE, step=timedelta(seconds=15)
    )
    assert [v for _, v in answer.points] == [2.0, 3.0, 4.0]


def test_rescale_scales_the_forecasts_history_inside_the_window_as_its_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With --rescale, what the forecast reads back inside the window is what the check
    read there: recorded value x recorded count / simulated count."""
    count_query = "recorded_count"
    check = Check(
        name="cpu",
        strategy=Strategy.PER_INSTANCE,
        query=QUERY,
        target=10,
        forecast=ForecastSettings(history=timedelta(hours=1), min_history=timedelta(hours=1)),
    )
    pol = replace(ahead(timedelta(minutes=5)), checks=(check,))
    start = MORNING
    samples = [(start.timestamp() - 3600 + 15 * k, 40.0) for k in range(3 * 240)]
    source = Recorded({QUERY: samples, count_query: [(t, 8.0) for t, _ in samples]})
    read: list[tuple[float, float]] = []

    class Spy(StoredHistory):
        def query_range(self, promql, *, start, end, step):  # type: ignore[no-untyped-def]
            answer = super().query_range(promql, start=start, end=end, step=step)
            read.extend(p for s in answer for p in s.points if p[0] >= MORNING.timestamp())
            return answer

    monkeypatch.setattr(backtest, "StoredHistory", Spy)
    options = Options(
        start=start,
        end=start + timedelta(hours=1),
        start_count=4,
        count_query=count_query,
        rescale=frozenset({"cpu"}),
    )
    (replayed,) = run_backtest([pol], source, options).policies
    assert read, "the forecast read nothing back inside the window"
    counts = [(c.at.timestamp(), c.new) for c in replayed.changes]

    def simulated(at: float) -> int:
        return [n for t, n in [(-math.inf, 4), *counts] if t < at][-1]

    assert all(value == 40.0 * 8 / simulated(t) for t, value in read), (read, counts)


def test_holds_are_counted_with_rescale_as_without() -> None:
    # `simulated.add` (the counts `--rescale` scales the history read in the window by)
    # came between the scale branch and its `elif`: with --rescale, no hold was counted.
    check = Check(
        name="cpu",
        strategy=Strategy.PER_INSTANCE,
        query=QUERY,
        target=10,
        forecast=ForecastSettings(history=timedelta(hours=1), min_history=timedelta(hours=1)),
    )
    held = replace(
        ahead(timedelta(minutes=5)),
        checks=(check,),
        stabilization=Stabilization(up=timedelta(0), down=timedelta(hours=2)),
    )
    start = MORNING.timestamp()
    before = [(start - 3600 + 15 * k, 1.0) for k in range(240)]  # none in the window: holds
    counts = [(start - 3600 + 15 * k, 20.0) for k in range(480)]
    source = Recorded({QUERY: before, "rc": counts})

    def holds(rescale: frozenset[str]) -> tuple[int, int]:
        options = Options(
            start=MORNING,
            end=MORNING + timedelta(hours=1),
            start_count=20,
            count_query="rc",
            rescale=rescale,
            series=False,
        )
        (result,) = run_backtest([held], source, options).policies
        return result.evaluations, result.holds

    assert holds(frozenset()) == (12, 11)
    assert holds(frozenset({"cpu"})) == (12, 11)
