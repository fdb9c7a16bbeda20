"""Each check's history: read back once with a range query, then fed by every evaluation;
gaps are read again, failures say why and are not retried at once, previews learn nothing."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from autoscaler.core.model import (
    AnomalyGuard,
    AsgTarget,
    Check,
    ForecastSettings,
    Observation,
    Policy,
    Strategy,
)
from autoscaler.core.series import own_series
from autoscaler.engine.histories import RETRY_AFTER, CheckHistories
from autoscaler.errors import SourceUnavailable

QUERY = "sum(rate(requests[1m]))"
START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday, at midnight
DAY = 86_400.0


def daily(t: float) -> float:
    return 100 + 50 * math.sin(2 * math.pi * t / DAY)


@dataclass(frozen=True)
class Series:
    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]


@dataclass
class History:
    """A range source holding `daily` until `until` (epoch seconds), and `spike` (epoch
    seconds, value) where set; it records each query."""

    until: float
    series: int = 1
    fail: Exception | None = None
    spike: tuple[float, float] | None = None
    asked: list[tuple[str, datetime, datetime, timedelta]] = field(default_factory=list)

    def query_range(
        self, promql: str, *, start: datetime, end: datetime, step: timedelta
    ) -> Sequence[Series]:
        self.asked.append((promql, start, end, step))
        if self.fail is not None:
            raise self.fail
        points = []
        t, seconds = start.timestamp(), step.total_seconds()
        while t <= min(end.timestamp(), self.until):
            spiked = self.spike is not None and abs(t - self.spike[0]) < 1e-6
            points.append((t, self.spike[1] if self.spike and spiked else daily(t)))
            t += seconds
        return [Series({"i": str(i)}, tuple(points)) for i in range(self.series)]


def policy(*, forecast: bool = True, guard: AnomalyGuard | None = None) -> Policy:
    check = Check(
        name="load",
        strategy=Strategy.PER_INSTANCE,
        query=QUERY,
        target=10.0,
        forecast=ForecastSettings() if forecast else None,
    )
    return Policy(
        name="web", target=AsgTarget(asg="web"), min=1, max=50, checks=(check,), anomaly=guard
    )


def observe(histories: CheckHistories, now: datetime, value: float, **kw: object) -> Observation:
    (enriched,) = histories.enrich(
        policy(**kw),  # type: ignore[arg-type]
        [Observation(check="load", value=value)],
        now,
    )
    return enriched


def test_the_forecast_reads_its_history_once_then_learns_from_evaluations() -> None:
    now = START + timedelta(days=3)
    source = History(until=now.timestamp())
    histories = CheckHistories(source)
    first = observe(histories, now, daily(now.timestamp()))
    assert len(source.asked) == 1
    promql, start, end, step = source.asked[0]
    assert (promql, step) == (QUERY, timedelta(minutes=1))
    assert start == now - timedelta(days=14)
    assert end == now - timedelta(minutes=1)
    assert first.forecast is not None
    assert first.forecast.value == pytest.approx(daily(now.timestamp() + 150), abs=2)
    for k in range(1, 20):  # ten minutes of evaluations every 30 s: no more range queries
        later = now + timedelta(seconds=30 * k)
        observe(histories, later, daily(later.timestamp()))
    assert len(source.asked) == 1


def test_a_gap_in_the_evaluations_is_read_back_alone() -> None:
    now = START + timedelta(days=3)
    source = History(until=(now + timedelta(hours=1)).timestamp())
    histories = CheckHistories(source)
    observe(histories, now, daily(now.timestamp()))
    back = now + timedelta(minutes=30)  # the target was busy: no queries for 30 minutes
    observe(histories, back, daily(back.timestamp()))
    assert len(source.asked) == 2
    _, start, end, _ = source.asked[1]
    assert start == now + timedelta(minutes=1)
    assert end == back - timedelta(minutes=1)


def test_history_that_cannot_be_read_is_said_and_not_asked_again_at_once() -> None:
    now = START + timedelta(days=3)
    source = History(until=now.timestamp(), fail=SourceUnavailable("connection refused"))
    histories = CheckHistories(source)
    first = observe(histories, now, 100.0)
    assert first.forecast is not None
    assert first.forecast.value is None
    assert first.forecast.reason == (
        "history of 0s is shorter than the 1d needed; history unavailable: connection refused"
    )
    observe(histories, now + RETRY_AFTER - timedelta(seconds=30), 100.0)
    assert len(source.asked) == 1
    source.fail = None
    observe(histories, now + RETRY_AFTER + timedelta(seconds=30), 100.0)
    assert len(source.asked) == 2


def test_a_query_with_several_series_has_no_history() -> None:
    now = START + timedelta(days=3)
    histories = CheckHistories(History(until=now.timestamp(), series=2))
    reading = observe(histories, now, 100.0).forecast
    assert reading is not None
    assert reading.value is None
    assert reading.reason is not None
    assert "the query returned 2 series over the range; a check needs exactly one" in (
        reading.reason
    )


def test_a_grouped_check_reads_the_history_of_its_own_series() -> None:
    """A template's check (`group_by`) reads one series of a grouped query: so does its
    forecast's history, out of the range query's series for every target."""
    now = START + timedelta(days=3)
    source = History(until=now.timestamp(), series=3)
    histories = CheckHistories(source)
    grouped = policy()
    check = replace(grouped.checks[0], select=(("i", "1"),))
    (enriched,) = histories.enrich(
        replace(grouped, checks=(check,)), [Observation(check="load", value=100.0)], now
    )
    assert enriched.forecast is not None
    assert enriched.forecast.value == pytest.approx(daily(now.timestamp() + 150), abs=2)
    # Prometheus is asked for this target's series alone, not every target's.
    assert check.query is not None
    assert [q for q, *_ in source.asked] == [own_series(check.query, (("i", "1"),))]
    missing = replace(check, select=(("i", "7"),))
    (enriched,) = CheckHistories(source).enrich(
        replace(grouped, checks=(missing,)), [Observation(check="load", value=100.0)], now
    )
    assert enriched.forecast is not None
    assert enriched.forecast.value is None
    assert "no history" in (enriched.forecast.reason or "")


def test_the_anomaly_window_is_read_back_at_the_policys_interval() -> None:
    now = START + timedelta(days=1)
    source = History(until=now.timestamp())
    histories = CheckHistories(source)
    guard = AnomalyGuard()
    reading = observe(histories, now, 1000.0, forecast=False, guard=guard).anomaly
    _, start, end, step = source.asked[0]
    assert step == timedelta(seconds=30)
    assert (start, end) == (now - timedelta(minutes=29, seconds=30), now - timedelta(seconds=30))
    assert reading is not None
    assert reading.implausible
    assert reading.streak == 1
    assert reading.samples == 59


def test_a_preview_learns_nothing() -> None:
    histories = CheckHistories(None)
    guard = AnomalyGuard()
    for k in range(20):
        observe(histories, START + timedelta(seconds=30 * k), 100.0 + k % 3, guard=guard)
    at = START + timedelta(minutes=10)
    (preview,) = histories.enrich(
        policy(guard=guard), [Observation(check="load", value=900.0)], at, learn=False
    )
    assert preview.anomaly is not None
    assert preview.anomaly.streak == 1
    (real,) = histories.enrich(policy(guard=guard), [Observation(check="load", value=900.0)], at)
    assert real.anomaly is not None
    assert real.anomaly.streak == 1  # the preview did not count
    (again,) = histories.enrich(
        policy(guard=guard), [Observation(check="load", value=900.0)], at + timedelta(seconds=30)
    )
    assert again.anomaly is not None
    assert again.anomaly.streak == 2


def test_checks_without_forecast_or_guard_pass_through_untouched() -> None:
    histories = CheckHistories(History(until=0.0))
    observation = Observation(check="load", value=5.0)
    assert histories.enrich(policy(forecast=False), [observation], START) == [observation]


def test_a_query_with_no_history_yet_is_not_read_back_at_every_evaluation() -> None:
    """A metric not exported yet: the whole history was asked for again at every
    evaluation (14 days of range query per target and interval); once per RETRY_AFTER."""
    history = History(until=0.0)  # Prometheus holds nothing of it
    histories = CheckHistories(history)
    now = START + timedelta(days=3)
    for k in range(20):  # 10 minutes of failing evaluations, every 30 s
        at = now + timedelta(seconds=30 * k)
        (enriched,) = histories.enrich(policy(), [Observation(check="load", error="no series")], at)
        assert enriched.forecast is not None and enriched.forecast.value is None
        assert "holds no history" in (enriched.forecast.reason or "")
    assert len(history.asked) == 2  # at 0s, and once RETRY_AFTER (5 minutes) had passed


def test_an_implausible_value_is_not_learned_by_the_forecast_until_confirmed() -> None:
    """The guard refuses to act on one wild value; the forecast must not act on it either.

    Learned, a single spike of 100,000 lifted the forecast's recent level (the mean residual
    of the last ten minutes) to about 5,000 for ten minutes, and the plausible evaluations
    after it scaled to the policy's max on that forecast."""
    now = START + timedelta(days=14)
    histories = CheckHistories(History(until=now.timestamp()))
    guard = AnomalyGuard()
    spike_at = 10
    for k in range(24):
        at = now + timedelta(seconds=30 * k)
        value = 100_000.0 if k == spike_at else daily(at.timestamp())
        reading = observe(histories, at, value, guard=guard)
        assert reading.anomaly is not None
        assert reading.anomaly.implausible == (k == spike_at)
        assert reading.forecast is not None
        assert reading.forecast.value is not None
        assert reading.forecast.value < 2 * daily(at.timestamp() + 150)


