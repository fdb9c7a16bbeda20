"""A range source answering from a table, for replays without a server."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from autoscaler.adapters.sources.prometheus import RangeSeries

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def series(*values: float | None, shift: float = 0.0, **labels: str) -> RangeSeries:
    """A series with a sample at each grid instant whose value is not None."""
    start = T0.timestamp()
    points = tuple((start + i * 60 + shift, v) for i, v in enumerate(values) if v is not None)
    return RangeSeries(labels=labels, points=points)


Answer = list[RangeSeries] | Exception | Callable[[datetime], float | None]


class FakeRange:
    """A `RangeSource` answering from a table; counts and records the requests.

    An answer is the series to return, an exception to raise, or a function of the instant
    giving one series' value (None: no sample) on whatever grid is asked for.
    """

    def __init__(self, answers: dict[str, Answer]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, datetime, datetime, timedelta]] = []
        self.threads: set[str] = set()

    def query_range(
        self, promql: str, *, start: datetime, end: datetime, step: timedelta
    ) -> list[RangeSeries]:
        self.asked.append((promql, start, end, step))
        self.threads.add(threading.current_thread().name)
        answer = self.answers[promql]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            count = (end - start) // step + 1
            instants = [start + i * step for i in range(count)]
            points = [(t.timestamp(), answer(t)) for t in instants]
            return [
                RangeSeries(labels={}, points=tuple((t, v) for t, v in points if v is not None))
            ]
        return answer
