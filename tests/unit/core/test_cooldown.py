"""Cooldowns: one rule for the decision and the API, counted from the latest action."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autoscaler.core.cooldown import cooldown_left, last_action
from autoscaler.core.model import Cooldown

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
COOLDOWN = Cooldown(up=timedelta(minutes=1), down=timedelta(minutes=5))


def test_no_action_recorded_leaves_no_cooldown() -> None:
    left = cooldown_left(COOLDOWN, None, NOW)
    assert (left.up, left.down, left.last_scaled_at) == (timedelta(0), timedelta(0), None)


@pytest.mark.parametrize(
    ("ago", "up", "down"),
    [
        pytest.param(timedelta(seconds=20), 40, 280, id="both-running"),
        pytest.param(timedelta(seconds=59.5), 1, 241, id="rounded-up-to-whole-seconds"),
        pytest.param(timedelta(minutes=2), 0, 180, id="up-over-down-running"),
        pytest.param(timedelta(minutes=5), 0, 0, id="both-over-at-the-boundary"),
        pytest.param(timedelta(seconds=-10), 70, 310, id="a-record-from-the-future-counts-whole"),
        # ... within one period of skew: a record 2 h ahead held every change for 2 h.
        pytest.param(timedelta(hours=-2), 120, 600, id="a-far-future-record-holds-two-periods"),
    ],
)
def test_time_left_per_direction(ago: timedelta, up: int, down: int) -> None:
    left = cooldown_left(COOLDOWN, NOW - ago, NOW)
    assert (left.of("up"), left.of("down")) == (timedelta(seconds=up), timedelta(seconds=down))


def test_the_latest_of_ours_and_the_targets_record_counts() -> None:
    ours, theirs = NOW - timedelta(minutes=4), NOW - timedelta(seconds=30)
    assert last_action(ours, theirs) == theirs
    assert last_action(None, theirs) == theirs
    assert last_action(ours, None) == ours
    assert last_action(None, None) is None
