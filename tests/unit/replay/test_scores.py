"""BUNGEE elasticity scores, pinned on the SPEC RG example vector."""

from __future__ import annotations

import pytest

from autoscaler.replay.scores import SCORE_KEYS, changes, mean_shortfall, score


def steps(changes_at: dict[int, int], end: int) -> list[int]:
    """A step function given as {time: new value}, sampled once per time unit until `end`."""
    out, value = [], 0
    for t in range(end):
        value = changes_at.get(t, value)
        out.append(value)
    return out


# The example of the BUNGEE metric definitions: demand and supply over 20 time units.
DEMAND = steps({0: 1, 7: 5, 16: 3, 17: 2, 19: 4, 20: 4}, end=20)
SUPPLY = steps({0: 1, 2: 2, 3: 1, 5: 3, 9: 7, 11: 6, 12: 8, 14: 2}, end=20)


def test_raw_under_provisioning_accuracy_of_the_bungee_vector_is_13_over_20() -> None:
    assert mean_shortfall(DEMAND, SUPPLY) == pytest.approx(13 / 20)


def test_bungee_vector_scores() -> None:
    hour = 3600.0  # one time unit of the example = one hour
    s = score(
        "example",
        demand=DEMAND,
        supply=SUPPLY,
        billed=SUPPLY,
        overloaded=[d > s for d, s in zip(DEMAND, SUPPLY, strict=True)],
        actions=7,
        step_seconds=hour,
    )
    # shortfall / demand: 2 units at 2/5, 2 at 3/5, 1 at 1/3, 1 at 2/4
    assert s.accuracy_u == pytest.approx(100 / 20 * (2 * 2 / 5 + 2 * 3 / 5 + 1 / 3 + 2 / 4))
    # excess / demand: 1 at 1/1, 2 at 2/1, 2 at 2/5, 1 at 1/5, 2 at 3/5
    assert s.accuracy_o == pytest.approx(100 / 20 * (1 + 2 * 2 + 2 * 2 / 5 + 1 / 5 + 2 * 3 / 5))
    assert s.timeshare_u == pytest.approx(100 * 6 / 20)
    assert s.timeshare_o == pytest.approx(100 * 8 / 20)
    # 7 supply changes, 4 demand changes (the last "change" to 4 at 20 is none) in 20 h
    assert changes(SUPPLY) == 7 and changes(DEMAND) == 4
    assert s.jitter_per_hour == pytest.approx(3 / 20)
    assert s.instance_hours == pytest.approx(66)
    assert s.under_provisioned_pct == pytest.approx(30)
    assert s.actions == 7


def test_score_keys_are_the_json_contract() -> None:
    s = score(
        "x", demand=[1], supply=[1], billed=[1], overloaded=[False], actions=0, step_seconds=15
    )
    assert (
        tuple(s.to_dict())
        == SCORE_KEYS
        == (
            "name",
            "instance_hours",
            "under_provisioned_pct",
            "accuracy_u",
            "accuracy_o",
            "timeshare_u",
            "timeshare_o",
            "jitter_per_hour",
            "actions",
        )
    )


def test_series_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="one entry per step"):
        score(
            "x",
            demand=[1, 2],
            supply=[1],
            billed=[1],
            overloaded=[False],
            actions=0,
            step_seconds=15,
        )
