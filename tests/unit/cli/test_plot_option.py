"""`--plot FILE` of a format no renderer writes: bad usage, said in the same words by
`simulate` and `backtest`, before either reads anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.cli.exits import EXIT_USAGE
from autoscaler.cli.main import main

SAID = "--plot {name}: unknown plot format; use a file name ending in .png, .svg, .html"


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["simulate", "--trace", "load.csv", "--capacity", "10"], id="simulate"),
        pytest.param(["backtest", "policies", "--from", "2026-12-01T00:00:00Z"], id="backtest"),
    ],
)
def test_a_plot_name_of_no_known_format_is_a_usage_error_of_both_replays(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # simulate exited 1 (a bad input file) where backtest exited 2, each in its own words.
    name = str(tmp_path / "run.pdf")
    assert main([*command, "--plot", name]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert f"error: {SAID.format(name=name)}\n" in captured.err
    assert captured.out == ""
    assert not Path(name).exists()
