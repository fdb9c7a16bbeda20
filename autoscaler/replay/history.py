"""Recorded check values over a time range: range queries, each sent once, read per instant.

`backtest` needs, for every check of every policy, what its query returned at each
instant the policy would have been evaluated. One range query per distinct query and grid
answers that for all the checks and policies that share it (Prometheus' range API is an
instant query repeated on a grid, so the answer is what `run` would have seen). The answer
is then judged per instant as an instant query's is: no series is "no data", several
series is an error, NaN and ±Inf are left to the reconciler, which fails the check.
A grouped query (a template's check with `group_by`) is sent once as well, and each
target reads the series whose labels match its own `select`, judged the same way.

Fetching runs on one background thread, a few queries ahead of the replay that consumes
them, so Prometheus works while Python decides; each answer is dropped once the last
policy that needs it has taken it.
"""

from __future__ import annotations

import bisect
import math
import threading
from array import array
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from autoscaler.adapters.sources.prometheus_range import RangeSeries
from autoscaler.core.series import Select, describe_select, matching
from autoscaler.errors import QueryError, SourceUnavailable
from autoscaler.replay.harness import Value

# A query's instants are matched to the grid to the millisecond (Prometheus' resolution).
_TOLERANCE = 0.001


class RangeSource(Protocol):
    """Runs range queries (implemented by `PrometheusSource.query_range`)."""

    def query_range(
        self, promql: str, *, start: datetime, end: datetime, step: timedelta
    ) -> list[RangeSeries]: ...


@dataclass(frozen=True)
class Grid:
    """The instants a policy is evaluated at: `start`, `start + step`, ... (`count` of them)."""

    start: datetime
    step: timedelta
    count: int

    @classmethod
    def covering(cls, start: datetime, end: datetime, step: timedelta) -> Grid:
        """The instants of `[start, end)` on a grid of `step` starting at `start`."""
        if step <= timedelta(0):
            raise ValueError(f"the step must be positive, got {step}")
        return cls(start, step, max(0, math.ceil((end - start) / step)))

    def at(self, index: int) -> datetime:
        return self.start + index * self.step

    @property
    def last(self) -> datetime:
        return self.at(self.count - 1)


class History:
    """What one query returned at each instant of a grid, as a check would read it (for a
    grouped query: the series of one target's `select`)."""

    def __init__(
        self, promql: str, grid: Grid, error: str | None = None, select: Select = ()
    ) -> None:
        self.promql = promql
        self.grid = grid
        self.error = error  # the query as a whole failed: every instant reads this error
        self.select = select
        self._values = array("d", bytes(8 * grid.count))
        self._series = bytearray(grid.count)  # series with a sample there, saturating at 255

    @classmethod
    def from_series(
        cls, promql: str, grid: Grid, series: Sequence[RangeSeries], select: Select = ()
    ) -> History:
        """The per-instant reading of a range query's answer on `grid`; with `select`, of
        the series that match it."""
        history = cls(promql, grid, select=select)
        series = matching(series, select)
        start, step = grid.start.timestamp(), grid.step.total_seconds()
        for one in series:
            for timestamp, value in one.points:
                offset = (timestamp - start) / step
                index = round(offset)
                if not 0 <= index < grid.count or abs(offset - index) * step > _TOLERANCE:
                    continue  # not one of our instants (a server that ignored the grid)
                history._values[index] = value
                history._series[index] = min(255, history._series[index] + 1)
        return history

    def value(self, index: int) -> Value:
        """The check's reading at instant `index`: a number, None (no series) or an error."""
        if self.error is not None:
            return self.error
        found = self._series[index]
        if found == 1:
            return self._values[index]
        if found == 0:
            return None
        several = f"{found}" if found < 255 else "255 or more"
        if self.select:
            shown = describe_select(self.select)
            return (
                f"{several} series match {shown} in the grouped query {self.promql!r}: "
                "ambiguous; aggregate by the group_by labels (e.g. sum by (...)) so each "
                "target has exactly one series"
            )
        return (
            f"query {self.promql!r} returned {several} series; a check needs exactly one: "
            "aggregate with sum()/max()/avg() or add label matchers"
        )


Key = tuple[str, Grid]  # what is fetched: one range query
Need = tuple[str, Grid] | tuple[str, Grid, Select]  # what is read: (query, grid[, select])


def _need(need: Need) -> tuple[str, Grid, Select]:
    if len(need) == 3:
        return need
    return (need[0], need[1], ())


