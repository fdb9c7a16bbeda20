"""The anomaly guard's judgement over a recorded series (`screened`): what history read back
from Prometheus may teach the forecast, judged as live values are."""

from __future__ import annotations

import math
from datetime import timedelta

from autoscaler.core.anomaly import screened
from autoscaler.core.model import AnomalyGuard

GUARD = AnomalyGuard(window=timedelta(minutes=30), confirm=3)


def _minutes(values: list[float], start: float = 0.0) -> list[tuple[float, float]]:
    return [(start + 60.0 * i, v) for i, v in enumerate(values)]


def test_a_lone_spike_becomes_a_gap_and_the_rest_is_kept() -> None:
    values = [100.0 + (i % 5) for i in range(40)]
    values[30] = 100_000.0
    kept = screened(_minutes(values), GUARD)
    assert math.isnan(kept[30][1])
    assert [v for i, (_, v) in enumerate(kept) if i != 30] == values[:30] + values[31:]


def test_a_step_confirmed_by_enough_points_in_a_row_is_kept_from_then_on() -> None:
    values = [100.0 + (i % 5) for i in range(30)] + [1_000.0] * 10
    kept = [v for _, v in screened(_minutes(values), GUARD)]
    assert all(math.isnan(v) for v in kept[30:32])  # two in a row: not yet confirmed
    assert kept[32:] == [1_000.0] * 8  # the third confirms it, as live evaluations do


def test_too_few_values_to_judge_are_kept_and_what_came_before_counts() -> None:
    early = _minutes([100_000.0, 100.0])
    assert [v for _, v in screened(early, GUARD)] == [100_000.0, 100.0]  # nothing to judge by
    before = _minutes([100.0 + (i % 5) for i in range(20)])
    later = [(20 * 60.0, 100_000.0)]
    assert math.isnan(screened(later, GUARD, before)[0][1])
    # `before` is only what precedes the points (a window read later is not context).
    assert screened(before[:1], GUARD, before) == before[:1]
