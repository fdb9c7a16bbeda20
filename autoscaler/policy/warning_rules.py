"""Warnings: what a valid policy holds that is most likely not meant, each at its field.

POLICY_SPEC's "Validation" section lists what `validate` refuses; a policy written from
the spec must load. What the spec does not refuse, but its author most likely did not
mean, is a warning here: the loader carries it beside the policy (`PolicyWarning`), and
the policy runs as written. Like `rules`, these functions take models that passed
`schema` and return `(path, message)` pairs; each message says what the
controller does with the field.
"""

from __future__ import annotations

from datetime import datetime

from autoscaler.policy.rules import Finding, utc_time
from autoscaler.policy.schema import CheckModel, PolicyModel, ScheduleModel, ThresholdCheck
from autoscaler.policy.yaml_lines import Path


def policy_warnings(policy: PolicyModel, now: datetime | None = None) -> list[Finding]:
    """What a valid policy holds that is most likely not meant, at its field: reported as a
    warning, never refused.

    A `fallback` block beside `on_missing_data: hold` is ignored (the policy holds). The
    spec's own example writes them so (the block documented for when the mode is switched),
    so refusing it would reject policies copied from the spec. The spec does not refuse the
    others either: a `timezone` a one-off schedule does not use, a one-off time without an
    offset (read in UTC), a schedule without min or max, two schedules of one name, a step
    limit without count or percent (no limit), a threshold step that changes nothing.
    With `now` (`validate` gives its clock's time), a one-off schedule that ended by then
    is one too: an old window is harmless, but most likely meant to be dated anew.
    """
    found: list[Finding] = []
    if policy.on_missing_data != "fallback" and policy.fallback is not None:
        mode: str = policy.on_missing_data
        if "on_missing_data" not in policy.model_fields_set:
            mode += " (the default)"
        message = (
            f"ignored while on_missing_data is {mode}: the policy holds without data; "
            "write `on_missing_data: fallback` to use it, or remove it"
        )
        found.append((("fallback",), message))
    for direction, limit in (("up", policy.limits.up), ("down", policy.limits.down)):
        if limit is not None and limit.count is None and limit.percent is None:
            message = (
                f"neither count nor percent: no limit on a scale-{direction} step (as "
                "without the key); give count and/or percent, e.g. {count: 2, percent: 20}, "
                "or remove it"
            )
            found.append((("limits", direction), message))
    for i, check in enumerate(policy.checks):
        found += _step_warnings(check, ("checks", i))
    named: dict[str, int] = {}
    for index, schedule in enumerate(policy.schedules):
        path: Path = ("schedules", index)
        found += _schedule_warnings(schedule, path)
        if now is not None:
            found += _ended(schedule, path, now)
        first = named.setdefault(schedule.name, index)
        if first != index:
            message = (
                f"also the name of schedules[{first}]: both apply, but decision reasons "
                "name a schedule only by its name, so they cannot say which of the two set "
                "a bound; rename one"
            )
            found.append(((*path, "name"), message))
    return found


def _step_warnings(check: CheckModel, path: Path) -> list[Finding]:
    """Threshold steps that change nothing: while one matches, the count stays."""
    found: list[Finding] = []
    for j, step in enumerate(check.steps if isinstance(check, ThresholdCheck) else []):
        if float(step.change.rstrip("%")) == 0:
            message = (
                f"{step.change} changes nothing: while this step matches, the check asks for "
                "the current count (and the steps after it do not apply, the first matching "
                'one wins); use e.g. "+2" or "-10%" to move the count'
            )
            found.append(((*path, "steps", j, "change"), message))
    return found


def _schedule_warnings(schedule: ScheduleModel, path: Path) -> list[Finding]:
    """A one-off schedule's `timezone` it does not use or its times without an offset; a
    schedule that sets no bound."""
    found: list[Finding] = []
    times = {"start": schedule.start, "end": schedule.end}
    local = [key for key, time in times.items() if time is not None and time.tzinfo is None]
    one_off = schedule.start is not None or schedule.end is not None
    if schedule.timezone is not None and not schedule.cron and one_off and not local:
        message = (
            "ignored: a one-off schedule's start and end carry their own UTC offset "
            "(timezone applies to cron schedules and to times without an offset)"
        )
        found.append(((*path, "timezone"), message))
    if local and schedule.timezone is None:
        message = (
            f"{' and '.join(local)} {'has' if len(local) == 1 else 'have'} no UTC offset: "
            "read in UTC, the default zone (as for cron schedules); write an offset "
            "(+01:00, or Z for UTC) or a `timezone` (e.g. Europe/Paris) to say which is meant"
        )
        found.append(((*path, local[0]), message))
    if schedule.min is None and schedule.max is None:
        message = (
            "neither min nor max: this schedule changes no bound while it is open; "
            "give min and/or max, or remove it"
        )
        found.append((path, message))
    return found


def _ended(schedule: ScheduleModel, path: Path, now: datetime) -> list[Finding]:
    """A one-off schedule whose `end` is not after `now`: it never opens again."""
    if schedule.cron is not None or schedule.start is None or schedule.end is None:
        return []
    try:
        end = utc_time(schedule.end, schedule.timezone)
    except ValueError:  # not one instant: a problem of its own (`rules`)
        return []
    if end > now:
        return []
    message = (
        f"{end.isoformat()} is past (it is {now.isoformat(timespec='seconds')}): "
        "this one-off window is over and never opens again, so the schedule changes nothing; "
        "remove it, or give it the dates meant"
    )
    return [((*path, "end"), message)]
