"""Replay real load traces through the pure decision core and compare policy settings.

A simple fleet model stands in for the target: each instance serves `capacity` requests
per second, new instances become useful only after a provisioning delay, and the
controller sees the mean load of the last interval (as `rate(...[interval])` would).
For each setting we count scaling actions, direction reversals within 10 minutes
(flapping), instance-hours (cost) and the share of time the ready fleet was too small.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from autoscaler.core.decision import decide
from autoscaler.core.model import (
    Action,
    AsgTarget,
    Check,
    Cooldown,
    Limits,
    Memory,
    Observation,
    Policy,
    Stabilization,
    StepLimit,
    Strategy,
    TargetStatus,
)

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
FLAP_WINDOW = 600.0


@dataclass(frozen=True)
class Trace:
    name: str
    times: list[float]
    rates: list[float]
    interval: float  # evaluation interval used for this trace, seconds
    provisioning: float  # seconds before a new instance serves


@dataclass(frozen=True)
class Result:
    actions: int
    reversals: int
    instance_hours: float
    under_capacity: float  # share of trace time with load above ready capacity


def read_trace(path: Path, interval: float, provisioning: float) -> Trace:
    times: list[float] = []
    rates: list[float] = []
    with path.open() as handle:
        for row in csv.DictReader(handle):
            times.append(float(row["timestamp_seconds"]))
            rates.append(float(row["requests_per_second"]))
    return Trace(path.stem, times, rates, interval, provisioning)


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def capacity_for(trace: Trace) -> float:
    """Per-instance capacity so that the trace's 99th percentile needs about 20 instances."""
    return max(1e-6, _percentile(trace.rates, 0.99) / 20)


def base_policy(capacity: float, interval: float) -> Policy:
    return Policy(
        name="sim",
        target=AsgTarget(asg="sim"),
        min=1,
        max=200,
        interval=timedelta(seconds=interval),
        checks=(
            Check(
                name="load",
                strategy=Strategy.PER_INSTANCE,
                query="sum(rate(requests_total[1m]))",
                target=0.7 * capacity,  # aim at 70 % utilisation
            ),
        ),
    )


def settings(capacity: float, interval: float) -> dict[str, Policy]:
    """The settings compared side by side."""
    base = base_policy(capacity, interval)
    naive = replace(
        base,
        cooldown=Cooldown(up=timedelta(0), down=timedelta(0)),
        stabilization=Stabilization(up=timedelta(0), down=timedelta(0)),
    )
    defaults = base  # cooldown 1m/5m, stabilization down 5m
    limited = replace(base, limits=Limits(down=StepLimit(count=1, percent=10)))
    return {"naive": naive, "defaults": defaults, "defaults+limits": limited}


def _ticks(trace: Trace) -> Iterator[tuple[float, float, float]]:
    """(tick time, mean rate over the last interval, seconds covered) per evaluation."""
    start, end = trace.times[0], trace.times[-1]
    index = 0
    t = start + trace.interval
    while t <= end:
        total, weight = 0.0, 0
        while index < len(trace.times) and trace.times[index] <= t:
            total += trace.rates[index]
            weight += 1
            index += 1
        if weight:
            yield t, total / weight, trace.interval
        t += trace.interval


def simulate(trace: Trace, policy: Policy, capacity: float) -> Result:
    memory = Memory()
    desired = policy.min
    pending: list[tuple[float, int]] = []  # (ready at, count) for scale-ups in flight
    ready = desired
    actions = reversals = 0
    last_direction: tuple[Action, float] | None = None
    instance_seconds = under = covered = 0.0
    for t, rate, span in _ticks(trace):
        now = EPOCH + timedelta(seconds=t)
        while pending and pending[0][0] <= t:
            ready = min(desired, ready + pending.pop(0)[1])
        instance_seconds += desired * span
        covered += span
        if rate > ready * capacity:
            under += span
        outcome = decide(
            policy,
            status=TargetStatus(count=desired),
            observations=[Observation(check="load", value=rate)],
            memory=memory,
            now=now,
        )
        memory = outcome.memory
        decision = outcome.decision
        if decision.action in (Action.UP, Action.DOWN) and decision.desired is not None:
            actions += 1
            if last_direction and last_direction[0] != decision.action:
                reversals += t - last_direction[1] < FLAP_WINDOW
            last_direction = (decision.action, t)
            memory = replace(memory, last_scaled_at=now)
            if decision.desired > desired:
                pending.append((t + trace.provisioning, decision.desired - desired))
            else:
                ready = min(ready, decision.desired)
            desired = decision.desired
    return Result(
        actions=actions,
        reversals=reversals,
        instance_hours=instance_seconds / 3600,
        under_capacity=under / covered if covered else math.nan,
    )
