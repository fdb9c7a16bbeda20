"""Controllers to compare a policy with, run on the same trace and fleet model.

- `hpa`: the Kubernetes Horizontal Pod Autoscaler's algorithm with its defaults (replica
  calculation with tolerance 0.1 and not-yet-ready pods, scale-down stabilization 300 s,
  scale-up limited to max(+100 %, +4) per 15 s, scale-down to -100 % per 15 s, sync 15 s),
  on a per-pod request rate whose target is `capacity × target-utilization`.
- `aws-tt`: an approximation of EC2 target tracking on request count per instance.
- `static` (peak demand all the time) and `oracle` (exactly the demand, always ready) are
  not closed-loop controllers: the simulator builds their supply directly.

Closed-loop controllers see what a policy sees: the mean load over their interval, one
scrape late, and the instances that were ready at that scrape.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from autoscaler.core.strategies import ceil_count
from autoscaler.replay.fleet import Fleet

BASELINES = ("hpa", "aws-tt", "static", "oracle")


class Controller(Protocol):
    """Decides a fleet's desired count from the load it observed."""

    name: str
    interval: float  # seconds between two evaluations

    def decide(self, t: float, load: float, seen_ready: int, fleet: Fleet) -> int:
        """The desired count at `t` seconds, given the observed `load` (req/s)."""
        ...

    def explain(self) -> tuple[str, ...]:
        """Why the last `decide` chose its count (asked only when it changed the count)."""
        ...


@dataclass
class Hpa:
    """The Kubernetes HPA (`pkg/controller/podautoscaler`) with its default behavior.

    Replica calculation: usage ratio = (load / ready pods) / target. Without pods still
    starting: `ceil(ratio × ready)` unless |ratio - 1| <= tolerance. With some: on a
    scale-up they count as idle (ratio recomputed over all pods), on a scale-down they are
    left out, and the count never moves against the ratio. Then the behaviors: the
    highest recommendation of the last 300 s caps a scale-down, and each 15 s period allows
    up to max(double, +4) and down to any count; finally min/max replicas. When it first
    sees the target, the HPA records the current count as a recommendation made then
    (`recordInitialRecommendation`), so its first scale-down waits a whole window.
    """

    target: float  # request rate one pod should carry
    min: int
    max: int
    name: str = "hpa"
    interval: float = 15.0
    tolerance: float = 0.1
    down_window: float = 300.0
    up_window: float = 0.0
    period: float = 15.0
    up_percent: float = 100.0
    up_pods: int = 4
    down_percent: float = 100.0
    _highest: deque[tuple[float, int]] = field(default_factory=deque)
    _lowest: deque[tuple[float, int]] = field(default_factory=deque)
    _events: deque[tuple[float, int]] = field(default_factory=deque)
    _why: tuple[str, ...] = ()
    _seeded: bool = False

    def decide(self, t: float, load: float, seen_ready: int, fleet: Fleet) -> int:
        current = fleet.desired
        if not self._seeded:  # `recordInitialRecommendation`: the count found, as of now
            self._seeded = True
            self._highest.append((t, current))
            self._lowest.append((t, current))
        proposed = self._replicas(load, seen_ready, current)
        stabilized = self._stabilize(t, proposed, current)
        desired = min(self.max, max(self.min, self._rate_limit(t, stabilized, current)))
        if desired != current:
            self._events.append((t, desired - current))
            self._why = (
                f"hpa: {load:.4g} req/s on {seen_ready} ready of {current} → {proposed}",
                *(() if desired == proposed else (f"behavior → {desired}",)),
            )
        return desired

    def explain(self) -> tuple[str, ...]:
        return self._why

    def _replicas(self, load: float, seen_ready: int, current: int) -> int:
        ready = min(seen_ready, current)
        if ready <= 0:
            return current  # no pod reports a metric: the HPA keeps the count
        ratio = load / ready / self.target
        starting = current - ready
        if not starting:
            if abs(1.0 - ratio) <= self.tolerance:
                return current
            return ceil_count(ratio * ready)
        if ratio > 1.0:
            rebalanced, pods = ratio * ready / current, current  # starting pods count as idle
        else:
            rebalanced, pods = ratio, ready  # a scale-down ignores pods that are starting
        if abs(1.0 - rebalanced) <= self.tolerance or (ratio > 1.0) != (rebalanced > 1.0):
            return current
        replicas = ceil_count(rebalanced * pods)
        if (rebalanced < 1.0 and replicas > current) or (rebalanced > 1.0 and replicas < current):
            return current
        return replicas

    def _stabilize(self, t: float, proposed: int, current: int) -> int:
        """Up to the lowest recommendation of the up window, down to the highest of the down
        window (both strictly after `t - window`, this one included)."""
        highest, lowest = self._highest, self._lowest
        while highest and highest[0][0] <= t - self.down_window:
            highest.popleft()
        while lowest and lowest[0][0] <= t - self.up_window:
            lowest.popleft()
        down = max(proposed, highest[0][1]) if highest else proposed
        up = min(proposed, lowest[0][1]) if lowest else proposed
        # Monotonic queues: the front is the extreme of every later suffix of the window.
        while highest and highest[-1][1] <= proposed:
            highest.pop()
        highest.append((t, proposed))
        while lowest and lowest[-1][1] >= proposed:
            lowest.pop()
        lowest.append((t, proposed))
        return min(max(current, up), down)

    def _rate_limit(self, t: float, desired: int, current: int) -> int:
        events = self._events
        while events and events[0][0] <= t - self.period:
            events.popleft()
        if desired == current:
            return desired  # nothing to limit (most syncs): the events need no summing
        added = sum(change for _, change in events if change > 0)
        removed = -sum(change for _, change in events if change < 0)
        if desired > current:
            start = current - added
            most = max(math.ceil(start * (1 + self.up_percent / 100)), start + self.up_pods)
            return min(desired, most)
        if desired < current:
            start = current + removed
            least = math.ceil(start * (1 - self.down_percent / 100))
            return max(desired, least)
        return desired


