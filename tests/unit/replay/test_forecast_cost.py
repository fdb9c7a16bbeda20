"""`bench.forecast_cost`: how the forecast's extra instance-ticks are split into episodes."""

from __future__ import annotations

from autoscaler.replay.scores import Scores
from autoscaler.replay.simulate import Run, Setup, Simulation
from autoscaler.replay.trace import Trace
from bench.forecast_cost import Episodes, episodes


def run(name: str, ready: list[int], billed: list[int]) -> Run:
    scores = Scores(
        name=name,
        instance_hours=0.0,
        under_provisioned_pct=0.0,
        accuracy_u=0.0,
        accuracy_o=0.0,
        timeshare_u=0.0,
        timeshare_o=0.0,
        jitter_per_hour=0.0,
        actions=0,
    )
    return Run(name, "policy", ready, billed, [], scores)


def simulation(
    loads: list[float], utilization: float = 1.0, provisioning: float = 15.0
) -> Simulation:
    """One instance serves 10 req/s; ticks of 15 s."""
    trace = Trace("t", [15.0 * k for k in range(len(loads))], loads, 15.0, 15.0 * len(loads))
    setup = Setup(capacity=10.0, target_utilization=utilization, provisioning=provisioning)
    return Simulation(trace, setup, loads, [setup.demand(x) for x in loads])


def test_an_episode_helps_when_the_twin_is_short_during_it_or_within_provisioning() -> None:
    sim = simulation([10.0, 10.0, 10.0, 10.0, 25.0, 10.0, 10.0, 10.0, 10.0, 10.0])
    # Ours buys 2 more at tick 2, ready when the burst comes (tick 4); again at 7-8 for nothing.
    ours = run("ours", [1, 1, 1, 1, 3, 1, 1, 1, 1, 1], [1, 1, 3, 3, 3, 1, 1, 3, 3, 1])
    twin = run("twin", [1] * 10, [1] * 10)
    assert episodes(sim, ours, twin, by_demand=False) == Episodes(
        helped=1, wasted=1, helped_extra=6, wasted_extra=4
    )


def test_an_episode_that_ended_still_helps_while_the_twins_late_instances_start() -> None:
    sim = simulation([10.0, 10.0, 25.0, 25.0], provisioning=30.0)
    # Ours orders at tick 1, the twin at tick 2 (billed alike from then): the episode is
    # tick 1 alone, and ours is ready for the burst at tick 2, the twin only at tick 4.
    ours = run("ours", [1, 1, 3, 3], [1, 3, 3, 3])
    twin = run("twin", [1, 1, 1, 1], [1, 1, 3, 3])
    assert episodes(sim, ours, twin, by_demand=False) == Episodes(1, 0, 2, 0)


def test_ticks_where_ours_bills_less_are_no_episode() -> None:
    sim = simulation([10.0] * 4)
    ours = run("ours", [1] * 4, [1] * 4)
    twin = run("twin", [2] * 4, [2] * 4)
    assert episodes(sim, ours, twin, by_demand=False) == Episodes(0, 0, 0, 0)


def test_short_means_below_demand_or_under_capacity_as_asked() -> None:
    # At utilization 0.5 a load of 8 needs 2 instances, and 1 still serves it.
    sim = simulation([4.0, 4.0, 8.0, 8.0], utilization=0.5)
    ours = run("ours", [1, 1, 2, 2], [1, 2, 2, 2])
    twin = run("twin", [1] * 4, [1] * 4)
    assert episodes(sim, ours, twin, by_demand=True) == Episodes(1, 0, 3, 0)
    assert episodes(sim, ours, twin, by_demand=False) == Episodes(0, 1, 0, 3)
