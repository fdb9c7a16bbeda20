"""The summary lines of the CLI."""

from __future__ import annotations

import gc
import io
import json
import sys
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autoscaler.cli import report, validate
from autoscaler.cli.backtest import render_table as backtest_table
from autoscaler.cli.main import main
from autoscaler.cli.report import _decisive, _wide_check
from autoscaler.cli.validate import cmd_validate
from autoscaler.core.model import Action, CheckResult, Decision
from autoscaler.core.names import counted, name_list, noun
from autoscaler.policy.loader import LoadResult
from autoscaler.policy.loader import load_paths as load
from autoscaler.replay.results import Backtest, Change, PolicyBacktest, Recorded
from tests.unit.cli.rows import up_row


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

    def loading(
        paths: Sequence[str | Path], *, workers: int = 1, now: datetime | None = None
    ) -> LoadResult:
        seen.append(gc.get_threshold())
        return load(paths, workers=workers, now=now)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(validate, "load_paths", loading)
        assert cmd_validate([str(tmp_path)], io.StringIO()) == 1
    assert seen == [(validate.LOADING_GC_THRESHOLD, *before[1:])]
    assert gc.get_threshold() == before


def test_the_wide_plan_shows_a_fixed_check_by_its_count_and_a_failed_one_as_error() -> None:
    # A `fixed` check has no value: the wide row said `floor=error` where the table and
    # the JSON show `- -> 4` and no error.
    fixed = CheckResult(name="floor", query=None, value=None, desired=4, error=None)
    failed = CheckResult(name="rps", query="q", value=None, desired=None, error="timeout")
    assert (_wide_check(fixed), _wide_check(failed)) == ("floor=-→4", "rps=error")


def wide_reason(reasons: tuple[str, ...], *desired: int | None) -> str:
    checks = tuple(
        CheckResult(name=name, query="q", value=1.0, desired=count, error=None)
        for name, count in zip(("p95", "conversations"), desired, strict=False)
    )
    decision = Decision(
        policy="web",
        target="nomad:web/web (default)",
        time=datetime(2026, 12, 3, tzinfo=UTC),
        current=8,
        desired=max(c for c in desired if c is not None),
        action=Action.UP,
        dry_run=True,
        reasons=reasons,
        checks=checks,
    )
    return _decisive(decision)


def test_the_wide_plans_reason_is_the_checks_that_set_the_count_not_the_last_checks() -> None:
    # p95 asks 14, conversations 8: the row showed conversations' reason, the last one.
    reasons = ("p95: 0.41 / 0.25 → 14", "conversations: 380 / 50 per instance → 8")
    assert wide_reason(reasons, 14, 8) == "p95: 0.41 / 0.25 → 14"
    assert wide_reason(reasons, 7, 8) == "conversations: 380 / 50 per instance → 8"
    # A later step (limits, bounds, cooldown) decides over both: it is shown.
    assert wide_reason((*reasons, "cooldown up: 40 s left → hold"), 14, 8) == (
        "cooldown up: 40 s left → hold"
    )


def test_plan_json_is_valid_on_a_stdout_that_cannot_encode_its_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Written as `caf\xe9` by the backslash replacement on an ASCII stdout: invalid JSON.
    monkeypatch.setattr(report, "plan_object", lambda e: {"query": "café🚀"})
    ascii_out = io.TextIOWrapper(io.BytesIO(), encoding="ascii", errors="backslashreplace")
    monkeypatch.setattr(sys, "stdout", ascii_out)
    text = report.render_plan_json([object()])  # type: ignore[list-item]
    ascii_out.write(text)
    ascii_out.flush()
    written = ascii_out.buffer.getvalue().decode("ascii")
    assert json.loads(written) == [{"query": "café🚀"}]


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("aws-asg:web-大きい@eu-west-3", id="wide-characters"),
        pytest.param("nomad:cafe\u0301/web (default)", id="combining-accent"),
        pytest.param("aws-asg:web-🚀", id="emoji"),
    ],
)
def test_the_wide_plans_columns_line_up_on_screen_whatever_the_targets_characters(
    target: str,
) -> None:
    # An ASG, job or group name may be any text: a CJK character takes two columns of a
    # terminal, a combining accent none, and the columns after such a target were shifted.
    rows = report.render_plan_wide([up_row(target), up_row("aws-asg:plain")])
    header, first, second = rows.splitlines()[:3]
    current = _on_screen_column(header, header.index("CURRENT"))
    for row in (first, second):
        assert _on_screen_column(row, row.index("  2  ") + 2) == current, rows
    assert first.endswith("load: 420 / 50 per instance → 9") and second.startswith("web")


def _on_screen_column(line: str, index: int) -> int:
    """The terminal column where `line[index]` is shown."""
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in line[:index]
    )


@pytest.mark.parametrize(
    ("count", "singular", "plural", "shown"),
    [
        pytest.param(0, "policy", "policies", "0 policies", id="zero"),
        pytest.param(1, "policy", "policies", "1 policy", id="one"),
        pytest.param(2, "action", None, "2 actions", id="two-regular"),
        pytest.param(1, "action", None, "1 action", id="one-regular"),
    ],
)
def test_a_count_has_its_noun_in_the_right_number(
    count: int, singular: str, plural: str | None, shown: str
) -> None:
    assert counted(count, singular, plural) == shown
    assert noun(count, singular, plural) == shown.split(" ", 1)[1]


def test_the_simulate_summary_says_1_scaling_action(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It said "1 scaling actions".
    trace = tmp_path / "step.csv"
    rows = (f"{i * 15},{10 if i < 20 else 100}" for i in range(80))
    trace.write_text("timestamp_seconds,requests_per_second\n" + "\n".join(rows) + "\n")
    argv = ["simulate", "--trace", str(trace), "--capacity", "10", "--compare", "none"]
    assert main(argv) == 0
    summary = capsys.readouterr().out.splitlines()[1]
    assert summary.endswith("; 1 scaling action"), summary


def test_the_backtest_table_puts_each_count_in_the_right_number() -> None:
    # It said "1 evaluations without a count", and "any of the 1 evaluations".
    at = datetime(2026, 12, 1, tzinfo=UTC)
    policy = PolicyBacktest(policy="web", step=timedelta(minutes=1), start_count=2)
    policy.changes.append(Change(at=at, old=2, new=3, reasons=("up",)))
    policy.recorded = Recorded(query="q", min_count=2, max_count=3, changes=1, missing=1)
    unrecorded = PolicyBacktest(policy="api", step=timedelta(minutes=1), start_count=2)
    unrecorded.evaluations = 1
    unrecorded.recorded = Recorded(query="q")
    out = io.StringIO()
    window = (at, at + timedelta(hours=1))
    backtest_table(Backtest(*window, policies=[policy, unrecorded], range_queries=1), out)
    text = out.getvalue()
    assert "web: 1 change\n" in text and "1 change, 1 evaluation without a count" in text, text
    assert "recorded: no count in its one evaluation" in text, text
