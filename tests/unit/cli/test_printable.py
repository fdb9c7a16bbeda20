"""Text from elsewhere (a target's name, a server's error) reaches the terminal with its
control characters escaped: in the plan's table and wide rows, `validate`'s lines, the
backtest's table and the text log; never an escape sequence the terminal runs, never a
line break that forges a row or a log line. JSON keeps the text as it is (json escapes)."""

from __future__ import annotations

import io
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autoscaler import redact
from autoscaler.cli import report
from autoscaler.cli.backtest import render_table
from autoscaler.cli.logs import TextFormatter
from autoscaler.cli.printable import printable, printable_lines
from autoscaler.cli.validate import cmd_validate
from autoscaler.engine.evaluation import Evaluation
from autoscaler.replay.results import Backtest, Change, CheckFailures, PolicyBacktest
from tests.unit.cli.rows import up_row

# What a Nomad job ID may hold (Nomad refuses only a space and NUL): clear the screen,
# then a line break and a forged line.
EVIL = "web\x1b[2J\x1b[31m\nforged 0 up"
SHOWN = "web\\x1b[2J\\x1b[31m\\nforged 0 up"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        pytest.param("web-1.prod_2", "web-1.prod_2", id="plain"),
        pytest.param("café 大きい 🚀 →", "café 大きい 🚀 →", id="unicode-kept"),
        pytest.param(
            'rate(x{path=~"/a\\\\.json"}[5m])',
            'rate(x{path=~"/a\\\\.json"}[5m])',
            id="backslash-kept",
        ),
        pytest.param("a\x1b[0mb", "a\\x1b[0mb", id="escape"),
        pytest.param("a\nb\r\tc", "a\\nb\\r\\tc", id="named"),
        pytest.param("a\x00\x07\x7fb", "a\\x00\\x07\\x7fb", id="c0-and-del"),
        pytest.param("a\x9b31mb", "a\\x9b31mb", id="c1-csi"),  # AWS admits U+0080..U+009F
        pytest.param("a\u2028b\u202ec", "a\\u2028b\\u202ec", id="separator-and-bidi"),
    ],
)
def test_control_characters_are_escaped_and_the_rest_kept(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_a_traceback_keeps_its_line_breaks_and_loses_its_escapes() -> None:
    assert printable_lines("Traceback:\n  x\x1b[2J\ty") == "Traceback:\n  x\\x1b[2J\\ty"


def evaluation(target: str, error: str | None = None) -> Evaluation:
    return up_row(target, f"target {target}: load 420 / 50 per instance → 9", error)


@pytest.mark.parametrize("output", ["table", "wide"])
def test_a_targets_escape_sequence_is_shown_escaped_in_the_plans_table(output: str) -> None:
    text = report.render([evaluation(f"nomad:{EVIL}/web (default)")], output)
    assert "\x1b" not in text
    assert f"nomad:{SHOWN}/web (default)" in text
    lines = text.splitlines()
    assert not any(line.startswith("forged") for line in lines), text
    assert len(lines) == (3 if output == "wide" else 6), text  # no line more than a plain one


def test_the_wide_plans_columns_line_up_after_an_escaped_name() -> None:
    rows = report.render_plan_wide([evaluation(f"nomad:{EVIL}/web"), evaluation("nomad:a/b")])
    header, first, second = rows.splitlines()[:3]
    column = header.index("CURRENT")
    assert first[column] == second[column] == "2", rows


def test_plan_json_keeps_the_name_as_it_is() -> None:
    target = f"nomad:{EVIL}/web (default)"
    text = report.render([evaluation(target)], "json")
    assert "\x1b" not in text  # json's own escape, \u001b
    assert json.loads(text)[0]["target"] == target


def test_validate_shows_a_targets_name_escaped_in_its_problems(tmp_path: Path) -> None:
    # The policy's name is a valid one; a target's is any text (a job, an ASG), and the
    # problem that quotes it must not clear the screen.
    (tmp_path / "a.yaml").write_text(
        'name: web\ntarget: {type: nomad, job: "j\\e[2J", group: g}\nmin: 1\nmax: 5\n'
        "checks: [{name: c, strategy: fixed, count: 2}]\n"
    )
    (tmp_path / "b.yaml").write_text((tmp_path / "a.yaml").read_text().replace("web", "api"))
    out = io.StringIO()
    assert cmd_validate([str(tmp_path)], out) == 1
    assert "\x1b" not in out.getvalue() and "j\\x1b[2J" in out.getvalue(), out.getvalue()


def test_the_backtest_table_escapes_names_reasons_and_errors() -> None:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    policy = PolicyBacktest(policy="web", step=timedelta(minutes=1), start_count=2)
    policy.changes.append(Change(at=at, old=2, new=3, reasons=(f"target {EVIL} → 3",)))
    policy.check_failures["c"] = CheckFailures(evaluations=1, first_at=at, first_error=EVIL)
    policy.errors.append(EVIL)
    out = io.StringIO()
    render_table(
        Backtest(start=at, end=at + timedelta(hours=1), policies=[policy], range_queries=1), out
    )
    text = out.getvalue()
    assert "\x1b" not in text and text.count(SHOWN) == 3, text
    assert not any(line.startswith("forged") for line in text.splitlines()), text


def test_a_text_log_line_stays_one_line_without_escape_sequences() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter())
    handler.addFilter(redact.ScrubFilter())
    logger = logging.getLogger(f"test.printable.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("policy web: target %s unreadable", EVIL)
        try:
            raise RuntimeError(EVIL)
        except RuntimeError:
            logger.exception("crashed")
    finally:
        logger.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith(f"WARNING {logger.name}: policy web: target {SHOWN} unreadable")
    assert lines[1].endswith("crashed") and lines[2] == "Traceback (most recent call last):"
    assert lines[-2] == "RuntimeError: web\\x1b[2J\\x1b[31m"  # its line breaks are kept
    assert "\x1b" not in out.getvalue()
