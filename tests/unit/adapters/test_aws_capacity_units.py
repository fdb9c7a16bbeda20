"""`capacity_units`: an Auto Scaling Group whose capacity is not a number of instances.

AWS counts Min/Max/DesiredCapacity in vCPUs or MiB with `DesiredCapacityType`, and in
the weights' units with a weighted mixed instances policy: a policy's instance count set
there is another capacity (20 instances set as 20 vCPUs of 4-vCPU instances is 5).
"""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.adapters.targets.aws_status import capacity_units


def _mixed(*weights: str | None) -> dict[str, Any]:
    overrides = [
        {"InstanceType": f"t3.{i}", **({"WeightedCapacity": w} if w else {})}
        for i, w in enumerate(weights)
    ]
    return {"MixedInstancesPolicy": {"LaunchTemplate": {"Overrides": overrides}}}


@pytest.mark.parametrize(
    ("group", "units"),
    [
        pytest.param({}, None, id="plain"),
        pytest.param({"DesiredCapacityType": "units"}, None, id="units"),
        pytest.param({"DesiredCapacityType": "vcpu"}, "vcpu (DesiredCapacityType)", id="vcpu"),
        pytest.param(
            {"DesiredCapacityType": "memory-mib"},
            "memory-mib (DesiredCapacityType)",
            id="memory",
        ),
        pytest.param(_mixed(None, None), None, id="mixed-unweighted"),
        pytest.param(_mixed("1", "1"), None, id="weights-of-one"),
        pytest.param(_mixed("1", "4"), "weighted units (WeightedCapacity 1, 4)", id="weighted"),
        pytest.param(
            {**_mixed(None), "Instances": [{"WeightedCapacity": "1"}, {"WeightedCapacity": "4"}]},
            "weighted units (instances of WeightedCapacity 1, 4 still running)",
            id="weight-removed-instances-keep-theirs",
        ),
        pytest.param(
            {"Instances": [{"WeightedCapacity": "1"}, {"InstanceId": "i-1"}]},
            None,
            id="instances-of-weight-one",
        ),
    ],
)
def test_a_group_is_refused_unless_its_capacity_counts_instances(
    group: dict[str, Any], units: str | None
) -> None:
    assert capacity_units(group) == units
