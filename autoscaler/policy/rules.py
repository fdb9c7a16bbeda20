"""Validation rules that relate several fields of a policy, each reported at its exact field.

pydantic checks each value on its own (`schema`); these functions take models that
already passed that check and return `(path, message)` pairs, where `path` is the field's
path inside the policy, e.g. `("checks", 2, "steps", 1, "below")`. They never raise.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from autoscaler.core.durations import parse_duration
from autoscaler.core.model import TARGET_KINDS
from autoscaler.policy.schema import (
    AnomalyModel,
    CheckModel,
    ForecastModel,
    PolicyModel,
    ScheduleModel,
    StepModel,
    ThresholdCheck,
)
from autoscaler.policy.yaml_lines import Path

Finding = tuple[Path, str]

# Below it a policy evaluates back to back (an evaluation takes longer), and it is most
# likely a typo: `5ms` for `5m`.
MIN_INTERVAL = timedelta(seconds=1)
# Buckets of history one forecast may keep (8 bytes each): 14 days at 1m is 20,160.
MAX_FORECAST_BUCKETS = 100_000


def policy_findings(policy: PolicyModel) -> list[Finding]:
    """Every cross-field problem of a structurally valid policy."""
    kind: str = policy.target.type  # type: ignore[attr-defined]  # every target model has it
    floor = TARGET_KINDS[kind].min_count
    found: list[Finding] = []
    if policy.min < floor:
        found.append((("min",), f"{kind} targets need min >= {floor}{_lower_floors(floor)}"))
    if policy.min > policy.max:
        found.append((("min",), f"min {policy.min} is above max {policy.max}: use min <= max"))
    if parse_duration(policy.interval) < MIN_INTERVAL:
        found.append((("interval",), short_interval(policy.interval)))
    found += _fallback_findings(policy)
    if policy.anomaly is not None:
        found += anomaly_findings(policy.anomaly)
    for i, check in enumerate(policy.checks):
        found += check_findings(check, ("checks", i))
    for i, schedule in enumerate(policy.schedules):
        path: Path = ("schedules", i)
        found += schedule_findings(schedule, path)
        found += _schedule_bounds(schedule, path, policy, kind=kind)
    return found


def short_interval(text: str) -> str:
    """The problem with an interval under `MIN_INTERVAL`, with a guess for `Nms` where `Nm`
    is a usual interval (`5ms`, not `500ms`); `backtest --step` says the same."""
    millis = re.fullmatch(r"0*([1-9][0-9]?)ms", text)
    meant = f" (did you mean {millis.group(1)}m?)" if millis else ""
    return f"{text} is shorter than 1s{meant}: write at least 1s, e.g. 30s"


def _lower_floors(floor: int) -> str:
    """` (min: 0 is allowed for nomad targets only)`: the kinds whose floor is lower."""
    lower = [(tag, k.min_count) for tag, k in TARGET_KINDS.items() if k.min_count < floor]
    if not lower:
        return ""
    least = min(count for _, count in lower)
    kinds = ", ".join(tag for tag, count in lower if count == least)
    return f" (min: {least} is allowed for {kinds} targets only)"


def _fallback_findings(policy: PolicyModel) -> list[Finding]:
    """`on_missing_data: fallback` cannot be evaluated without its `fallback` block."""
    if policy.on_missing_data == "fallback" and policy.fallback is None:
        message = "on_missing_data: fallback needs a `fallback: {after: 3, count: N}` block"
        return [(("on_missing_data",), message)]
    return []


def anomaly_findings(guard: AnomalyModel) -> list[Finding]:
    """The guard's window must hold something."""
    if parse_duration(guard.window) <= timedelta(0):
        return [(("anomaly", "window"), "window must be longer than 0s, e.g. 30m")]
    return []


