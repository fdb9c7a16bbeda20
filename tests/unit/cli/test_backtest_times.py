"""`backtest --from/--to`: RFC 3339 with a zone, `now`, or a duration before now."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from autoscaler.cli.backtest import _options, parse_instant
from autoscaler.cli.main import build_parser

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("now", NOW, id="now"),
        pytest.param("-7d", NOW - timedelta(days=7), id="minus-duration"),
        pytest.param("now-1h30m", NOW - timedelta(minutes=90), id="now-minus-duration"),
        pytest.param("2026-03-01T00:00:00Z", datetime(2026, 3, 1, tzinfo=UTC), id="rfc3339-z"),
        pytest.param(
            "2026-03-01T01:00:00.5+01:00",
            datetime(2026, 3, 1, 0, 0, 0, 500_000, tzinfo=UTC),
            id="rfc3339-offset-fraction",
        ),
        pytest.param("2026-03-01t00:00:00z", datetime(2026, 3, 1, tzinfo=UTC), id="lowercase"),
        pytest.param("-400d", NOW - timedelta(days=400), id="longer-than-a-policy-duration"),
        pytest.param("now-10y", NOW - timedelta(days=3650), id="ten-years"),
    ],
)
def test_times_are_read_as_instants_in_utc(text: str, expected: datetime) -> None:
    parsed = parse_instant(text, NOW)
    assert parsed == expected and parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("2026-03-01T00:00:00", id="no-zone"),
        pytest.param("yesterday", id="words"),
        pytest.param("-7 days", id="not-a-duration"),
        pytest.param("+7d", id="future-relative"),
    ],
)
def test_anything_else_is_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"RFC 3339|duration"):
        parse_instant(text, NOW)


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_time_that_leaves_the_calendar_in_utc_is_refused_not_a_traceback(text: str) -> None:
    with pytest.raises(ValueError, match="outside year 1 to 9999 in UTC"):
        parse_instant(text, NOW)


def test_a_relative_time_beyond_ten_years_is_refused_as_a_time_not_a_policy_duration() -> None:
    with pytest.raises(ValueError, match=r"'3651d' is too long: a time before now is at most 10y"):
        parse_instant("-3651d", NOW)


@pytest.mark.parametrize(
    ("step", "said"),
    [
        pytest.param("5ms", "--step 5ms is shorter than 1s (did you mean 5m?)", id="typo"),
        pytest.param("500ms", "--step 500ms is shorter than 1s: write at least 1s", id="short"),
    ],
)
def test_a_step_shorter_than_a_policy_interval_may_be_is_refused(step: str, said: str) -> None:
    """As a policy's `interval`: `5ms` for `5m` replayed 6 hours in 4.3 million evaluations."""
    args = build_parser().parse_args(["backtest", "--from", "-6h", "--step", step])
    with pytest.raises(ValueError, match=re.escape(said)):
        _options(args)


@pytest.mark.parametrize("timeout", ["inf", "nan", "1e300", "0", "-5", "3601"])
def test_a_range_timeout_out_of_bounds_is_bad_usage(
    timeout: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`inf` and `1e300` were sent on and every query failed as if Prometheus were
    unreachable (exit 3); `0`, `-5` and `nan` were silently 0.1 s."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["backtest", "--from", "-6h", "--range-timeout", timeout])
    assert exited.value.code == 2
    assert "argument --range-timeout: " in capsys.readouterr().err


def test_a_range_timeout_in_bounds_is_read() -> None:
    args = build_parser().parse_args(["backtest", "--from", "-6h", "--range-timeout", "0.5"])
    assert args.range_timeout == 0.5


def test_a_start_count_above_any_policy_max_is_bad_usage() -> None:
    """Above MAX_COUNT the target's count is out of range: every evaluation was "not
    evaluated" and the instance-hours absurd, with exit 0."""
    args = build_parser().parse_args(["backtest", "--from", "-6h", "--start-count", "1000001"])
    with pytest.raises(ValueError, match=r"--start-count must be 0 to 1000000"):
        _options(args)


@pytest.mark.parametrize("jobs", [["--jobs", "0"], ["--jobs", "-2"], ["-j0"], ["--jobs=-1"]])
def test_jobs_below_one_is_bad_usage(jobs: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # `0` and negatives were taken as 1 without a word.
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["backtest", "--from", "-6h", *jobs])
    assert exited.value.code == 2
    assert "argument --jobs/-j: must be at least 1, got " in capsys.readouterr().err


def test_jobs_of_one_or_more_is_read() -> None:
    assert build_parser().parse_args(["backtest", "--from", "-6h", "-j", "3"]).jobs == 3
