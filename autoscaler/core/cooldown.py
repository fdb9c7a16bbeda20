"""Cooldowns: how long until the policy may scale up, or down, again.

One home for the rule, read by the decision core (to hold a change) and by the API view
(to show `cooldown_remaining`), so the two can never disagree: the last scaling action is
the later of ours (the policy's memory) and the target's own record, so a scale by someone
else also starts a cooldown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from autoscaler.core.frozen import fast_init
from autoscaler.core.model import Cooldown


@fast_init
@dataclass(frozen=True, kw_only=True)
class CooldownLeft:
    """Time left before a scale-up and before a scale-down (zero when free to act)."""

    last_scaled_at: datetime | None
    up: timedelta = timedelta(0)
    down: timedelta = timedelta(0)

    def of(self, direction: str) -> timedelta:
        """The time left for `direction` (`"up"` or `"down"`)."""
        return self.up if direction == "up" else self.down


def last_action(*recorded: datetime | None) -> datetime | None:
    """The latest of the recorded scaling actions (ours, the target's), None if none."""
    times = [t for t in recorded if t is not None]
    return max(times) if times else None


def plausible(theirs: datetime | None, cooldown: Cooldown, now: datetime) -> datetime | None:
    """The target's own record of its last change (an ASG activity, a Nomad event), unless
    it is dated more than the longest cooldown after `now`: a clock ahead (a Nomad
    server's, or this host's stepped back) that would hold every change until then, since
    that record is not ours to correct (ours is, by the reconciler)."""
    if theirs is not None and theirs > now and theirs - now > max(cooldown.up, cooldown.down):
        return None
    return theirs


def cooldown_left(
    cooldown: Cooldown, last_scaled_at: datetime | None, now: datetime
) -> CooldownLeft:
    """What remains of each direction's cooldown at `now`, rounded up to whole seconds."""
    if last_scaled_at is None:
        return CooldownLeft(last_scaled_at=None)
    elapsed = now - last_scaled_at  # no instant is computed: none can overflow
    return CooldownLeft(
        last_scaled_at=last_scaled_at,
        up=_left(cooldown.up, elapsed),
        down=_left(cooldown.down, elapsed),
    )


_ZERO = timedelta(0)


def _left(period: timedelta, elapsed: timedelta) -> timedelta:
    # A last action dated after `now` (clocks that disagree: a host's stepped back, a Nomad
    # server's or AWS's ahead) counts whole within one period of skew, and no further: 2 h
    # ahead held every scale for 2 h, and the stores keep the latest time, across restarts.
    left = period - max(elapsed, -period)
    if left <= _ZERO:
        return _ZERO
    return timedelta(seconds=math.ceil(left.total_seconds()))
