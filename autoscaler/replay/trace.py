"""Load traces: a CSV of request rates over time -> per-tick mean load for the simulator.

A trace is a step function: each row gives the mean rate from its timestamp until the next
row's (the last row lasts one usual spacing of the trace), so a gap in the timestamps holds
the previous rate. The simulator looks at it in 15-second ticks and through controllers'
scrape windows; both are exact means of that step function, computed from its running
integral. A bad row is a `TraceError` naming the file and line, never a traceback.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from autoscaler.core.durations import format_duration
from autoscaler.core.names import counted
from autoscaler.core.ranges import MAX_REPLAY_OFFSET
from autoscaler.errors import AutoscalerError

if TYPE_CHECKING:
    import _csv

TIME_COLUMN = "timestamp_seconds"
RATE_COLUMN = "requests_per_second"
MAX_RATE = 1e15
"""The highest rate a row may give: far above any service (a larger one is a unit mistake),
far below where the requests summed over the trace and its history overflow a float."""
MAX_SPAN = MAX_REPLAY_OFFSET.total_seconds()
"""The longest a trace may last, from its first row to its last: ten years, as `--from` and
`--to` (a 15-second tick each: 21 million ticks; a farther row is a typo or a unit mistake)."""


class TraceError(AutoscalerError):
    """A trace file cannot be read or holds a bad row; the message says FILE:LINE: why."""


@dataclass(frozen=True)
class Trace:
    """Request rates at strictly increasing offsets (seconds), first row at offset 0."""

    name: str
    times: Sequence[float]  # seconds since the first row
    rates: Sequence[float]  # mean requests per second from this row's time to the next's
    step: float  # the usual spacing of the rows (a longer one is a gap)
    end: float  # seconds from the first row to the end of the last row's interval

    def gaps(self) -> list[tuple[float, float]]:
        """(offset, length) of each spacing longer than the usual step: held, not observed."""
        return [
            (a, b - a)
            for a, b in zip(self.times, self.times[1:], strict=False)
            if b - a > self.step
        ]

    def window(self, start: float, end: float) -> Trace:
        """The part of the trace between two offsets, shifted to start at 0."""
        if start >= self.end:  # said first: with no --to, `end` is the trace's own end
            raise TraceError(
                f"{self.name}: the trace ends at {_seconds(self.end)}, not after {_seconds(start)}"
            )
        if not 0 <= start < end:
            raise TraceError(f"{self.name}: the window {start:g}..{end:g} s is empty")
        first = max(0, bisect.bisect_right(self.times, start) - 1)
        last = bisect.bisect_left(self.times, end)
        times = [max(t, start) - start for t in self.times[first:last]]
        length = min(end, self.end) - start
        return Trace(self.name, times, list(self.rates[first:last]), self.step, length)


def read_trace(path: str | Path) -> Trace:
    """The trace in a CSV whose header names `timestamp_seconds` and `requests_per_second`.

    Other columns are ignored. Raises `TraceError` (FILE:LINE: message) for a missing file
    or column, a value that is not a finite number, a negative rate or one above `MAX_RATE`,
    timestamps that do not increase or span more than `MAX_SPAN`, or fewer than two rows.
    """
    path = Path(path)
    try:
        # utf-8-sig: a byte-order mark (Excel writes one) is not part of the header.
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return parse_trace(handle, name=str(path))
    except OSError as exc:
        raise TraceError(f"{path}: cannot read the trace: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise TraceError(f"{path}: not a text CSV file ({exc.reason})") from None


def parse_trace(lines: Iterable[str], *, name: str) -> Trace:
    """The trace in CSV text (an iterable of lines); `name` is used in errors."""
    reader = csv.reader(lines)
    rows = _rows(reader, name)
    header = next(rows, None)
    if header is None:
        raise TraceError(
            f"{name}:1: empty file: expected a header with {TIME_COLUMN},{RATE_COLUMN}"
        )
    columns = [column.strip() for column in header]
    missing = [c for c in (TIME_COLUMN, RATE_COLUMN) if c not in columns]
    if missing:
        raise TraceError(
            f"{name}:{reader.line_num}: header lacks {' and '.join(missing)} "
            f"(found: {', '.join(columns) or 'nothing'})"
        )
    t_index, r_index = columns.index(TIME_COLUMN), columns.index(RATE_COLUMN)
    width = max(t_index, r_index) + 1
    times: list[float] = []
    rates: list[float] = []
    for row in rows:
        if not row or all(not cell.strip() for cell in row):
            continue
        where = f"{name}:{reader.line_num}"
        if len(row) < width:
            raise TraceError(
                f"{where}: {counted(len(row), 'field')}, the header has {len(columns)}"
            )
        t = _number(row[t_index], where, TIME_COLUMN)
        r = _number(row[r_index], where, RATE_COLUMN)
        if r < 0:
            raise TraceError(f"{where}: {RATE_COLUMN}: {row[r_index].strip()} is negative")
        if r > MAX_RATE:
            raise TraceError(
                f"{where}: {RATE_COLUMN}: {row[r_index].strip()} is above {MAX_RATE:g} "
                "requests per second: check the column's unit"
            )
        if times and t <= times[-1]:
            raise TraceError(
                f"{where}: {TIME_COLUMN}: {row[t_index].strip()} is not after the previous "
                f"row's {times[-1]:g}: rows must be in increasing time order"
            )
        if times and t - times[0] > MAX_SPAN:
            raise TraceError(
                f"{where}: {TIME_COLUMN}: {row[t_index].strip()} is more than 10y (3650d) "
                f"after the first row's {times[0]:g}: a trace lasts at most 10y; check the "
                "column's unit (seconds)"
            )
        times.append(t)
        rates.append(r)
    if len(times) < 2:
        raise TraceError(
            f"{name}: {counted(len(times), 'data row')}: a trace needs at least two, since the "
            "spacing of the rows is its interval"
        )
    origin = times[0]
    offsets = [t - origin for t in times]
    step = _usual_step(offsets)
    return Trace(name, offsets, rates, step, offsets[-1] + step)


def _rows(reader: _csv.Reader, name: str) -> Iterator[list[str]]:
    """The rows of `reader`; what the csv module refuses (a field over its size limit) is
    a `TraceError` at its line."""
    try:
        yield from reader
    except csv.Error as exc:
        raise TraceError(f"{name}:{reader.line_num}: not a CSV row: {exc}") from None


def _seconds(seconds: float) -> str:
    """`179940 s (2d1h59m)`: an offset as given and as a duration."""
    return f"{seconds:g} s ({format_duration(timedelta(seconds=seconds))})"


def _number(text: str, where: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceError(f"{where}: {column}: {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise TraceError(f"{where}: {column}: {text.strip()} is not a finite number")
    return value


def _usual_step(times: Sequence[float]) -> float:
    """The most common spacing of the rows (the smallest among equally common ones)."""
    counts = Counter(round(b - a, 9) for a, b in itertools.pairwise(times))
    best = max(counts.values())
    return min(step for step, n in counts.items() if n == best)


def tick_means(trace: Trace, tick: float) -> list[float]:
    """The mean rate over each whole tick `[k·tick, (k+1)·tick)` of the trace."""
    edges = Integral(trace).walk([k * tick for k in range(int(trace.end // tick + 1e-9) + 1)])
    return [(b - a) / tick for a, b in itertools.pairwise(edges)]


class Integral:
    """The running integral of a trace's rate: requests from offset 0 to a point.

    Before offset 0 the first row's rate is assumed (the simulated fleet starts in that
    steady state), so the integral is negative there; after the end, the last rate holds.
    """

    def __init__(self, trace: Trace) -> None:
        self._times, self._rates = trace.times, trace.rates
        totals = [0.0]
        for i in range(1, len(self._times)):
            totals.append(totals[-1] + self._rates[i - 1] * (self._times[i] - self._times[i - 1]))
        self._totals = totals

    def at(self, x: float) -> float:
        """The integral from 0 to `x`."""
        if x <= 0:
            return self._rates[0] * x
        i = bisect.bisect_right(self._times, x) - 1
        return self._totals[i] + self._rates[i] * (x - self._times[i])

    def walk(self, points: Sequence[float]) -> list[float]:
        """The integral at each of the increasing `points`, in one pass."""
        times, rates, totals = self._times, self._rates, self._totals
        last = len(times) - 1
        out: list[float] = []
        i = 0
        for x in points:
            if x <= 0:
                out.append(rates[0] * x)
                continue
            while i < last and times[i + 1] <= x:
                i += 1
            out.append(totals[i] + rates[i] * (x - times[i]))
        return out
