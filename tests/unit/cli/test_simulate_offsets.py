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


@pytest.mark.parametrize("offset", ["-7d", "now-7d"])
def test_a_time_before_now_is_refused_as_an_offset_from_the_first_row(
    offset: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`backtest --from -7d` reads history before now; a trace has no now. Before, argparse
    took `-7d` for an option: `argument --from: expected one argument`."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(
            ["simulate", "--trace", "t.csv", "--capacity", "1", "--from", offset]
        )
    assert exited.value.code == 2
    assert (
        f"argument --from: {offset!r} counts back from now: an offset into the trace counts "
        "from its first row (e.g. 14d)"
    ) in capsys.readouterr().err
