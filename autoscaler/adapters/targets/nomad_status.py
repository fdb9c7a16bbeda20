"""What a Nomad target's status is made of, read from the job and its scale status: the
group's count and bounds (`Seen`, kept while the job is unchanged) and its last count change.

No I/O here: `NomadScaler` reads the job, its scale status and its latest deployment, and
these turn what was read into the values `TargetStatus` carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from autoscaler.core.model import NomadTarget
from autoscaler.errors import TargetError, TargetNotFound

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Seen:
    """What `status` needs of the job as read at `indexes` (its CreateIndex and
    ModifyIndex), and whether the deployment of its version (`version`, the job's
    JobModifyIndex) has ended. Valid while the scale status shows the same indexes: its
    `JobModifyIndex` is the job's ModifyIndex, which any change to the job moves (a
    register, stop or scale, and also its status, or its version marked stable). Compared
    with the job's own JobModifyIndex, which only a new version moves, they never matched
    again once a deployment succeeded, and every status read all three.

    Only these few values are kept, not the job: a whole job (tasks, their configs,
    services, constraints, meta: kilobytes of JSON) kept per target held about a fifth of
    the service's memory at 10,000 targets, and even its few fields in dicts 0.5 KB each.
    """

    indexes: tuple[Any, Any]
    version: Any
    stop: bool
    count: int  # the group's Count in the job (the scale status' Desired wins over it)
    min_size: int | None  # the group's `scaling { min max }`
    max_size: int | None
    ended: bool


def group_of(ref: NomadTarget, job: Mapping[str, Any], indexes: tuple[Any, Any]) -> Seen:
    """What `status` needs of `job` (not yet knowing whether its deployment ended).

    Raises `TargetError` for a job whose count sets no number of instances (periodic,
    parameterized, system, sysbatch), `TargetNotFound` when the job has no such group.
    """
    if job.get("Periodic") or job.get("ParameterizedJob"):
        kind = "periodic" if job.get("Periodic") else "parameterized"
        raise TargetError(
            f"job '{ref.job}' is {kind}: it launches child jobs and has no long-running "
            "count to scale; point the policy at a service job"
        )
    # Nomad refuses a system job's count above 1 only when a scale is sent, and takes a
    # sysbatch job's without placing more: neither runs as many instances as its count.
    if job.get("Type") in ("system", "sysbatch"):
        raise TargetError(
            f"job '{ref.job}' is of type {job['Type']}: it runs on every eligible node "
            "whatever its count, so it has no count to scale; point the policy at a "
            "service job"
        )
    groups = {g.get("Name"): g for g in job.get("TaskGroups") or []}
    if ref.group not in groups:
        names = ", ".join(sorted(str(n) for n in groups)) or "none"
        raise TargetNotFound(
            f"task group '{ref.group}' not found in job '{ref.job}'; groups: {names}"
        )
    group = groups[ref.group]
    bounds = group.get("Scaling") or {}
    return Seen(
        indexes=indexes,
        version=job.get("JobModifyIndex"),
        stop=bool(job.get("Stop")),
        count=int(group.get("Count") or 0),
        min_size=_bound(bounds.get("Min")),
        max_size=_bound(bounds.get("Max")),
        ended=False,
    )


def last_count_change(events: Any) -> datetime | None:
    """The time of the newest scale event that changed the count (anyone's), or None.

    Events carry `Time` in Unix nanoseconds; events with `Error` set or without a `Count`
    (blocked or failed attempts) and events that kept the count are not scaling actions.
    """
    newest: int | None = None
    for event in events or []:
        count, time_ns = event.get("Count"), event.get("Time")
        if event.get("Error") or count is None or time_ns is None:
            continue
        if count == event.get("PreviousCount"):
            continue
        newest = time_ns if newest is None else max(newest, int(time_ns))
    if newest is None:
        return None
    return _EPOCH + timedelta(microseconds=int(newest) // 1000)


def _bound(value: Any) -> int | None:
    """A scaling block's Min or Max as a count; None when absent (or negative: unset)."""
    if value is None or isinstance(value, bool):
        return None
    bound = int(value)
    return bound if bound >= 0 else None
