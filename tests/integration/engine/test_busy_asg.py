"""A burst while the group launches instances: the reconciler scales further up through
the real ASG adapter (moto behind the fault-injecting proxy), and only scale-down waits."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta

import pytest

from autoscaler.adapters.state import MemoryStateStore
from autoscaler.adapters.targets import TargetFactory, aws_activity, aws_batch
from autoscaler.adapters.targets.aws_asg import AsgScaler
from autoscaler.core.model import (
    Action,
    AsgTarget,
    Check,
    Cooldown,
    Policy,
    Stabilization,
    Strategy,
    TargetRef,
)
from autoscaler.core.ports import ScalingTarget
from autoscaler.core.series import SeriesSet
from autoscaler.engine.reconciler import Reconciler
from tests.support.aws import AwsProxy

pytestmark = pytest.mark.integration

LAUNCHING = {"StatusCode": "InProgress", "Description": "Launching a new EC2 instance: i-0a"}
TERMINATING = {"StatusCode": "InProgress", "Description": "Terminating EC2 instance: i-0b"}


class Load:
    """A metric source whose one value the test sets."""

    def __init__(self) -> None:
        self.value = 0.0

    def query(self, promql: str) -> float:
        return self.value

    def query_series(self, promql: str, *, reuse: float = 0.0) -> SeriesSet:
        raise NotImplementedError  # the policies here have no grouped query

    def ping(self) -> None:
        return None


def _policy(asg: str) -> Policy:
    return Policy(
        name="web",
        target=AsgTarget(asg=asg),
        min=1,
        max=10,
        checks=(Check(name="rps", strategy=Strategy.PER_INSTANCE, query="rps", target=10.0),),
        cooldown=Cooldown(up=timedelta(0), down=timedelta(0)),
        stabilization=Stabilization(up=timedelta(0), down=timedelta(0)),
    )


@pytest.fixture
def reconciler(
    aws_proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch
) -> Callable[[Load], Reconciler]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_proxy.url)

    def make(load: Load) -> Reconciler:
        def targets(ref: TargetRef) -> ScalingTarget:
            assert isinstance(ref, AsgTarget)
            return AsgScaler(ref, deadline=3.0)

        return Reconciler(source=load, targets=targets, state=MemoryStateStore())

    return make


def test_a_group_launching_instances_is_scaled_further_up_during_a_burst(
    asg: str,
    aws_proxy: AwsProxy,
    reconciler: Callable[[Load], Reconciler],
    desired_capacity: Callable[[str], int],
) -> None:
    aws_proxy.set_activities([LAUNCHING], group=asg)
    load = Load()
    load.value = 60.0

    evaluation = reconciler(load).evaluate(_policy(asg))

    assert evaluation.scaled
    assert evaluation.decision.action is Action.UP
    assert desired_capacity(asg) == 6
    assert aws_proxy.count("SetDesiredCapacity") == 1
    assert any("launching instances" in r for r in evaluation.decision.reasons)


def test_a_group_launching_instances_is_not_scaled_down(
    asg: str,
    aws_proxy: AwsProxy,
    reconciler: Callable[[Load], Reconciler],
    desired_capacity: Callable[[str], int],
) -> None:
    aws_proxy.set_activities([LAUNCHING], group=asg)
    load = Load()
    load.value = 5.0  # asks for 1 of the group's 2

    evaluation = reconciler(load).evaluate(_policy(asg))

    assert evaluation.decision.action is Action.HOLD
    assert evaluation.decision.desired == 1
    assert "scale-down waits until the target is ready → hold" in evaluation.decision.reasons
    assert not evaluation.scaled
    assert desired_capacity(asg) == 2
    assert aws_proxy.count("SetDesiredCapacity") == 0


def test_a_group_terminating_instances_is_not_scaled_at_all(
    asg: str,
    aws_proxy: AwsProxy,
    reconciler: Callable[[Load], Reconciler],
    desired_capacity: Callable[[str], int],
) -> None:
    aws_proxy.set_activities([TERMINATING], group=asg)
    load = Load()
    load.value = 60.0

    evaluation = reconciler(load).evaluate(_policy(asg))

    assert evaluation.decision.action is Action.HOLD
    assert evaluation.decision.checks[0].error == "not evaluated"
    assert desired_capacity(asg) == 2
    assert aws_proxy.count("SetDesiredCapacity") == 0


def test_policies_prepared_together_read_their_groups_in_a_few_calls_not_one_each(
    make_asg: Callable[..., str], aws_proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the service does at each (re)load: the targets are built first, so from the
    first pass each DescribeAutoScalingGroups call carries up to 50 groups, not just the
    groups of the evaluations in flight (4 workers: 4)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_proxy.url)
    # Answers fetched along stay good for the whole pass, however slow the machine: on a
    # busy one the pass outlasted their 2 s and groups were read again (10 calls).
    monkeypatch.setattr(aws_batch, "FRESH", 60.0)
    monkeypatch.setattr(aws_activity, "FRESH", 60.0)
    policies = [replace(_policy(make_asg()), name=f"web-{i}") for i in range(60)]
    load = Load()
    load.value = 20.0  # 2 instances asked for: the groups' own count, nothing to scale
    reconciler = Reconciler(source=load, targets=TargetFactory(), state=MemoryStateStore())

    reconciler.prepare(policies)
    with ThreadPoolExecutor(4) as workers:
        actions = list(workers.map(lambda p: reconciler.evaluate(p).decision.action, policies))

    assert actions == [Action.NONE] * 60
    described = aws_proxy.count("DescribeAutoScalingGroups")
    assert described <= 6, described  # 60 / 4 workers would be 15 calls or more
    assert aws_proxy.count("DescribeScalingActivities") <= 2