def forecast_findings(forecast: ForecastModel, path: Path) -> list[Finding]:
    """A forecast's durations must fit together: each season at least two buckets long and
    no longer than the history, a lead shorter than the shortest season, and a history
    that fits in memory at its resolution."""
    found: list[Finding] = []
    resolution = parse_duration(forecast.resolution)
    history = parse_duration(forecast.history)
    if resolution <= timedelta(0):
        return [((*path, "resolution"), "resolution must be longer than 0s, e.g. 1m")]
    if history < resolution:
        found.append(
            (
                (*path, "history"),
                f"history {forecast.history} is shorter than the resolution {forecast.resolution}",
            )
        )
    elif history / resolution > MAX_FORECAST_BUCKETS:
        found.append(
            (
                (*path, "history"),
                f"history {forecast.history} at resolution "
                f"{forecast.resolution} is {math.ceil(history / resolution):,} buckets; "
                f"keep it within {MAX_FORECAST_BUCKETS:,}: a coarser resolution or a "
                "shorter history",
            )
        )
    seasons = [parse_duration(season) for season in forecast.seasons]
    for j, (text, season) in enumerate(zip(forecast.seasons, seasons, strict=True)):
        if season < 2 * resolution:
            found.append(
                (
                    (*path, "seasons", j),
                    f"season {text} is shorter than two buckets "
                    f"of the resolution {forecast.resolution}",
                )
            )
        elif season > history:
            found.append(
                (
                    (*path, "seasons", j),
                    f"season {text} is longer than the history "
                    f"{forecast.history}: it would never repeat in what is learned",
                )
            )
    if parse_duration(forecast.min_history) > history:
        found.append(
            (
                (*path, "min_history"),
                f"min_history {forecast.min_history} is longer than the history {forecast.history}",
            )
        )
    if forecast.lead is not None:
        lead = parse_duration(forecast.lead)
        if lead <= timedelta(0):
            found.append(((*path, "lead"), "lead must be longer than 0s, e.g. 3m"))
        elif seasons and lead >= min(seasons):
            found.append(
                (
                    (*path, "lead"),
                    f"lead {forecast.lead} is not shorter than the "
                    "shortest season: the forecast would read its own future",
                )
            )
    return found


def check_findings(check: CheckModel, path: Path) -> list[Finding]:
    """Problems inside one check: a forecast's durations, threshold steps that are empty or
    can never match."""
    forecast = getattr(check, "forecast", None)
    if forecast is not None:
        return forecast_findings(forecast, (*path, "forecast"))
    if not isinstance(check, ThresholdCheck):
        return []
    found: list[Finding] = []
    earlier: list[tuple[int, float, float]] = []
    for j, step in enumerate(check.steps):
        step_path: Path = (*path, "steps", j)
        problem = _step_problem(step, step_path)
        if problem is not None:
            found.append(problem)
            continue
        low, high = _range(step)
        covering = _covered_by(low, high, earlier)
        if covering:
            names = ", ".join(f"steps[{k}]" for k in covering)
            message = (
                f"this step can never match: every value it matches is matched first by "
                f"{names} (the first matching step wins); reorder or remove it"
            )
            found.append((step_path, message))
        earlier.append((j, low, high))
    return found


def _step_problem(step: StepModel, path: Path) -> Finding | None:
    if step.above is None and step.below is None:
        return (path, 'a step needs `above` and/or `below`, e.g. {above: 0.8, change: "+2"}')
    if step.above is not None and step.below is not None and step.above >= step.below:
        message = (
            f"this step can never match: no value is above {step.above:g} and below "
            f"{step.below:g}; use above < below"
        )
        return ((*path, "below"), message)
    return None


def _range(step: StepModel) -> tuple[float, float]:
    low = -math.inf if step.above is None else step.above
    high = math.inf if step.below is None else step.below
    return low, high


def _covered_by(low: float, high: float, earlier: list[tuple[int, float, float]]) -> list[int]:
    """The earlier steps that together match all of the open range (low, high), if they do.

    Ranges are open, so two ranges that only touch leave their common end unmatched: a later
    step containing that point can still match there.
    """
    pieces = sorted((lo, hi) for _, lo, hi in earlier)
    merged: list[tuple[float, float]] = []
    for lo, hi in pieces:
        if merged and lo < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    for lo, hi in merged:
        if lo <= low and high <= hi:
            return [k for k, a, b in earlier if a < high and low < b]
    return []