@dataclass
class AwsTargetTracking:
    """An approximation of EC2 Auto Scaling target tracking on request count per instance.

    Every minute one datapoint: the minute's mean load per ready instance. Scale out when
    the last 3 datapoints are above the target, to `ceil(load / target)` if that is more
    than the current count (instances warming up already count, so a new alarm adds only
    what they do not cover). Scale in when the last 15 are below 90 % of the target and no
    instance launched in the last `warmup` seconds, to `ceil(load / target)`. The real
    service's alarm evaluation and rounding are not published in this detail.
    """

    target: float
    min: int
    max: int
    name: str = "aws-tt"
    interval: float = 60.0
    warmup: float = 300.0
    out_points: int = 3
    in_points: int = 15
    in_fraction: float = 0.9
    _points: deque[float] = field(default_factory=deque)
    _launches: deque[float] = field(default_factory=deque)
    _why: tuple[str, ...] = ()

    def decide(self, t: float, load: float, seen_ready: int, fleet: Fleet) -> int:
        current = fleet.desired
        if seen_ready > 0:
            self._points.append(load / seen_ready)
            if len(self._points) > max(self.in_points, self.out_points):
                self._points.popleft()
        else:
            self._points.clear()  # no instance reports: the alarms lack data
        points = list(self._points)
        wanted = min(self.max, max(self.min, ceil_count(load / self.target)))
        while self._launches and self._launches[0] <= t - self.warmup:
            self._launches.popleft()
        if len(points) >= self.out_points and all(
            p > self.target for p in points[-self.out_points :]
        ):
            if wanted > current:
                self._launches.append(t)
                self._why = (f"aws-tt: {self.out_points} minutes above target → {wanted}",)
                return wanted
        elif (
            len(points) >= self.in_points
            and all(p < self.in_fraction * self.target for p in points[-self.in_points :])
            and not self._launches
            and wanted < current
        ):
            self._why = (f"aws-tt: {self.in_points} minutes below 90 % of target → {wanted}",)
            return wanted
        return current

    def explain(self) -> tuple[str, ...]:
        return self._why