class HistoryFetcher:
    """Hands out the `History` of each (query, grid[, select]), sending each distinct
    (query, grid) only once: the targets of a grouped query each read their own series.

    `needs` lists every (query, grid[, select]) in the order the replay will `take` them,
    duplicates included (one per check that reads it); the fetcher keeps at most `ahead`
    distinct queries fetched or in flight beyond the one being read. Use as a context
    manager.
    """

    def __init__(self, source: RangeSource, needs: Sequence[Need], *, ahead: int = 4) -> None:
        self._source = source
        full = [_need(need) for need in needs]
        self._order: list[Key] = list(dict.fromkeys((q, g) for q, g, _ in full))
        self._position = {key: position for position, key in enumerate(self._order)}
        self._left: dict[tuple[str, Grid, Select], int] = {}
        self._selects: dict[Key, set[Select]] = {}
        for promql, grid, select in full:
            self._left[(promql, grid, select)] = self._left.get((promql, grid, select), 0) + 1
            self._selects.setdefault((promql, grid), set()).add(select)
        self._ahead = max(1, ahead)
        self._futures: dict[Key, Future[dict[Select, History]]] = {}
        self._submitted = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="range-queries")
        self.sent = 0  # distinct range queries asked of the source
        self.errors: dict[str, str] = {}  # query -> why Prometheus rejected it

    def __enter__(self) -> HistoryFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop fetching; queries not yet started are dropped."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def take(self, promql: str, grid: Grid, select: Select = ()) -> History:
        """The history of `promql` on `grid` (of the series matching `select`); raises
        `SourceUnavailable` if unreachable."""
        key, need = (promql, grid), (promql, grid, select)
        if need not in self._left:
            raise KeyError(f"{promql!r} on {grid} was not announced to the fetcher")
        with self._lock:
            if key not in self._futures:
                # Taken out of the announced order: fetch it now, then resume the order.
                self._futures[key] = self._pool.submit(self._fetch, key)
            self._submit_upto(self._position[key] + self._ahead)
            future = self._futures[key]
        history = future.result()[select]
        with self._lock:
            self._left[need] -= 1
            if not any(self._left[(promql, grid, s)] for s in self._selects[key]):
                del self._futures[key]  # the last check that reads it has it: free the memory
        return history

    def _submit_upto(self, position: int) -> None:
        while self._submitted < min(position + 1, len(self._order)):
            key = self._order[self._submitted]
            self._submitted += 1
            wanted = any(self._left.get((*key, s), 0) > 0 for s in self._selects[key])
            if key not in self._futures and wanted:
                self._futures[key] = self._pool.submit(self._fetch, key)

    def _fetch(self, key: Key) -> dict[Select, History]:
        promql, grid = key
        selects = self._selects[key]
        self.sent += 1
        if grid.count == 0:
            return {s: History(promql, grid, select=s) for s in selects}
        try:
            series = self._source.query_range(
                promql, start=grid.start, end=grid.last, step=grid.step
            )
        except SourceUnavailable:
            raise
        except QueryError as exc:
            self.errors[promql] = str(exc)
            return {s: History(promql, grid, error=str(exc), select=s) for s in selects}
        return {s: History.from_series(promql, grid, series, s) for s in selects}


class StoredHistory:
    """`RangeSource` answering from points read before: what a replay's forecasts and
    anomaly guard learn from (see `lookbacks`), as Prometheus would answer `run`.

    Points are held per (query, step in seconds): a forecast's at its resolution, before
    the window and inside it (`run` reads again what the model missed between
    evaluations), the guard's window at the interval. A step it does not hold has no
    series (it was never read at that step, and averaging another step's samples is not
    what `run` learns). It answers the points on the asked grid between `start` and `end`,
    and never one at or after `now`, the instant being evaluated (the replay sets it before
    each evaluation), so no decision learns from its future. `scale` maps a query to the
    factor of each point in time (`backtest --rescale`; None: no usable value there).
    """

    def __init__(
        self,
        points: Mapping[tuple[str, float], Sequence[tuple[float, float]]],
        labels: Mapping[str, Mapping[str, str]] | None = None,
        *,
        scale: Mapping[str, Callable[[float], float | None]] | None = None,
    ) -> None:
        self._points = {key: tuple(held) for key, held in points.items()}  # in time order
        self._times = {key: [t for t, _ in held] for key, held in self._points.items()}
        self._labels = dict(labels or {})  # a grouped query's: those of the target's series
        self._scale = dict(scale or {})
        self.now = math.inf  # epoch seconds of the evaluation asking

    def query_range(
        self, promql: str, *, start: datetime, end: datetime, step: timedelta
    ) -> list[RangeSeries]:
        seconds = step.total_seconds()
        key = (promql, seconds)
        held, times = self._points.get(key, ()), self._times.get(key, [])
        low, high = start.timestamp(), end.timestamp()
        first = bisect.bisect_left(times, low - _TOLERANCE)
        last = bisect.bisect_right(times, high + _TOLERANCE)
        scale = self._scale.get(promql)
        answer: list[tuple[float, float]] = []
        for t, value in held[first:last]:
            if t >= self.now:
                break  # the future of the evaluation asking: `run` could not have read it
            offset = (t - low) / seconds
            if abs(offset - round(offset)) * seconds > _TOLERANCE:
                continue  # another grid of the same step (the guard's, not the forecast's)
            factor = 1.0 if scale is None else scale(t)
            if factor is not None:  # None: no usable value there
                answer.append((t, value * factor))
        labels = dict(self._labels.get(promql, {}))
        return [RangeSeries(labels=labels, points=tuple(answer))] if answer else []
