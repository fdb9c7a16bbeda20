"""`simulate --from/--to`: offsets into a trace, which may span years."""

from __future__ import annotations

import pytest

from autoscaler.cli.main import build_parser

DAY = 86400.0


def test_offsets_longer_than_a_policy_duration_are_read() -> None:
    args = build_parser().parse_args(
        ["simulate", "--trace", "t.csv", "--capacity", "1", "--from", "400d", "--to", "5y"]
    )
    assert (args.start_offset, args.end_offset) == (400 * DAY, 5 * 365 * DAY)


def test_an_offset_beyond_ten_years_is_refused_as_an_offset(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(
            ["simulate", "--trace", "t.csv", "--capacity", "1", "--from", "3651d"]
        )
    assert exited.value.code == 2
    assert "'3651d' is too long: an offset into the trace is at most 10y" in capsys.readouterr().err
