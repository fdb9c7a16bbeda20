"""A range source answering from a table, and small policies, for replays without a server."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from autoscaler.adapters.sources.prometheus_range import RangeSeries
from autoscaler.core.model import (
    AsgTarget,
    Check,
    Cooldown,
    Policy,
    Stabilization,
    Strategy,
)

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


QUERY = 'sum(rate(http_requests_total{service="web"}[1m]))'
HOUR = timedelta(hours=1)


def policy(name: str = "web", query: str = QUERY, **fields: Any) -> Policy:
    base = Policy(
        name=name,
        target=AsgTarget(asg=name, region="eu-west-3"),
        min=1,
        max=20,
        interval=MINUTE,
        checks=(Check(name="rps", strategy=Strategy.PER_INSTANCE, query=query, target=10),),
        cooldown=Cooldown(up=timedelta(minutes=2), down=timedelta(minutes=5)),
        stabilization=Stabilization(up=timedelta(0), down=timedelta(0)),
    )
    return replace(base, **fields)


def minutes(instant: datetime) -> int:
    return (instant - T0) // MINUTE


def load(table: dict[range, float | None]) -> Any:
    """A recorded value per minute since T0 from `{range of minutes: value}`."""

    def value(instant: datetime) -> float | None:
        for span, v in table.items():
            if minutes(instant) in span:
                return v
        return None

    return value


# The policy file the `test` command's tests run against (`write` puts it in place).
WEB_POLICY = """\
name: web
target: {type: aws-asg, asg: web}
min: 1
max: 20
interval: 1m
cooldown: {up: 2m, down: 5m}
stabilization: {up: 0s, down: 0s}
checks:
  - name: rps
    query: sum(rate(http_requests_total{service="web"}[1m]))
    strategy: per-instance
    target: 10
"""
