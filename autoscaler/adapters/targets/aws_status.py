"""What an ASG target's status is made of, read from the group, its scaling activities and
its instance refreshes: why it must not be touched now, whether a further scale-up may
overtake what is under way, and whether its capacity counts instances at all.

No I/O here: `AsgScaler` reads the group (`aws_batch`), its activities (`aws_activity`) and
its instance refreshes, and these turn what was read into the values `TargetStatus` carries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autoscaler.adapters.targets.aws_activity import FINISHED_ACTIVITY
from autoscaler.core.names import noun

if TYPE_CHECKING:
    from mypy_boto3_autoscaling.type_defs import (
        ActivityTypeDef,
        AutoScalingGroupTypeDef,
        InstanceRefreshTypeDef,
    )

# Statuses of instance refreshes that are not over.
RUNNING_REFRESH = frozenset({"Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking"})
# How the Description of an activity that starts an instance begins (lowercased).
LAUNCH_MARK = "launching a new ec2 instance"
# Lifecycle states of instances that do not count toward the group's DesiredCapacity:
# leaving (terminating, detaching), set aside (standby), or in its warm pool. Any other
# state (pending, in service, or one AWS adds later) is counted: an instance too many is
# a hold of scale-in, one too few a scale-in on a count above what serves.
OUTSIDE_CAPACITY = (
    "Terminating",
    "Terminated",
    "Detaching",
    "Detached",
    "EnteringStandby",
    "Standby",
    "Warmed:",
)


@dataclass(frozen=True, slots=True)
class Refreshes:
    """A read of a group's instance refreshes that found none running."""

    read_at: float  # `monotonic()` when it was asked
    shape: int  # `refresh_shape` of the group then


def refresh_shape(group: AutoScalingGroupTypeDef) -> int:
    """What of a group an instance refresh changes: its instances and their states (and
    the desired capacity, which anyone's scaling changes)."""
    instances = group.get("Instances", [])
    return hash(
        (
            group["DesiredCapacity"],
            tuple(sorted((i["InstanceId"], i["LifecycleState"]) for i in instances)),
        )
    )


def capacity_units(group: Mapping[str, Any]) -> str | None:
    """What the group's Min/Max/DesiredCapacity count when it is not instances, else None.

    AWS counts them in vCPUs or MiB with `DesiredCapacityType` (attribute-based instance
    selection), and in the weights' units when a mixed instances policy gives its
    instance types a `WeightedCapacity`, or while instances launched with a weight other
    than 1 still run (they keep it when it is removed from the policy).
    """
    kind = group.get("DesiredCapacityType")
    if kind not in (None, "", "units"):
        return f"{kind} (DesiredCapacityType)"
    mixed = group.get("MixedInstancesPolicy") or {}
    overrides = (mixed.get("LaunchTemplate") or {}).get("Overrides") or []
    weights = sorted({str(o["WeightedCapacity"]) for o in overrides if o.get("WeightedCapacity")})
    if any(w != "1" for w in weights):
        return f"weighted units (WeightedCapacity {', '.join(weights)})"
    # An instance keeps the weight it was launched with after its type's weight is removed
    # (or the mixed instances policy with it): the group counts its units all the same.
    running = {
        str(i["WeightedCapacity"])
        for i in group.get("Instances") or []
        if i.get("WeightedCapacity")
    }
    if running - {"1"}:
        return (
            f"weighted units (instances of WeightedCapacity {', '.join(sorted(running))} "
            "still running)"
        )
    return None


def suspended_processes(group: Mapping[str, Any]) -> set[str | None]:
    """The names of the group's suspended processes (`aws autoscaling suspend-processes`)."""
    return {p.get("ProcessName") for p in group.get("SuspendedProcesses", [])}


def busy_reasons(
    group: AutoScalingGroupTypeDef,
    activities: Sequence[ActivityTypeDef],
    refreshes: Sequence[InstanceRefreshTypeDef],
) -> tuple[list[str], bool]:
    """Why the group must not be touched now (empty when it may be), and whether all of it
    is instances launching, which a further scale-up may overtake."""
    reasons = []
    launching = True
    if group.get("Status"):  # only set while the group is being deleted
        reasons.append(f"group status is {group.get('Status')!r}")
        launching = False
    suspended = suspended_processes(group)
    # An operator paused the group: a new DesiredCapacity would launch (or terminate)
    # nothing, yet count as done and start a cooldown. Launch suspended holds both ways
    # (no scale-in while nothing can be replaced); Terminate alone holds scale-in only.
    for process in ("Launch", "Terminate"):
        if process in suspended:
            reasons.append(
                f"the group's {process} process is suspended (resume it with "
                f"aws autoscaling resume-processes --scaling-processes {process})"
            )
    if "Launch" in suspended:
        launching = False
    above = above_desired(group)
    if above is not None:
        reasons.append(above)  # a scale-up still may: more capacity never makes it worse
    for a in activities:
        if a["StatusCode"] not in FINISHED_ACTIVITY:
            what = a.get("Description") or a.get("Cause", "")
            progress = a.get("Progress")
            done = f", {progress}% done" if progress is not None else ""
            reasons.append(f"scaling activity {a['ActivityId']} is {a['StatusCode']}{done}: {what}")
            launching = launching and is_launch(a)
    for r in refreshes:
        if r.get("Status") in RUNNING_REFRESH:
            percent = r.get("PercentageComplete")
            done = f", {percent}% complete" if percent is not None else ""
            reasons.append(
                f"instance refresh {r.get('InstanceRefreshId', '?')} is {r.get('Status')}{done}"
            )
            launching = False
    return reasons, launching


def above_desired(group: Mapping[str, Any]) -> str | None:
    """Why the group's DesiredCapacity is not the capacity that serves, when the group runs
    more instances than it (else None).

    A scale-in whose instances are protected from it (instance scale-in protection) lowers
    DesiredCapacity and terminates nothing: the instances go on serving while the count
    reads lower. A policy deciding on that count would scale in again and again, and once
    the protection is removed the group would fall to whatever the count had sunk to.
    """
    desired = group["DesiredCapacity"]
    counted = [
        i
        for i in group.get("Instances", [])
        if not str(i.get("LifecycleState", "")).startswith(OUTSIDE_CAPACITY)
    ]
    if len(counted) <= desired:
        return None
    protected = sum(1 for i in counted if i.get("ProtectedFromScaleIn"))
    why = (
        f" ({protected} of them protected from scale-in: aws autoscaling "
        "set-instance-protection --no-protected-from-scale-in lets them go)"
        if protected
        else ""
    )
    return (
        f"the group runs {len(counted)} {noun(len(counted), 'instance')}, more than its "
        "DesiredCapacity "
        f"{desired}{why}: a scale-in waits until it runs no more than that"
    )


def is_launch(activity: ActivityTypeDef) -> bool:
    """True for an activity that launches an instance ("Launching a new EC2 instance: ..."):
    more capacity on the way, which a further scale-up does not disturb. Terminations,
    detachments and anything unrecognised are not."""
    return activity.get("Description", "").lower().startswith(LAUNCH_MARK)