def schedule_findings(schedule: ScheduleModel, path: Path) -> list[Finding]:
    """Problems inside one schedule: its kind, its own bounds, its times."""
    found: list[Finding] = []
    one_off = schedule.start is not None or schedule.end is not None
    recurring = schedule.cron is not None or schedule.duration is not None
    if one_off and recurring:
        key = "cron" if schedule.cron is not None else "duration"
        message = (
            "a schedule is either one-off (start + end) or recurring (cron + duration), "
            "not both: split it into two schedules"
        )
        found.append(((*path, key), message))
    elif one_off:
        found += _one_off_findings(schedule, path)
    elif recurring:
        found += _recurring_findings(schedule, path)
    else:
        message = "give start and end (one-off) or cron and duration (recurring)"
        found.append((path, message))
    if schedule.min is not None and schedule.max is not None and schedule.min > schedule.max:
        message = f"min {schedule.min} is above the schedule's max {schedule.max}: use min <= max"
        found.append(((*path, "min"), message))
    return found


def _one_off_findings(schedule: ScheduleModel, path: Path) -> list[Finding]:
    if schedule.start is None:
        return [((*path, "start"), "a one-off schedule needs start (and end)")]
    if schedule.end is None:
        return [((*path, "end"), "a one-off schedule needs end (and start)")]
    found: list[Finding] = []
    times: list[datetime] = []
    for key, time in (("start", schedule.start), ("end", schedule.end)):
        try:
            times.append(utc_time(time, schedule.timezone))
        except ValueError as exc:
            found.append(((*path, key), str(exc)))
    if not found and times[1] <= times[0]:
        found.append(((*path, "end"), "end must be after start"))
    return found


def utc_time(time: datetime, timezone: str | None) -> datetime:
    """A one-off schedule's `start` or `end` in UTC: a time without an offset is read in
    the schedule's `timezone`, or in UTC without one (as a cron is).

    Raises ValueError saying what to write where that is not one instant: a wall-clock time
    the clocks skip or repeat in that zone, or one outside the years 1-9999 in UTC.
    """
    if time.tzinfo is not None:
        return time
    zone = ZoneInfo(timezone) if timezone is not None else UTC
    early, late = time.replace(tzinfo=zone), time.replace(tzinfo=zone, fold=1)
    try:
        first, second = early.astimezone(UTC), late.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            f"{time.isoformat()} in {zone} is outside the years 1 to 9999 in UTC: "
            "use a time within them"
        ) from None
    if first < second:  # PEP 495: fold=1 is the second of a repeated wall-clock time
        raise ValueError(
            f"{time.isoformat()} happens twice in {zone} (the clocks go back): write the "
            f"offset meant, {early.isoformat()} or {late.isoformat()}"
        )
    if first > second:  # in a gap, fold=0 takes the offset before it, fold=1 the one after
        raise ValueError(
            f"{time.isoformat()} does not exist in {zone} (the clocks skip it): write a "
            f"time that does, or the offset meant, {early.isoformat()} or {late.isoformat()}"
        )
    return first


def _recurring_findings(schedule: ScheduleModel, path: Path) -> list[Finding]:
    if schedule.cron is None:
        return [((*path, "cron"), "a recurring schedule needs cron (and duration)")]
    if schedule.duration is None:
        return [((*path, "duration"), "a recurring schedule needs duration, e.g. 10h")]
    if parse_duration(schedule.duration) <= timedelta(0):
        return [((*path, "duration"), "duration must be longer than 0s, e.g. 10h")]
    return []


def _schedule_bounds(
    schedule: ScheduleModel, path: Path, policy: PolicyModel, *, kind: str
) -> list[Finding]:
    """A schedule's bounds must make sense together with the policy's bounds they replace."""
    found: list[Finding] = []
    floor = TARGET_KINDS[kind].min_count
    if schedule.min is not None and schedule.min < floor:
        found.append(((*path, "min"), f"{kind} targets need min >= {floor}, also in schedules"))
    if schedule.min is not None and schedule.max is None and schedule.min > policy.max:
        message = (
            f"min {schedule.min} is above the policy's max {policy.max}: "
            "raise max in this schedule too, or lower min"
        )
        found.append(((*path, "min"), message))
    if schedule.max is not None and schedule.min is None and schedule.max < policy.min:
        message = (
            f"max {schedule.max} is below the policy's min {policy.min}: "
            "lower min in this schedule too, or raise max"
        )
        found.append(((*path, "max"), message))
    return found
