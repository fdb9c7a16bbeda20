"""The recommended policy: what the README shows is what `simulate` runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.core.model import Strategy
from autoscaler.replay.recommended import recommended_policy, recommended_yaml

README = Path(__file__).resolve().parents[3] / "README.md"


def test_readme_shows_the_recommended_policy_verbatim() -> None:
    block = "```yaml\n" + recommended_yaml(100, 0.7) + "```"
    assert block in README.read_text(encoding="utf-8")


def test_recommended_policy_targets_capacity_times_utilization() -> None:
    policy = recommended_policy(12.5, 0.8, max_count=40)
    (check,) = policy.checks
    assert check.name == "load" and check.strategy is Strategy.PER_INSTANCE
    assert check.target == pytest.approx(10.0)
    assert (policy.min, policy.max) == (1, 40)


def test_recommended_policy_refuses_impossible_settings() -> None:
    with pytest.raises(ValueError, match="capacity"):
        recommended_yaml(0, 0.7)
    with pytest.raises(ValueError, match="utilization"):
        recommended_yaml(10, 0)


@pytest.mark.parametrize("capacity", [1e-5, 3e-7, 1e11, 123456789012.0])
def test_numbers_are_written_as_yaml_floats_whatever_their_size(capacity: float) -> None:
    policy = recommended_policy(capacity, 0.7)
    assert policy.checks[0].target == pytest.approx(capacity * 0.7, rel=1e-9)
