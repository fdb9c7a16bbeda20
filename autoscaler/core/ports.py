"""The small interfaces between the reconciler and the outside world.

Adapters (`sources/`, `targets/`, `state`) implement these; the reconciler and the service
only ever see these Protocols, so tests can swap any of them for a real server or a fake.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from autoscaler.core.model import Decision, Memory, TargetStatus
from autoscaler.core.series import SeriesSet


class MetricSource(Protocol):
    """Runs instant PromQL queries."""

    def query(self, promql: str) -> float:
        """The query's single finite value.

        Raises `QueryError` when there is no usable value (no series, several series, NaN,
        ±Inf, a PromQL error) and `SourceUnavailable` when the source cannot be reached.
        """
        ...

    def query_series(self, promql: str, *, reuse: float = 0.0) -> SeriesSet:
        """Every series of the instant query `promql` (a grouped query read by many checks).

        A source that keeps answers may hand out one sent up to `reuse` seconds ago, so one
        query per tick feeds every target of a template; others ignore `reuse`. Raises
        `QueryError` when the query fails or does not give an instant vector, and
        `SourceUnavailable` when the source cannot be reached.
        """
        ...

    def ping(self) -> None:
        """Return when the source answers; raise `SourceUnavailable` otherwise."""
        ...


class RangeSeries(Protocol):
    """One series of a range query's answer."""

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def points(self) -> Sequence[tuple[float, float]]:
        """(epoch seconds, value) in time order; NaN and ±Inf as Prometheus gave them."""
        ...


@runtime_checkable
class RangeSource(Protocol):
    """Runs range queries: the history forecasts and the anomaly guard learn from."""

    def query_range(
        self, promql: str, *, start: datetime, end: datetime, step: timedelta
    ) -> Sequence[RangeSeries]:
        """Every series of `promql` evaluated at `start`, `start + step`, ... up to `end`.

        Raises `QueryError` when the query is rejected and `SourceUnavailable` when the
        source cannot be reached.
        """
        ...


class ScalingTarget(Protocol):
    """Reads and sets the count of one scalable object."""

    def status(self) -> TargetStatus:
        """The current count, whether the target may be touched now, and its own bounds.

        Raises `TargetError` (or a subclass) when the target cannot be read.
        """
        ...

    def scale(
        self,
        count: int,
        *,
        reason: str,
        meta: Mapping[str, str],
        expected: int | None = None,
        deadline: float | None = None,
    ) -> None:
        """Set the count. `reason` and `meta` are recorded where the target supports it.

        `expected` is the count the decision was made on: a target that reads its count
        before setting it raises `TargetBusy` when someone else changed it since, so an
        intended scale-up never lands below a count raised by hand in between (nor a
        scale-in on a count that was lowered meanwhile).

        `deadline` (under `--ha`: where the leader lease's local validity ends) is an
        instant of the adapters' monotonic clock (`CLOCK_BOOTTIME`, see
        `adapters.deadline`): no request is sent or retried at or after it, and each
        request's timeout ends by it; the call then raises `TargetDeadline`. None: only
        the target's own retry deadline applies.

        Raises `TargetError` (or a subclass) when the change is refused or fails.
        """
        ...


class StateStore(Protocol):
    """Durable per-policy memory and decision history, so restarts forget nothing.

    Every method may raise `StateError` when the store cannot be read or written.
    """

    def load(self, policy: str, target_key: str) -> Memory:
        """The memory of `policy`; `last_scaled_at` is the latest action on `target_key`."""
        ...

    def save(self, policy: str, target_key: str, memory: Memory) -> None:
        """Persist `memory` (and its `last_scaled_at` for `target_key`).

        Returns only once it is durable; raises `StateError` when it is not.
        """
        ...

    def remember(self, policy: str, target_key: str, memory: Memory) -> None:
        """Keep `memory` as the policy's newest; it may be written with the next write.

        What every evaluation keeps (recommendations, missing-data streaks) need not have a
        transaction of its own: a store may write it with the `record` of the same
        evaluation's decision, which returns only once both are durable (group commit).
        Raises only `NotLeader` (this replica may not write at all); `durability_problem()`
        says whether writes are failing. Scaling actions use `save`, which waits.
        """
        ...

    def withdraw(self, target_key: str, *, at: datetime, previous: datetime | None) -> None:
        """A scaling action saved ahead of the scale call at `at` did not happen: the
        target's last action goes back to `previous`, unless a later one replaced `at`."""
        ...

    def durability_problem(self) -> str | None:
        """None while what is saved is durable; else why not (the last write failed)."""
        ...

    def record(self, decision: Decision) -> None:
        """Append a decision to the history (with what `remember` kept), durably.

        Raises `StateError` when it is not durable. A store that keeps it to write later
        takes a new `record` of the same policy and time as a new version of it (replacing
        it while unwritten, ignored once written), so the caller can add why.
        """
        ...

    def history(self, *, policy: str | None = None, limit: int = 100) -> list[Decision]:
        """Recorded decisions, newest first."""
        ...

    def close(self) -> None: ...
