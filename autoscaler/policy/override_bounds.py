"""A template's schedules kept inside the min/max its target's owner overrode.

An active schedule's min/max replace the policy's (`core.bounds.effective_bounds`), so a
template's `{min: 4, max: 30}` window would take a target whose owner set
`autoscaler.max=5` out to 30: the owner's word would win only outside the window. The
owner's overrides are hard limits for their target instead: at expansion every schedule's
min and max are clamped into them (a side not overridden is left as the template wrote
it), and each clamp is reported, so the template's author sees why the window does less.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from autoscaler.core.model import Schedule

__all__ = ["Clamp", "clamp_schedules", "clamped"]


@dataclass(frozen=True)
class Clamp:
    """One schedule bound moved into the owner's overrides: `schedules[index].side`."""

    index: int
    schedule: str
    side: str  # "min" or "max"
    written: int  # as the template wrote it
    applied: int  # what applies to this target


def clamped(value: int | None, low: int | None, high: int | None) -> int | None:
    """`value` moved into [`low`, `high`] (None: that side is open); None stays None.

    A schedule that leaves a side unset falls back to the policy's, which is already the
    override. With `low` above `high` (refused at expansion anyway) `low` wins, as a
    schedule's min above its max does (`effective_bounds`)."""
    if value is None:
        return None
    if high is not None and value > high:
        value = high
    if low is not None and value < low:
        value = low
    return value


def clamp_schedules(
    schedules: Sequence[Schedule], *, low: int | None, high: int | None
) -> tuple[tuple[Schedule, ...], tuple[Clamp, ...]]:
    """`schedules` with each min and max clamped into [`low`, `high`] (the overridden min
    and max, None where not overridden), and every clamp made, in order.

    A schedule left as it is stays the same object (an expansion shares what the template
    gives it)."""
    out: list[Schedule] = []
    clamps: list[Clamp] = []
    for index, schedule in enumerate(schedules):
        low_now = clamped(schedule.min, low, high)
        high_now = clamped(schedule.max, low, high)
        for side, written, applied in (
            ("min", schedule.min, low_now),
            ("max", schedule.max, high_now),
        ):
            if written is not None and applied is not None and written != applied:
                clamps.append(Clamp(index, schedule.name, side, written, applied))
        if (low_now, high_now) == (schedule.min, schedule.max):
            out.append(schedule)
        else:
            out.append(replace(schedule, min=low_now, max=high_now))
    return tuple(out), tuple(clamps)
