"""Which schedule windows are open at a given instant.

A schedule overrides a policy's min/max while it is open. One-off windows are a plain
[start, end) interval; recurring windows open at each cron fire time, evaluated in the
schedule's own time zone so "8:00 on weekdays" follows daylight saving, and stay open for
`duration` of real (elapsed) time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from autoscaler.core.model import Schedule

# croniter's get_prev is strict (a fire exactly at the start time is skipped); starting a
# hair later makes a window that opens exactly at `now` count as open.
_JUST_AFTER = timedelta(microseconds=1)


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


def last_fire(cron: str, now: datetime, timezone: str | None = None) -> datetime:
    """The latest fire time of `cron` at or before `now`, in UTC.

    The expression is evaluated in `timezone` (an IANA name; UTC when None), so a fire at
    08:00 local time moves in UTC across daylight saving changes.
    """
    zone = ZoneInfo(timezone) if timezone else UTC
    start = (now + _JUST_AFTER).astimezone(zone)
    fired: datetime = croniter(cron, start).get_prev(datetime)
    return fired.astimezone(UTC)


def _recurring_active(schedule: Schedule, now: datetime) -> bool:
    if schedule.cron is None or schedule.duration is None:
        return False
    opened = last_fire(schedule.cron, now, schedule.timezone)
    # Aware UTC datetimes: adding a timedelta is elapsed time, not wall-clock time.
    return opened <= now < opened + schedule.duration
