"""Range queries' grid: `[start, end]` every `step`, cut into requests Prometheus accepts.

Prometheus refuses a range query of more than 11,000 instants per series; `range_chunks`
cuts a longer range into pieces on the same grid, and `RangeSeries` is one series of the
joined answer (`PrometheusSource.query_range`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["MAX_POINTS", "RangeSeries", "decimal", "epoch", "range_chunks"]

# Prometheus refuses a range query whose (end - start) / step exceeds 11,000.
MAX_POINTS = 11_000


@dataclass(frozen=True)
class RangeSeries:
    """One series of a range query: its labels and its samples as (epoch seconds, value)."""

    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]


def range_chunks(
    start: datetime, end: datetime, step: timedelta, max_points: int = MAX_POINTS
) -> list[tuple[datetime, datetime]]:
    """`[start, end]` on a grid of `step` cut into pieces of at most `max_points` instants.

    The pieces share the grid and do not overlap: the first instant of a piece is one step
    after the last instant of the one before. An `end` before `start` gives no piece.
    """
    if step <= timedelta(0):
        raise ValueError(f"step must be positive, got {step}")
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1, got {max_points}")
    if end < start:
        return []
    count = (end - start) // step + 1
    return [
        (start + first * step, start + (min(first + max_points, count) - 1) * step)
        for first in range(0, count, max_points)
    ]


def epoch(instant: datetime) -> str:
    """Seconds since the epoch with millisecond precision, as Prometheus reads them."""
    return decimal(instant.timestamp())


def decimal(seconds: float) -> str:
    """`60`, `1.5`, `1767225600.25`: a plain decimal (never `1e+06`), to the millisecond."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".")