def test_a_spike_the_guard_refused_is_not_learned_from_history_read_back_later() -> None:
    """History read back from Prometheus goes through the guard too. Before, a spike the
    guard had refused live was learned when the history was read: after a restart (or a
    takeover), and when a gap of failed evaluations was read again, the forecast jumped
    to about 10,000 on plausible values near 100 and asked for the policy's max."""
    now = START + timedelta(days=14)
    spike = (now - timedelta(minutes=5)).timestamp()  # on the 1-minute grid
    guard = AnomalyGuard()
    # A controller (re)started five minutes after the spike: its history holds it.
    fresh = CheckHistories(History(until=now.timestamp(), spike=(spike, 100_000.0)))
    for k in range(10):
        at = now + timedelta(seconds=30 * k)
        reading = observe(fresh, at, daily(at.timestamp()), guard=guard)
        assert reading.forecast is not None and reading.forecast.value is not None
        assert reading.forecast.value < 2 * daily(at.timestamp() + 150), (k, reading.forecast)
    # A running controller: it refused the spike live, then its checks failed for
    # 2.5 minutes, and the gap was read back (with the spike in it).
    start = now - timedelta(minutes=10)
    history = History(until=now.timestamp() + 3600, spike=(spike, 100_000.0))
    running = CheckHistories(history)
    for k in range(40):
        at = start + timedelta(seconds=30 * k)
        t = at.timestamp()
        if abs(t - spike) < 1e-6:
            value: float | None = 100_000.0
        elif spike < t <= spike + 150:
            value = None  # the series went missing: the checks fail
        else:
            value = daily(t)
        (reading,) = running.enrich(
            policy(guard=guard),
            [Observation(check="load", value=value, error=None if value else "no series")],
            at,
        )
        if value is not None and value < 1000 and t > spike:
            assert reading.forecast is not None and reading.forecast.value is not None
            assert reading.forecast.value < 2 * daily(t + 150), (k, reading.forecast)


