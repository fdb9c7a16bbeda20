"""`autoscaler run` and `autoscaler backtest` side by side on the same recorded samples.

`Recorded` holds raw samples per query text and answers instant queries (at the clock's
instant) and range queries as Prometheus does, with its 5-minute lookback (the latest
sample in `(t - 5m, t]`). `run_changes` drives the production `Reconciler` over a window on
an injected clock, evaluating at the policy's interval as `run` would (instant queries,
and range queries for the history of forecasts and the anomaly guard, whenever it asks);
`backtest_changes` replays the same window with `run_backtest`. A backtest that "behaves
exactly as `run`" gives the same changes.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from autoscaler.adapters.sources.prometheus_range import RangeSeries
from autoscaler.adapters.state.memory import MemoryStateStore
from autoscaler.core.model import Policy, TargetRef, TargetStatus
from autoscaler.core.series import SeriesSet
from autoscaler.engine.reconciler import Reconciler
from autoscaler.errors import QueryError
from autoscaler.replay.backtest import Options, run_backtest

LOOKBACK = 300.0  # Prometheus' default lookback delta, in seconds

# (instant, count before, count after) of each scale
Changes = list[tuple[datetime, int, int]]


class AtInstant(Protocol):
    """What `run_changes` reads: instant queries at `now` (which it sets), range queries."""

    now: datetime | None

    def query(self, promql: str) -> float: ...

    def query_series(self, promql: str, *, reuse: float = 0.0) -> SeriesSet: ...

    def ping(self) -> None: ...

    def query_range(
        self, promql: str, *, start: datetime, end: datetime, step: timedelta
    ) -> list[RangeSeries]: ...


class Recorded:
    """A `MetricSource` and `RangeSource` answering from raw samples, as Prometheus would."""

    def __init__(self, samples: Mapping[str, Sequence[tuple[float, float]]]) -> None:
        self._times = {q: [t for t, _ in sorted(s)] for q, s in samples.items()}
        self._values = {q: [v for _, v in sorted(s)] for q, s in samples.items()}
        self.now: datetime | None = None  # the instant queries are evaluated at
        self.ranges: list[tuple[str, datetime, datetime, timedelta]] = []

    def at(self, query: str, instant: float) -> float | None:
        times = self._times.get(query, [])
        index = bisect.bisect_right(times, instant) - 1
        if index < 0 or times[index] <= instant - LOOKBACK:
            return None
        return self._values[query][index]

    def query(self, promql: str) -> float:
        assert self.now is not None
        value = self.at(promql, self.now.timestamp())
        if value is None:
            raise QueryError(f"query {promql!r} returned no series")
        return value

    def query_series(self, promql: str, *, reuse: float = 0.0) -> SeriesSet:
        raise NotImplementedError  # the policies compared have no grouped query

    def ping(self) -> None:
        return None

    def query_range(
        self, promql: str, *, start: datetime, end: datetime, step: timedelta
    ) -> list[RangeSeries]:
        self.ranges.append((promql, start, end, step))
        first, last, seconds = start.timestamp(), end.timestamp(), step.total_seconds()
        points = []
        index = 0
        while first + index * seconds <= last + 1e-9:
            instant = round(first + index * seconds, 3)
            value = self.at(promql, instant)
            if value is not None:
                points.append((instant, value))
            index += 1
        return [RangeSeries(labels={}, points=tuple(points))] if points else []


class _Target:
    def __init__(self, count: int) -> None:
        self.count = count

    def status(self) -> TargetStatus:
        return TargetStatus(count=self.count)

    def scale(self, count: int, **_: object) -> None:
        self.count = count


def run_changes(
    policy: Policy, source: AtInstant, start: datetime, end: datetime, count: int
) -> Changes:
    """The scales `run` makes over `[start, end)`, evaluating every `policy.interval`."""
    target = _Target(count)
    clock = {"now": start}

    def targets(_ref: TargetRef) -> _Target:
        return target

    reconciler = Reconciler(
        source=source,
        targets=targets,
        state=MemoryStateStore(),
        clock=lambda: clock["now"],
        history=source,
    )
    changes: Changes = []
    now = start
    while now < end:
        clock["now"] = source.now = now
        evaluation = reconciler.evaluate(policy)
        decision = evaluation.decision
        if evaluation.scaled and decision.desired is not None:
            assert decision.current is not None  # a scale starts from a count it read
            changes.append((now, decision.current, decision.desired))
        now += policy.interval
    return changes


def backtest_changes(
    policy: Policy, source: Recorded, start: datetime, end: datetime, count: int
) -> Changes:
    """The scales `backtest` replays over `[start, end)` from the same samples."""
    options = Options(start=start, end=end, start_count=count)
    (replayed,) = run_backtest([policy], source, options).policies
    return [(change.at, change.old, change.new) for change in replayed.changes]
