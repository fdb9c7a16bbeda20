"""The summary lines of the CLI."""

from __future__ import annotations

import gc
import io
from pathlib import Path

import pytest

from autoscaler.cli import main
from autoscaler.cli.main import cmd_validate
from autoscaler.cli.report import name_list
from autoscaler.policy.loader import load_paths as load


def test_a_short_list_is_shown_whole_and_an_empty_one_says_none() -> None:
    assert name_list(["a", "b"]) == "a, b"
    assert name_list([]) == "none"


def test_a_long_list_shows_the_first_names_and_counts_the_rest() -> None:
    names = [f"svc{i}" for i in range(10_000)]
    line = name_list(names)
    assert line.startswith("svc0, svc1, ") and line.endswith("svc19 and 9,980 more")
    assert len(line) < 250


def test_the_validate_summary_line_puts_each_count_in_the_right_number(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(
        "name: web\ntarget: {type: nomad, job: web, group: web}\nmin: 1\nmax: 5\n"
        "checks:\n  - {name: c, strategy: fixed, count: 2}\n"
    )
    out = io.StringIO()
    assert cmd_validate([str(tmp_path)], out) == 0
    assert out.getvalue() == "1 policy valid in 1 file: web\n"
    (tmp_path / "api.yaml").write_text((tmp_path / "web.yaml").read_text().replace("web", "api"))
    out = io.StringIO()
    assert cmd_validate([str(tmp_path)], out) == 0
    assert out.getvalue() == "2 policies valid in 2 files: api, web\n"


def test_validate_collects_garbage_less_often_while_loading_and_as_before_after(
    tmp_path: Path,
) -> None:
    """The higher threshold is for the files' reading only: the process's own is restored,
    also when a file is broken."""
    (tmp_path / "web.yaml").write_text("name: web\nmin: [\n")
    seen: list[tuple[int, int, int]] = []
    before = gc.get_threshold()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            main,
            "load_paths",
            lambda paths, **kw: seen.append(gc.get_threshold()) or load(paths, **kw),
        )
        assert cmd_validate([str(tmp_path)], io.StringIO()) == 1
    assert seen == [(main.LOADING_GC_THRESHOLD, *before[1:])]
    assert gc.get_threshold() == before
