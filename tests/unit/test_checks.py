"""`scripts/check` is the one command CI runs: its coverage gate measures branches, the
`autoscaler` subprocesses too, and fails under a floor of at least 90 %."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_the_full_run_measures_coverage_and_fails_under_the_floor() -> None:
    check = (ROOT / "scripts" / "check").read_text()
    full_run = check[check.index("if [ $# -gt 0 ]; then") :]
    assert re.search(
        r"\n  \$bin/pytest -n \d+ --dist loadgroup (--durations=\d+ )?--cov --cov-report=\S+\n",
        full_run,
    )
    assert "rm -f .coverage .coverage.*" in full_run
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["coverage"]
    assert config["run"]["branch"] is True
    assert config["run"]["source"] == ["autoscaler"]
    assert "subprocess" in config["run"]["patch"]  # the CLI and service run as subprocesses
    assert config["report"]["fail_under"] >= 90


def test_coverage_data_is_never_committed() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert {".coverage", ".coverage.*"} <= set(ignored)
