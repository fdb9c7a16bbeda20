"""One policy replayed through the production reconciler on injected time.

The caller owns time and the world: before each evaluation it says what the clock reads,
what each check's query returns (a value, nothing, or an error) and what the target
reports; the harness runs `Reconciler.evaluate` exactly as `autoscaler run` does (state in
memory, scale calls recorded instead of sent) and hands back the decision. Cooldowns,
stabilization, limits, schedules, missing-data rules and fallbacks therefore behave as in
production, because they are the production code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from autoscaler.adapters.state import MemoryStateStore
from autoscaler.core.model import Decision, Policy, TargetRef, TargetStatus
from autoscaler.core.ports import RangeSource
from autoscaler.core.series import SeriesSet, describe_select
from autoscaler.engine.evaluation import Evaluation
from autoscaler.engine.reconciler import Reconciler
from autoscaler.errors import QueryError

# What a check's query returns at one instant: a number, None (no series: the check fails
# as "no data"), or a message (the query failed with that error).
Value = float | None | str


@dataclass
class _Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


# (check name, query, labels of its series in a grouped query): a check the reconciler reads.
_Read = tuple[str, str, tuple[tuple[str, str], ...]]


@dataclass
class _Source:
    """`MetricSource` answering each check with the value set for it at this instant.

    Values are per check, not per query text: two checks of one query may be mapped to
    different signals (`simulate`), have different input values (`autoscaler test`) or be
    rescaled alone (`backtest --rescale`). The reconciler reads the checks one query each,
    in the policy's order (`Reconciler._observe`), so the n-th query of an evaluation is
    the n-th check in `reads`; `restart` rewinds to the first before each evaluation. A
    query that is not the one expected there is a harness bug, raised as such.
    """

    reads: tuple[_Read, ...] = ()
    values: Mapping[str, Value] = field(default_factory=dict)
    position: int = 0

    def restart(self, values: Mapping[str, Value]) -> None:
        self.values = values
        self.position = 0

    def _next(self, promql: str) -> _Read:
        """The check the reconciler reads with `promql`: the next one."""
        at = self.position
        reads = self.reads
        if at >= len(reads) or reads[at][1] != promql:
            expected = repr(reads[at][1]) if at < len(reads) else "no more queries"
            raise RuntimeError(
                f"replay harness out of step with the reconciler: it read {promql!r} "
                f"where {expected} was expected"
            )
        self.position = at + 1
        return reads[at]

    def query(self, promql: str) -> float:
        # `_next`, inlined for the common case: `simulate` asks this once per tick.
        at = self.position
        reads = self.reads
        if at < len(reads) and reads[at][1] == promql:
            self.position = at + 1
            name = reads[at][0]
        else:
            name = self._next(promql)[0]  # raises, saying how it is out of step
        values = self.values
        if name not in values:
            raise QueryError(f"no data for {promql!r} at this instant")
        value = values[name]
        if value is None:
            raise QueryError("no data (no series)")
        if isinstance(value, str):
            raise QueryError(value)
        return value

    def query_series(self, promql: str, *, reuse: float = 0.0) -> SeriesSet:
        """The grouped query's answer as the replayed target sees it: its own series (with
        the labels it selects) or none; the reconciler picks it as in production."""
        name, _, select = self._next(promql)
        value = self.values.get(name)
        if isinstance(value, str):
            raise QueryError(value)
        if value is None:
            shown = describe_select(select)
            raise QueryError(f"no series with {shown} in the grouped query {promql!r} here")
        return SeriesSet(promql, [(dict(select), value)])

    def ping(self) -> None:
        return None


@dataclass
class _Target:
    """`ScalingTarget` whose status the harness sets and whose scale calls are recorded."""

    current: TargetStatus
    scaled_to: int | None = None

    def status(self) -> TargetStatus:
        return self.current

    def scale(
        self,
        count: int,
        *,
        reason: str,
        meta: Mapping[str, str],
        expected: int | None = None,
        deadline: float | None = None,
    ) -> None:
        self.scaled_to = count


class _Forgetful(MemoryStateStore):
    """State in memory that keeps the policy's memory but no decision history."""

    def record(self, decision: Decision) -> None:
        return None


class Replay:
    """Evaluates one policy again and again on caller-supplied instants, data and status.

    State (cooldowns, stabilization history, missing-data streaks) lives in memory for the
    replay's lifetime, as it would in the state database of `run`. `history` answers the
    range queries of forecasts and the anomaly guard (what Prometheus would hold before
    and during the replay); without it they learn only from the values evaluated.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        start: datetime,
        count: int,
        keep_history: bool = True,
        history: RangeSource | None = None,
    ) -> None:
        self.policy = policy
        self._clock = _Clock(start)
        self._source = _Source()
        self._target = _Target(TargetStatus(count=count))
        # A week of 15-second evaluations is 40,320 decisions: a caller that reads each
        # evaluation as it comes need not keep them all.
        self._state = MemoryStateStore() if keep_history else _Forgetful()
        self._reconciler = Reconciler(
            source=self._source,
            targets=self._target_for,
            state=self._state,
            clock=self._clock,
            history=history,
        )
        # The checks `Reconciler._observe` reads, in its order: each answered with its own value.
        self._source.reads = tuple(
            (c.name, c.query, c.select)
            for c in policy.checks
            if c.query is not None and c.unsupported is None
        )

    def _target_for(self, _ref: TargetRef) -> _Target:
        return self._target

    def evaluate(
        self,
        now: datetime,
        values: Mapping[str, Value],
        status: TargetStatus,
        *,
        dry_run: bool = False,
    ) -> Evaluation:
        """Evaluate at `now` with `values` per check name and the target's `status`.

        A check missing from `values` has no data at this instant. The returned
        evaluation's `scaled` is True when the policy called the (recorded) scale API;
        `decision.desired` is then the new count.
        """
        self._clock.now = now
        self._source.restart(values)
        self._target.current = status
        self._target.scaled_to = None
        evaluation = self._reconciler.evaluate(self.policy, dry_run=dry_run)
        if evaluation.scaled and self._target.scaled_to is None:
            return replace(evaluation, scaled=False)
        return evaluation

    def history(self, limit: int = 1_000_000) -> list[Decision]:
        """Every recorded decision, oldest first (none with `keep_history=False`)."""
        return list(reversed(self._state.history(policy=self.policy.name, limit=limit)))
