"""The simulated fleet: what a scale call buys, and when it starts serving.

Fixed rules, so that results compare with other tools: time moves in 15-second ticks; a
scale-up is billed at once and its instances serve `provisioning` later (at the first tick
at or after that); a scale-down takes effect at once and removes instances that are not
ready yet first (the most recently requested first), then ready ones.
"""

from __future__ import annotations

import math
from collections import deque

TICK_SECONDS = 15.0


def ticks_for(seconds: float) -> int:
    """Whole ticks needed to cover `seconds` (0 for 0)."""
    return max(0, math.ceil(seconds / TICK_SECONDS - 1e-9))


class Fleet:
    """Billed (`desired`) and serving (`ready`) instance counts of one simulated target."""

    __slots__ = ("_pending", "desired", "provisioning_ticks", "ready")

    def __init__(self, count: int, provisioning_ticks: int) -> None:
        self.desired = count
        self.ready = count
        self.provisioning_ticks = provisioning_ticks
        self._pending: deque[list[int]] = deque()  # [ready at tick, count], oldest first

    @property
    def pending(self) -> int:
        """Instances billed but not serving yet."""
        return self.desired - self.ready

    def advance(self, tick: int) -> None:
        """Instances whose provisioning ends at or before `tick` start serving."""
        pending = self._pending
        while pending and pending[0][0] <= tick:
            self.ready += pending.popleft()[1]

    def scale_to(self, count: int, tick: int) -> None:
        """Set the billed count at `tick`; new instances serve after the provisioning time."""
        if count > self.desired:
            self._pending.append([tick + self.provisioning_ticks, count - self.desired])
            self.desired = count
            self.advance(tick)
            return
        remove = self.desired - count
        pending = self._pending
        while remove and pending:
            newest = pending[-1]
            taken = min(remove, newest[1])
            newest[1] -= taken
            remove -= taken
            if not newest[1]:
                pending.pop()
        self.ready -= remove
        self.desired = count
