"""What a backtest's forecasts and anomaly guard read back, read as `run` reads it.

Under `run` (`engine.histories`), a forecast reads its `history` at its `resolution` on
that resolution's grid (from the first whole bucket to the last whole bucket before now),
then again whatever its model missed since its last value: with an interval longer than
two buckets, at every evaluation. The anomaly guard reads its `window` once, at the
policy's interval, on the grid ending one interval before its first evaluation. A backtest
reads the same points with one range query per query, step and grid over the union of
what every policy needs (the forecast's through the window, since `run` reads inside it
too), and `StoredHistory` answers each read from them, never past the evaluation asking.
With `--rescale`, `Simulated` gives what the history inside the window is scaled by.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from autoscaler.adapters.sources.prometheus_range import RangeSeries
from autoscaler.core.model import Policy
from autoscaler.errors import QueryError, SourceUnavailable
from autoscaler.replay.history import Grid, RangeSource

# (query, step, whether it reads through the window): a forecast's does, the guard's not.
Lookback = tuple[str, timedelta, bool]
# What is sent: (query, step, where its grid falls within a step), over a range of epoch seconds.
Fetch = tuple[str, timedelta, float]
_FIRST_INSTANT = datetime.min.replace(tzinfo=UTC).timestamp()  # 0001-01-01T00:00:00Z


def lookbacks(policy: Policy) -> dict[Lookback, timedelta]:
    """Per (query, step, through the window), how far before the window `policy` reads
    back: each forecast its `history` at its `resolution`, the guard its `window` at the
    policy's interval (a query both forecast and guarded is read at both steps, as `run`
    reads it; the longer span when several checks read one query at one step)."""
    guard = policy.anomaly if policy.anomaly is not None and policy.anomaly.enabled else None
    wanted: dict[Lookback, timedelta] = {}
    for check in policy.checks:
        if check.query is None:
            continue
        spans: list[tuple[Lookback, timedelta]] = []
        if check.forecast is not None:
            spans.append(((check.query, check.forecast.resolution, True), check.forecast.history))
        if guard is not None:
            spans.append(((check.query, policy.interval, False), guard.window))
        for lookback, span in spans:
            wanted[lookback] = max(wanted.get(lookback, span), span)
    return wanted


def span_of(
    lookback: Lookback, span: timedelta, start: datetime, end: datetime
) -> tuple[float, float]:
    """The first and last instants (epoch seconds) `lookback` reads for a window
    `[start, end)`: a forecast's on its resolution's grid, from the first whole bucket of
    its history to the last whole bucket before `end` (`Histories._model`); the guard's
    window up to one interval before `start` (`Histories._fill_window`)."""
    _, step, through = lookback
    seconds = step.total_seconds()
    if through:
        first = math.ceil((start.timestamp() - span.total_seconds()) / seconds) * seconds
        return first, math.floor(end.timestamp() / seconds) * seconds - seconds
    return start.timestamp() - span.total_seconds(), start.timestamp() - seconds


def _fetch(query: str, step: timedelta, first: float) -> Fetch:
    seconds = step.total_seconds()
    return (query, step, round(first % seconds, 3))


class PastReads:
    """The lookback range queries of `policies` over `[start, end)`, each sent once: the
    lookbacks of one query at one step on one grid (several policies', a template's
    targets', a forecast's and the guard's when their grids coincide) share one range
    query over the union of their ranges. An answer is kept while a later policy still
    needs it. Raises `OverflowError` when some history would start before year 1."""

    def __init__(self, policies: Sequence[Policy], start: datetime, end: datetime) -> None:
        self.start, self.end = start, end
        self._ranges: dict[Fetch, tuple[float, float]] = {}
        self._left: dict[Fetch, int] = {}
        for policy in policies:
            for fetch, (first, last) in self._needs(policy).items():
                self._left[fetch] = self._left.get(fetch, 0) + 1
                had = self._ranges.get(fetch, (first, last))
                self._ranges[fetch] = (min(had[0], first), max(had[1], last))
        if any(first < _FIRST_INSTANT for first, _ in self._ranges.values()):
            # Said before any query is sent, as a bad --from is (datetime would raise).
            raise OverflowError("a forecast's or anomaly guard's history starts before year 1")
        self._answers: dict[Fetch, list[RangeSeries] | QueryError] = {}
        self.sent = 0  # distinct range queries asked of the source

    def _needs(self, policy: Policy) -> dict[Fetch, tuple[float, float]]:
        """The range queries `policy`'s lookbacks read from, with the range each needs."""
        needs: dict[Fetch, tuple[float, float]] = {}
        for lookback, span in lookbacks(policy).items():
            first, last = span_of(lookback, span, self.start, self.end)
            fetch = _fetch(lookback[0], lookback[1], first)
            had = needs.get(fetch, (first, last))
            needs[fetch] = (min(had[0], first), max(had[1], last))
        return needs

    def fetches(self, policy: Policy) -> list[Fetch]:
        """The distinct range queries `policy`'s lookbacks read from, in its checks' order."""
        return list(self._needs(policy))

    def get(self, source: RangeSource, fetch: Fetch) -> list[RangeSeries] | QueryError:
        """The answer of `fetch` (sent at its first use), or the `QueryError` Prometheus
        answered; raises `SourceUnavailable` when it cannot be reached."""
        answer = self._answers.get(fetch)
        first, last = self._ranges[fetch]
        if answer is None and last < first:
            answer = []  # nothing whole to read (a window shorter than a step), as in `run`
        if answer is None:
            self.sent += 1
            query, step, _ = fetch
            try:
                answer = source.query_range(
                    query,
                    start=datetime.fromtimestamp(first, UTC),
                    end=datetime.fromtimestamp(last, UTC),
                    step=step,
                )
            except SourceUnavailable:
                raise  # unreachable is no rejected query: the backtest stops (exit 3)
            except QueryError as exc:
                answer = exc
        left = self._left.get(fetch, 1) - 1
        self._left[fetch] = left
        if left > 0:
            self._answers[fetch] = answer
        else:
            self._answers.pop(fetch, None)
        return answer


class Simulated:
    """The recorded count and the simulated count before and after each evaluation so far:
    what `--rescale` scales a forecast's history read inside the window by, as it scaled
    the values evaluated. A point at an evaluation's instant is scaled as that evaluation's
    value was, one between two evaluations by the counts after the earlier one; one
    before the window is left as read (as before the window, the value as recorded)."""

    def __init__(self, grid: Grid) -> None:
        self._start, self._step = grid.start.timestamp(), grid.step.total_seconds()
        self._recorded = array("q")  # 0: none recorded
        self._before = array("q")
        self._after = array("q")

    def add(self, recorded: int | None, before: int, after: int) -> None:
        self._recorded.append(recorded or 0)
        self._before.append(before)
        self._after.append(after)

    def factor(self, at: float) -> float | None:
        """Recorded / simulated count at `at` (epoch seconds); None when it cannot be
        rescaled (no recorded count, a simulated count of 0, or not evaluated yet)."""
        offset = (at - self._start) / self._step
        index = round(offset)
        on_instant = abs(offset - index) * self._step <= 0.001
        if not on_instant:
            index = math.floor(offset)
        if index < 0:
            return 1.0
        if index >= len(self._after):
            return None
        simulated = self._before[index] if on_instant else self._after[index]
        recorded = self._recorded[index]
        return recorded / simulated if recorded and simulated else None
