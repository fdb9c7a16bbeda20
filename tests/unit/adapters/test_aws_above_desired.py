"""`above_desired`: a group running more instances than its DesiredCapacity.

A scale-in whose instances are protected lowers DesiredCapacity and terminates nothing:
the count then reads lower than what serves, and a policy deciding on it would scale in
again. Instances leaving, set aside or warm do not count toward the desired capacity.
"""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.adapters.targets.aws_status import above_desired, busy_reasons


def _group(desired: int, *states: str, protected: int = 0) -> dict[str, Any]:
    instances = [
        {"InstanceId": f"i-{n}", "LifecycleState": s, "ProtectedFromScaleIn": n < protected}
        for n, s in enumerate(states)
    ]
    return {"DesiredCapacity": desired, "Instances": instances}


@pytest.mark.parametrize(
    ("group", "over"),
    [
        pytest.param(_group(2, "InService", "InService"), False, id="as-desired"),
        pytest.param(_group(3, "InService", "Pending:Wait"), False, id="still-launching"),
        pytest.param(_group(2, "InService", "InService", "Terminating:Wait"), False, id="leaving"),
        pytest.param(_group(1, "InService", "Standby", "EnteringStandby"), False, id="standby"),
        pytest.param(_group(1, "InService", "Warmed:Running", "Detaching"), False, id="warm"),
        pytest.param(_group(1, "InService", "InService", protected=2), True, id="protected"),
        pytest.param(_group(1, "InService", "Pending"), True, id="pending-counts"),
        pytest.param(_group(0, "Quarantined"), True, id="unknown-state-counts"),
    ],
)
def test_only_instances_counted_toward_the_desired_capacity_make_it_too_low(
    group: dict[str, Any], over: bool
) -> None:
    assert (above_desired(group) is not None) is over


def test_the_reason_names_the_protection_only_when_there_is_one() -> None:
    assert above_desired(_group(1, "InService", "InService")) == (
        "the group runs 2 instances, more than its DesiredCapacity 1: a scale-in waits "
        "until it runs no more than that"
    )
    assert "1 of them protected from scale-in" in (
        above_desired(_group(1, "InService", "InService", protected=1)) or ""
    )


def test_a_group_above_its_desired_capacity_holds_scale_in_only() -> None:
    reasons, launching = busy_reasons(
        _group(1, "InService", "InService", protected=2),  # type: ignore[arg-type]
        (),
        (),
    )
    assert len(reasons) == 1 and launching
