"""The HPA and EC2 target-tracking baselines, against cases computed by hand."""

from __future__ import annotations

import pytest

from autoscaler.replay.baselines import AwsTargetTracking, Hpa
from autoscaler.replay.fleet import Fleet


def fleet(desired: int, ready: int) -> Fleet:
    f = Fleet(ready, provisioning_ticks=8)
    if desired > ready:
        f.scale_to(desired, tick=0)
    return f


@pytest.mark.parametrize(
    ("load", "ready", "desired", "expected"),
    [
        # 43 req/s on 4 pods of target 10: ratio 1.075, inside the 0.1 tolerance
        pytest.param(43.0, 4, 4, 4, id="within-tolerance"),
        # 60 on 4: ratio 1.5 -> ceil(1.5 * 4) = 6
        pytest.param(60.0, 4, 4, 6, id="scale-up"),
        # 200 on 2: ratio 10 -> 20, but one period allows max(2 * 2, 2 + 4) = 6
        pytest.param(200.0, 2, 2, 6, id="scale-up-rate-limit"),
        # 60 on 4 ready of 6: ratio 1.5, with 2 starting pods idle 1.5 * 4 / 6 = 1.0: hold
        pytest.param(60.0, 4, 6, 6, id="starting-pods-absorb"),
        # 80 on 4 ready of 6: 2.0, rebalanced 8 / 6 -> ceil(8 / 6 * 6) = 8
        pytest.param(80.0, 4, 6, 8, id="starting-pods-count-idle"),
        # no pod reports a metric: keep the count
        pytest.param(50.0, 0, 3, 3, id="no-metrics"),
    ],
)
def test_hpa_replica_calculation(load: float, ready: int, desired: int, expected: int) -> None:
    hpa = Hpa(target=10.0, min=1, max=100)
    assert hpa.decide(0.0, load, ready, fleet(desired, ready)) == expected


def test_hpa_scale_down_waits_for_the_300_second_window() -> None:
    hpa = Hpa(target=10.0, min=1, max=100)
    f = fleet(6, 6)
    assert hpa.decide(0.0, 60.0, 6, f) == 6  # ratio 1: recommendation 6 at t=0
    for t in range(15, 300, 15):  # 30 req/s: ratio 0.5 -> 3, held by the 6 of t=0
        assert hpa.decide(float(t), 30.0, 6, f) == 6
    # at t=300 the recommendation of t=0 leaves the window (strictly after t - 300)
    assert hpa.decide(300.0, 30.0, 6, f) == 3


def test_hpa_first_sync_counts_the_current_replicas_for_the_window() -> None:
    # `recordInitialRecommendation`: the 6 found at t=0 is a recommendation made then, so
    # 30 req/s (ratio 0.5 -> 3) from the very first sync waits the whole window.
    hpa = Hpa(target=10.0, min=1, max=100)
    f = fleet(6, 6)
    for t in range(0, 300, 15):
        assert hpa.decide(float(t), 30.0, 6, f) == 6
    assert hpa.decide(300.0, 30.0, 6, f) == 3
    # It holds no scale-up: the up window (0 s) has only the current recommendation.
    hpa = Hpa(target=10.0, min=1, max=100)
    assert hpa.decide(0.0, 90.0, 6, fleet(6, 6)) == 9


def test_hpa_scale_down_ignores_starting_pods() -> None:
    hpa = Hpa(target=10.0, min=1, max=100, down_window=0.0)
    # 20 req/s on 4 ready of 6: ratio 0.5 over the ready pods -> ceil(0.5 * 4) = 2
    assert hpa.decide(0.0, 20.0, 4, fleet(6, 4)) == 2


def test_hpa_stays_within_min_and_max() -> None:
    hpa = Hpa(target=10.0, min=2, max=5, down_window=0.0)
    assert hpa.decide(0.0, 500.0, 4, fleet(4, 4)) == 5
    assert hpa.decide(15.0, 1.0, 4, fleet(4, 4)) == 2


def test_aws_scales_out_after_three_minutes_above_target() -> None:
    tt = AwsTargetTracking(target=10.0, min=1, max=100)
    f = fleet(4, 4)
    assert tt.decide(0.0, 60.0, 4, f) == 4
    assert tt.decide(60.0, 60.0, 4, f) == 4
    assert tt.decide(120.0, 60.0, 4, f) == 6  # ceil(60 / 10)


def test_aws_only_adds_what_warming_instances_do_not_cover() -> None:
    tt = AwsTargetTracking(target=10.0, min=1, max=100)
    f = fleet(4, 4)
    for t in (0.0, 60.0):
        tt.decide(t, 60.0, 4, f)
    f.scale_to(tt.decide(120.0, 60.0, 4, f), tick=8)
    assert f.desired == 6
    assert tt.decide(180.0, 55.0, 4, f) == 6  # still above target, but 6 covers 55 req/s
    assert tt.decide(240.0, 75.0, 4, f) == 8


def test_aws_scales_in_after_fifteen_minutes_below_90_percent_and_no_warmup() -> None:
    tt = AwsTargetTracking(target=10.0, min=1, max=100)
    f = fleet(8, 8)
    decisions = [tt.decide(60.0 * m, 40.0, 8, f) for m in range(15)]
    assert decisions[:14] == [8] * 14  # 5 req/s per instance < 9, for 14 minutes only
    assert decisions[14] == 4  # ceil(40 / 10)


def test_aws_does_not_scale_in_while_instances_warm_up() -> None:
    tt = AwsTargetTracking(target=10.0, min=1, max=100, warmup=1200.0)
    f = fleet(4, 4)
    for m in range(3):
        f.scale_to(tt.decide(60.0 * m, 60.0, 4, f), tick=4 * m)  # out to 6 at t=120
    assert f.desired == 6
    # 15 low minutes are complete at t=1020, but the launch of t=120 warms up until 1320
    held = [tt.decide(60.0 * m, 10.0, 6, f) for m in range(3, 22)]
    assert set(held) == {6}
    assert tt.decide(60.0 * 22, 10.0, 6, f) == 1
