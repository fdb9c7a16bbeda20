"""Which schedule windows are open: one-off intervals and cron windows across DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from autoscaler.core.model import Schedule
from autoscaler.core.schedules import active, is_active, last_fire

PARIS_WINTER = timezone(timedelta(hours=1))

BLACK_FRIDAY = Schedule(
    name="black-friday",
    start=datetime(2026, 11, 27, 6, 0, tzinfo=PARIS_WINTER),
    end=datetime(2026, 11, 28, 2, 0, tzinfo=PARIS_WINTER),
    min=12,
)
OFFICE_HOURS = Schedule(
    name="weekday-office-hours",
    cron="0 8 * * 1-5",
    duration=timedelta(hours=10),
    timezone="Europe/Paris",
    min=4,
)


def utc(text: str) -> datetime:
    """A UTC instant from ISO text without offset: `2026-03-27 07:00`."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(utc("2026-11-27 04:59:59"), False, id="before-start"),
        pytest.param(utc("2026-11-27 05:00"), True, id="at-start"),
        pytest.param(utc("2026-11-27 20:00"), True, id="inside"),
        pytest.param(utc("2026-11-28 00:59:59"), True, id="just-before-end"),
        pytest.param(utc("2026-11-28 01:00"), False, id="at-end"),
    ],
)
def test_one_off_window_is_start_inclusive_end_exclusive(now: datetime, expected: bool) -> None:
    assert is_active(BLACK_FRIDAY, now) is expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Winter (CET, UTC+1): 08:00 Paris is 07:00 UTC.
        pytest.param(utc("2026-03-27 06:59"), False, id="winter-before-open"),
        pytest.param(utc("2026-03-27 07:00"), True, id="winter-fire-exactly-now"),
        pytest.param(utc("2026-03-27 16:59"), True, id="winter-before-close"),
        pytest.param(utc("2026-03-27 17:00"), False, id="winter-at-close"),
        pytest.param(utc("2026-03-28 09:00"), False, id="saturday"),
        # Summer (CEST, UTC+2) after the change on Sunday 29 March 2026: 08:00 is 06:00 UTC.
        pytest.param(utc("2026-03-30 05:59"), False, id="summer-before-open"),
        pytest.param(utc("2026-03-30 06:00"), True, id="summer-fire-exactly-now"),
        pytest.param(utc("2026-03-30 15:59"), True, id="summer-before-close"),
        pytest.param(utc("2026-03-30 16:00"), False, id="summer-at-close"),
        # Back to winter after Sunday 25 October 2026.
        pytest.param(utc("2026-10-26 06:30"), False, id="autumn-before-open"),
        pytest.param(utc("2026-10-26 07:00"), True, id="autumn-open"),
    ],
)
def test_recurring_window_follows_local_time_across_dst(now: datetime, expected: bool) -> None:
    assert is_active(OFFICE_HOURS, now) is expected


def test_duration_is_elapsed_time_across_dst() -> None:
    # Opens at midnight Paris on the night clocks go forward (23:00 UTC the day before);
    # 10 h later is 09:00 UTC = 11:00 CEST, not 10:00 wall-clock.
    nightly = Schedule(
        name="nightly",
        cron="0 0 * * *",
        duration=timedelta(hours=10),
        timezone="Europe/Paris",
        min=1,
    )
    assert last_fire("0 0 * * *", utc("2026-03-29 08:30"), "Europe/Paris") == utc(
        "2026-03-28 23:00"
    )
    assert is_active(nightly, utc("2026-03-29 08:30"))  # 10:30 CEST
    assert not is_active(nightly, utc("2026-03-29 09:00"))  # 11:00 CEST


def test_cron_defaults_to_utc() -> None:
    hourly = Schedule(name="h", cron="0 * * * *", duration=timedelta(minutes=15), max=3)
    assert is_active(hourly, utc("2026-05-01 10:14:59"))
    assert not is_active(hourly, utc("2026-05-01 10:15"))


def test_longer_than_period_stays_open() -> None:
    overlapping = Schedule(name="o", cron="0 * * * *", duration=timedelta(hours=2), min=1)
    assert is_active(overlapping, utc("2026-05-01 10:59"))


def test_incomplete_schedule_is_never_active() -> None:
    assert not is_active(Schedule(name="x", start=utc("2026-01-01"), min=1), utc("2026-06-01"))
    assert not is_active(Schedule(name="y", cron="* * * * *", min=1), utc("2026-06-01"))


def test_active_filters_and_keeps_order() -> None:
    always = Schedule(name="always", start=utc("2000-01-01"), end=utc("2100-01-01"), max=50)
    now = utc("2026-11-27 08:00")  # a Friday, 09:00 Paris, during Black Friday
    assert active([always, OFFICE_HOURS, BLACK_FRIDAY], now) == [
        always,
        OFFICE_HOURS,
        BLACK_FRIDAY,
    ]
    assert active([BLACK_FRIDAY, always], utc("2026-01-01")) == [always]
    assert active([], now) == []


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # 02:30 does not exist on 29 March 2026 in Paris: the window still opens that night.
        pytest.param(utc("2026-03-29 01:30"), True, id="spring-forward-not-skipped"),
        pytest.param(utc("2026-03-29 03:00"), False, id="spring-forward-closes"),
        # 02:30 happens twice on 25 October 2026: the window is open after the second one.
        pytest.param(utc("2026-10-25 01:45"), True, id="fall-back-second-occurrence"),
        pytest.param(utc("2026-10-25 03:00"), False, id="fall-back-closes"),
    ],
)
def test_fire_time_in_a_dst_gap_or_overlap(now: datetime, expected: bool) -> None:
    night = Schedule(
        name="night",
        cron="30 2 * * *",
        duration=timedelta(hours=1),
        timezone="Europe/Paris",
        max=2,
    )
    assert is_active(night, now) is expected
