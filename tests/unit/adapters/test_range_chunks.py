"""Range queries are cut into pieces Prometheus accepts, on one grid, without overlap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autoscaler.adapters.sources.prometheus_range import MAX_POINTS, range_chunks

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def instants(chunks: list[tuple[datetime, datetime]], step: timedelta) -> list[datetime]:
    out: list[datetime] = []
    for start, end in chunks:
        out.extend(start + i * step for i in range((end - start) // step + 1))
    return out


@pytest.mark.parametrize(
    ("points", "max_points", "pieces"),
    [
        pytest.param(1, 10, 1, id="one-instant"),
        pytest.param(10, 10, 1, id="exactly-full"),
        pytest.param(11, 10, 2, id="one-over"),
        pytest.param(10_080, MAX_POINTS, 1, id="a-week-of-minutes"),
        pytest.param(40_320, MAX_POINTS, 4, id="a-week-of-15s"),
        pytest.param(7, 1, 7, id="one-per-piece"),
    ],
)
def test_pieces_cover_every_instant_once_and_stay_under_the_limit(
    points: int, max_points: int, pieces: int
) -> None:
    end = T0 + (points - 1) * MINUTE
    chunks = range_chunks(T0, end, MINUTE, max_points)
    assert len(chunks) == pieces
    assert instants(chunks, MINUTE) == [T0 + i * MINUTE for i in range(points)]
    # What Prometheus checks: (end - start) / step must not exceed 11,000.
    assert all((e - s) // MINUTE + 1 <= max_points for s, e in chunks)


def test_an_end_off_the_grid_stops_at_the_last_instant_before_it() -> None:
    chunks = range_chunks(T0, T0 + timedelta(seconds=150), MINUTE)
    assert chunks == [(T0, T0 + 2 * MINUTE)]


def test_an_empty_range_has_no_piece_and_bad_arguments_are_refused() -> None:
    assert range_chunks(T0, T0 - MINUTE, MINUTE) == []
    with pytest.raises(ValueError, match="step"):
        range_chunks(T0, T0, timedelta(0))
    with pytest.raises(ValueError, match="max_points"):
        range_chunks(T0, T0, MINUTE, 0)