def test_a_confirmed_step_is_learned_by_the_forecast() -> None:
    """What the guard confirms (`confirm` implausible evaluations in a row) is the new
    level: the forecast learns it."""
    now = START + timedelta(days=14)
    histories = CheckHistories(History(until=now.timestamp()))
    guard = AnomalyGuard(confirm=2)
    reading = None
    for k in range(24):
        at = now + timedelta(seconds=30 * k)
        reading = observe(histories, at, 1_000.0 if k >= 4 else daily(at.timestamp()), guard=guard)
    assert reading is not None
    assert reading.forecast is not None
    assert reading.forecast.value is not None
    assert reading.forecast.value > 500


def test_a_range_source_failing_in_an_unforeseen_way_leaves_the_check_reactive() -> None:
    """A range source that raises something else than our errors (a library's bug) must not
    take the evaluation down: the forecast says why it has no history, as for an outage."""
    now = START + timedelta(days=3)
    source = History(until=now.timestamp(), fail=RuntimeError("unexpected answer"))
    histories = CheckHistories(source)
    reading = observe(histories, now, 100.0, guard=AnomalyGuard())
    assert reading.value == 100.0
    assert reading.forecast is not None
    assert reading.forecast.value is None
    assert "history unavailable: RuntimeError: unexpected answer" in (reading.forecast.reason or "")
    observe(histories, now + timedelta(seconds=30), 100.0, guard=AnomalyGuard())
    assert len(source.asked) == 1  # not asked again before RETRY_AFTER


def _steady(histories: CheckHistories, guard: AnomalyGuard) -> datetime:
    """Twenty plausible evaluations at the policy's interval (30 s); the time of the next."""
    for k in range(20):
        observe(histories, START + timedelta(seconds=30 * k), 100.0 + k % 3, guard=guard)
    return START + timedelta(seconds=30 * 20)


def test_a_burst_of_triggered_evaluations_does_not_confirm_an_implausible_value() -> None:
    """A trigger changes when a policy is evaluated, never what it decides: evaluations an
    alert storm (or the API) adds between scheduled ones are judged, but the streak toward
    `confirm` counts one of them per interval, as scheduled runs would. It counted each,
    so a second notification a second later confirmed a large scale-out on one wild value."""
    histories = CheckHistories(None)
    guard = AnomalyGuard(confirm=2)
    at = _steady(histories, guard)
    for second in range(11):  # the scheduled run, then ten triggered ones a second apart
        reading = observe(histories, at + timedelta(seconds=second), 900.0, guard=guard).anomaly
        assert reading is not None
        assert reading.implausible
        assert reading.streak == 1, second
    again = observe(histories, at + timedelta(seconds=30), 900.0, guard=guard).anomaly
    assert again is not None
    assert again.streak == 2  # the next interval confirms it, as without the burst


@pytest.mark.parametrize("wild", [pytest.param(900.0, id="high"), pytest.param(0.0, id="low")])
def test_a_burst_of_triggered_evaluations_does_not_make_a_wild_value_plausible(
    wild: float,
) -> None:
    """The guard's window holds a value per interval (it is read back at the interval): a
    burst of evaluations must not fill it with the wild value. Forty of them in twenty
    seconds made it the window's median, so it became plausible, and a low one (an
    exporter reading 0) could scale in."""
    histories = CheckHistories(None)
    guard = AnomalyGuard()
    at = _steady(histories, guard)
    for k in range(40):
        reading = observe(histories, at + timedelta(seconds=k / 2), wild, guard=guard).anomaly
        assert reading is not None
        assert reading.implausible, k
