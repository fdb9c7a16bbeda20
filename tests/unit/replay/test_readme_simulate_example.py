"""The README's `simulate` example prints what the command prints today.

The example (a week of the NASA trace) is what users compare their first run with; it had
drifted from the code (the recommended policy gained the forecast's noise band, and the
example still showed the older figures). This runs the example's command and compares its
output, line by line, with the README's block.

The trace is the first 7 days of the shared NASA trace (`../shared/traces/`, see its
SOURCES.md: built from the public ITA NASA-HTTP logs of July 1995), kept beside this file
so that the test needs nothing outside the checkout; the example's `--to 7d` reads no
further.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from autoscaler.cli.main import main

ROOT = Path(__file__).resolve().parents[3]
WEEK = Path(__file__).resolve().parent / "data" / "nasa_http_jul1995_first_7_days.csv"
PROMPT = "$ autoscaler simulate --trace nasa_http_jul1995_per_minute.csv"


def readme_example() -> tuple[list[str], list[str]]:
    """The example's arguments and the output shown under them (up to the fence)."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(PROMPT))
    end = lines.index("```", start)
    return shlex.split(lines[start])[3:], lines[start + 1 : end]


# A week of a shared trace, every controller: past the suite's 120 s under coverage on a
# slow, busy machine (it timed out so in CI once).
@pytest.mark.timeout(600)
def test_the_readme_simulate_example_is_what_the_command_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args, shown = readme_example()
    shutil.copy(WEEK, tmp_path / "nasa_http_jul1995_per_minute.csv")  # the example's name
    monkeypatch.chdir(tmp_path)
    assert main(["simulate", *args]) == 0
    printed = capsys.readouterr().out.rstrip("\n").splitlines()
    assert printed == shown
