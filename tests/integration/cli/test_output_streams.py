"""What `validate`, `plan` and `schema` write, as scripts and pipelines meet it: a reader
that leaves early (`| head`) ends the output quietly, with the command's own exit code; a
stdout that cannot be written (`> /dev/full`) ends the command with one line and exit 5.

The CLI runs as a subprocess whose stdout is a pipe nobody reads any more (its reading end
closed before the command starts), as `autoscaler plan | head -1` leaves it once `head`
has its line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

NOMAD_POLICY = (
    "name: web\ntarget: {type: nomad, job: web, group: web}\nmin: 1\nmax: 3\n"
    "checks: [{name: c, strategy: fixed, count: 2}]\n"
)


def into_a_closed_pipe(
    *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m autoscaler ARGS` with a stdout whose reader has gone."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "autoscaler", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env={**os.environ, **(env or {})},
            check=False,
        )
    finally:
        os.close(write)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        pytest.param(["validate", "policies"], 0, id="validate"),
        pytest.param(["schema"], 0, id="schema"),
        pytest.param(["plan", "--help"], 0, id="help"),
    ],
)
def test_a_reader_that_leaves_early_ends_the_output_without_a_traceback(
    args: list[str], code: int
) -> None:
    result = into_a_closed_pipe(*args)
    assert (result.returncode, result.stderr) == (code, "")


@pytest.mark.parametrize("output", ["table", "json", "wide", "yaml"])
def test_plan_into_a_reader_that_left_keeps_its_exit_code(tmp_path: Path, output: str) -> None:
    # Nomad out of reach: the policy is not evaluated (3), which `set -o pipefail` with
    # `plan | head` must still see, not the 1 of a traceback ("some file is invalid").
    (tmp_path / "web.yaml").write_text(NOMAD_POLICY)
    result = into_a_closed_pipe(
        "plan",
        str(tmp_path),
        "-o",
        output,
        "--nomad-timeout",
        "0.1",
        env={"NOMAD_ADDR": "http://127.0.0.1:9"},
    )
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert "warning: policy web not evaluated" in result.stderr  # stderr still says why


def into_a_full_disk(
    *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m autoscaler ARGS > /dev/full`: every write fails with ENOSPC."""
    with open("/dev/full", "w") as full:
        return subprocess.run(
            [sys.executable, "-m", "autoscaler", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env={**os.environ, **(env or {})},
            check=False,
        )


FULL = "error: cannot write the output: No space left on device\n"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["validate", "policies"], id="validate"),
        pytest.param(["schema"], id="schema"),
        pytest.param(["plan", "--help"], id="help"),
        pytest.param(["--version"], id="version"),
    ],
)
def test_a_stdout_that_cannot_be_written_is_one_line_and_exit_5(args: list[str]) -> None:
    # It was a traceback and exit 1, "some policy file is invalid" (0 for --help).
    result = into_a_full_disk(*args)
    assert (result.returncode, result.stderr) == (5, FULL)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("detailed", [[], ["--detailed-exitcode"]], ids=["plain", "detailed"])
def test_a_plan_that_cannot_be_written_says_so_after_its_warnings(
    tmp_path: Path, detailed: list[str]
) -> None:
    # Not evaluated (3) or not: the JSON a script reads is lost, which only 5 says.
    (tmp_path / "web.yaml").write_text(NOMAD_POLICY)
    result = into_a_full_disk(
        "plan",
        str(tmp_path),
        "-o",
        "json",
        "--nomad-timeout",
        "0.1",
        *detailed,
        env={"NOMAD_ADDR": "http://127.0.0.1:9"},
    )
    assert result.returncode == 5, result.stderr
    assert "Traceback" not in result.stderr
    assert "warning: policy web not evaluated" in result.stderr
    assert result.stderr.endswith(FULL)
