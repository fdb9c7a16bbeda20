"""Which schedule windows are open at a given instant.

A schedule overrides a policy's min/max while it is open. One-off windows are a plain
[start, end) interval; recurring windows open at each cron fire time, evaluated in the
schedule's own time zone so "8:00 on weekdays" follows daylight saving, and stay open for
`duration` of real (elapsed) time.

Across daylight-saving changes they fire as cron does (cronie, Vixie cron): a fire time the
clock skips fires at the first instant after the gap (croniter's own answer, kept); a fire
time the clock repeats fires once, at its first occurrence, when the cron names a fixed
minute and hour (`30 2 * * *`: "02:30 every day" opens one window that day, which runs its
`duration` of elapsed time across the change). A cron with `*` in its minute or hour field
(`*/10 0-6 * * *`, `0 * * * *`) fires at both occurrences, so a window it keeps open
stays open through the repeated hour.

Any `now` works, up to the ends of `datetime`: a fire time that cannot be computed there
(a local time past year 9999, no earlier fire before year 1) means the window is closed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from croniter import croniter

from autoscaler.core.model import Schedule
from autoscaler.core.ranges import shifted

# croniter's get_prev is strict (a fire exactly at the start time is skipped); starting a
# hair later makes a window that opens exactly at `now` count as open.
_JUST_AFTER = timedelta(microseconds=1)

# Weekdays and dates line up again after 28 years (within a century), so a five-field
# cron that fires at all fires within 28 years of any start, e.g. 2001-01-01.
_CYCLE_START = datetime(2001, 1, 1, tzinfo=UTC)
_CYCLE_YEARS = 28

# The macros croniter takes, as five fields (only their minute and hour fields matter here).
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def active(schedules: Sequence[Schedule], now: datetime) -> list[Schedule]:
    """The schedules whose window contains `now` (timezone-aware), in the given order."""
    return [schedule for schedule in schedules if is_active(schedule, now)]


def is_active(schedule: Schedule, now: datetime) -> bool:
    """True when `schedule`'s window contains `now`: start <= now < end."""
    if schedule.cron is not None:
        return _recurring_active(schedule, now)
    if schedule.start is None or schedule.end is None:
        return False
    return schedule.start <= now < schedule.end


def last_fire(
    cron: str, now: datetime, timezone: str | None = None, *, within: timedelta | None = None
) -> datetime | None:
    """The latest fire time of `cron` at or before `now`, in UTC; None when there is none.

    The expression is evaluated in `timezone` (an IANA name; UTC when None), so a fire at
    08:00 local time moves in UTC across daylight saving changes; a fixed fire time the
    clock repeats counts at its first occurrence only (see the module docstring). With
    `within`, only fires at most about that long ago are looked for (a year more, at
    most), which keeps a rare or never-firing cron cheap. None also when the fire time is
    outside what `datetime` can represent (see the module docstring).
    """
    zone = ZoneInfo(timezone) if timezone else UTC
    years = None if within is None else within.days // 365 + 1
    try:
        start = shifted(now, _JUST_AFTER).astimezone(zone)
        fires = croniter(cron, start, max_years_between_matches=years)
        fired: datetime = fires.get_prev(datetime)
        while _fixed_time(cron) and _repeated(fired, zone):
            fired = fires.get_prev(datetime)  # its first occurrence, an hour or so earlier
        return fired.astimezone(UTC)
    except (ValueError, OverflowError):  # croniter's "no such date" errors are ValueErrors
        return None


def ever_fires(cron: str) -> bool:
    """Whether `cron` (five fields, valid) fires at all, e.g. not `0 0 30 2 *` (February 30)."""
    try:
        croniter(cron, _CYCLE_START, max_years_between_matches=_CYCLE_YEARS).get_next(datetime)
    except ValueError:
        return False
    return True


def _fixed_time(cron: str) -> bool:
    """Whether `cron` names its minutes and hours (no `*` starting either field): cron's
    test for a job it runs once in a repeated hour, rather than at every occurrence."""
    minute, hour = _MACROS.get(cron.strip().lower(), cron).split()[:2]
    return not (minute.startswith("*") or hour.startswith("*"))


def _repeated(fired: datetime, zone: tzinfo) -> bool:
    """Whether `fired` is the second occurrence of a wall-clock time the clock repeats."""
    local = fired.astimezone(UTC).astimezone(zone)  # PEP 495: fold=1 is the second one
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def _recurring_active(schedule: Schedule, now: datetime) -> bool:
    if schedule.cron is None or schedule.duration is None:
        return False
    opened = last_fire(schedule.cron, now, schedule.timezone, within=schedule.duration)
    if opened is None:  # no fire as recently as the window lasts: it is closed
        return False
    # Aware UTC datetimes: the difference is elapsed time, not wall-clock time; and unlike
    # `opened + duration` it cannot leave datetime's range.
    return timedelta(0) <= now - opened < schedule.duration
