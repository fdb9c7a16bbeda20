"""The fleet model: billed at once, serving after provisioning, pending removed first."""

from __future__ import annotations

from autoscaler.replay.fleet import Fleet, ticks_for


def test_scale_up_is_billed_at_once_and_serves_after_provisioning() -> None:
    fleet = Fleet(2, provisioning_ticks=8)
    fleet.scale_to(5, tick=10)
    assert (fleet.desired, fleet.ready, fleet.pending) == (5, 2, 3)
    fleet.advance(17)
    assert fleet.ready == 2
    fleet.advance(18)
    assert fleet.ready == 5


def test_scale_down_removes_instances_not_yet_ready_first_newest_first() -> None:
    fleet = Fleet(2, provisioning_ticks=8)
    fleet.scale_to(4, tick=0)  # 2 ready at tick 8
    fleet.scale_to(7, tick=4)  # 3 more ready at tick 12
    fleet.scale_to(3, tick=5)  # removes the 3 newest pending, then 1 of the older batch
    assert (fleet.desired, fleet.ready, fleet.pending) == (3, 2, 1)
    fleet.advance(8)
    assert fleet.ready == 3
    fleet.advance(12)
    assert fleet.ready == 3  # the removed batch never arrives


def test_scale_down_below_ready_takes_effect_at_once() -> None:
    fleet = Fleet(6, provisioning_ticks=8)
    fleet.scale_to(8, tick=0)
    fleet.scale_to(3, tick=1)
    assert (fleet.desired, fleet.ready, fleet.pending) == (3, 3, 0)


def test_no_provisioning_time_serves_in_the_same_tick() -> None:
    fleet = Fleet(1, provisioning_ticks=0)
    fleet.scale_to(4, tick=3)
    assert fleet.ready == 4


def test_provisioning_rounds_up_to_whole_ticks() -> None:
    assert [ticks_for(s) for s in (0, 10, 15, 16, 120)] == [0, 1, 1, 2, 8]
