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
        # 02:30 happens twice on 25 October 2026 (00:30 and 01:30 UTC): the window opens at
        # the first and lasts its hour of elapsed time; the second opens nothing.
        pytest.param(utc("2026-10-25 01:29:59"), True, id="fall-back-first-occurrence"),
        pytest.param(utc("2026-10-25 01:30"), False, id="fall-back-closes-after-its-hour"),
        pytest.param(utc("2026-10-25 01:45"), False, id="fall-back-second-is-no-opening"),
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


def berlin(cron: str, duration: timedelta) -> Schedule:
    return Schedule(name="s", cron=cron, duration=duration, timezone="Europe/Berlin", min=2)


# On 25 October 2026 Berlin's clocks go back from 03:00 CEST to 02:00 CET (01:00 UTC): every
# wall-clock time from 02:00 to 02:59 happens twice, at 00:xx UTC and at 01:xx UTC.


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(utc("2026-10-25 00:29:59"), False, id="before"),
        pytest.param(utc("2026-10-25 00:30"), True, id="first-0230-opens"),
        pytest.param(utc("2026-10-25 00:49:59"), True, id="open-20m"),
        pytest.param(utc("2026-10-25 00:50"), False, id="closes-after-20m"),
        pytest.param(utc("2026-10-25 01:30"), False, id="second-0230-opens-nothing"),
        pytest.param(utc("2026-10-25 01:45"), False, id="still-closed"),
        pytest.param(utc("2026-10-26 01:30"), True, id="next-day-0230-cet"),
    ],
)
def test_a_fixed_fire_time_the_clock_repeats_opens_once_at_its_first_occurrence(
    now: datetime, expected: bool
) -> None:
    # Before, the window opened again one hour after it closed (croniter's get_prev from
    # 02:45 CET answers 02:30 CET): "02:30 every day" opened twice that day. Cron runs it once.
    assert is_active(berlin("30 2 * * *", timedelta(minutes=20)), now) is expected


def test_last_fire_of_a_repeated_fixed_time_is_its_first_occurrence() -> None:
    assert last_fire("30 2 * * *", utc("2026-10-25 01:45"), "Europe/Berlin") == utc(
        "2026-10-25 00:30"
    )
    assert last_fire("0,30 2 * * *", utc("2026-10-25 01:45"), "Europe/Berlin") == utc(
        "2026-10-25 00:30"
    )
    assert last_fire("@daily", utc("2026-10-25 01:45"), "Europe/Berlin") == utc("2026-10-24 22:00")


def test_a_window_open_when_the_clock_falls_back_runs_its_elapsed_duration() -> None:
    # Opens at 02:30 CEST (00:30 UTC) for 2 h of elapsed time: until 03:30 CET (02:30 UTC),
    # not until 04:30 CET as the second 02:30 made it before.
    two_hours = berlin("30 2 * * *", timedelta(hours=2))
    assert is_active(two_hours, utc("2026-10-25 02:29:59"))
    assert not is_active(two_hours, utc("2026-10-25 02:30"))


@pytest.mark.parametrize(
    ("cron", "duration", "now"),
    [
        # The second 02:00 (01:00 UTC) opens its own window, as cron runs such jobs.
        pytest.param("*/30 2 * * *", timedelta(minutes=30), utc("2026-10-25 01:15"), id="step"),
        pytest.param("0 * * * *", timedelta(minutes=15), utc("2026-10-25 01:05"), id="hourly"),
        pytest.param("@hourly", timedelta(minutes=15), utc("2026-10-25 01:05"), id="macro"),
        # Every 10 minutes at night: open through the repeated hour, no gap in it.
        pytest.param("*/10 0-6 * * *", timedelta(minutes=10), utc("2026-10-25 01:25"), id="night"),
    ],
)
def test_a_cron_with_a_star_in_its_minute_or_hour_fires_at_both_occurrences(
    cron: str, duration: timedelta, now: datetime
) -> None:
    assert is_active(berlin(cron, duration), now)
