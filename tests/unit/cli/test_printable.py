"""Text from elsewhere (a target's name, a server's error) reaches the terminal with its
control characters escaped: in the plan's table and wide rows, `validate`'s lines, the
backtest's table and the text log; never an escape sequence the terminal runs, never a
line break that forges a row or a log line. JSON keeps the text as it is (json escapes)."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from autoscaler import redact
from autoscaler.cli import report
from autoscaler.cli.backtest import render_table
from autoscaler.cli.logs import JsonFormatter, TextFormatter
from autoscaler.cli.main import main
from autoscaler.cli.policytest import run_files
from autoscaler.cli.printable import json_safe, printable, printable_lines
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


POLICY = (
    "name: web\ntarget: {type: nomad, job: web, group: app}\nmin: 1\nmax: 20\n"
    "checks:\n  - {name: rps, query: 'sum(rate(x[1m]))', strategy: per-instance, target: 10}\n"
)


def no_escape_sequence(text: str) -> str:
    """`text`, checked free of raw control characters but its line breaks."""
    assert not any((ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F for c in text), text
    return text


def test_simulate_shows_a_policy_files_key_and_a_traces_cell_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.yaml").write_text(POLICY + '"ta\\e[2Jrget": 1\n')
    trace = tmp_path / "trace.csv"
    trace.write_text("timestamp_seconds,requests_per_second\n0,1\n15,2\x1b[2J\n")
    good = tmp_path / "good.csv"
    good.write_text("timestamp_seconds,requests_per_second\n0,1\n15,2\n")
    for argv in (
        [str(tmp_path / "bad.yaml"), "--trace", str(good)],  # a problem of the policy file
        ["--trace", str(trace)],  # a cell of the trace
        ["--trace", str(tmp_path / "gone\x1b[2J.csv")],  # a path
        [str(tmp_path / "none\x9b2J.yaml"), "--trace", str(good)],
    ):
        assert main(["simulate", *argv, "--capacity", "10"]) == 1
        err = no_escape_sequence(capsys.readouterr().err)
        assert "\\x1b[2J" in err or "\\x9b2J" in err, err


def test_policy_test_failures_and_problems_show_their_text_escaped(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(POLICY)
    invalid = tmp_path / "invalid_test.yaml"
    invalid.write_text(
        'policy_files: [web.yaml]\ntests:\n  - name: t\n    "bad\\e[2Jkey": 1\n'
        "    input_values: {web: {rps: '20'}}\n    expect: [{at: 0s, desired: 2}]\n"
    )
    failing = tmp_path / "failing_test.yaml"
    failing.write_text(
        'policy_files: [web.yaml]\ntests:\n  - name: "t\\e[2J\\u202e"\n'
        "    start_count: {web: 2}\n    input_values: {web: {rps: '20 90'}}\n"
        '    expect: [{at: 30s, desired: 9, reason: "x\\e[2J\\nforged"}]\n'
    )
    out = io.StringIO()
    assert run_files([str(invalid), str(failing)], out) == 1
    text = no_escape_sequence(out.getvalue())
    assert "\u202e" not in text and "bad\\x1b[2Jkey" in text, text
    assert "'x\\x1b[2J\\nforged'" in text and "\nforged" not in text, text
    assert text.count("\nFAILED ") == 1 and len(text.splitlines()) == 8, text


def test_config_file_problems_and_errors_show_their_text_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "web.yaml").write_text(POLICY)
    key = tmp_path / "key.yaml"
    key.write_text('"pro\\e[31mmetheus": {url: "http://x"}\n')
    assert main(["validate", "--config", str(key), str(tmp_path / "web.yaml")]) == 1
    assert "'pro\\x1b[31mmetheus'" in no_escape_sequence(capsys.readouterr().err)
    url = tmp_path / "url.yaml"
    url.write_text('prometheus: {url: "ftp://h\\e7ttp:9090"}\n')
    for command in (["plan"], ["backtest", "--from", "-1h"]):
        assert main([*command, "--config", str(url), str(tmp_path / "web.yaml")]) == 4
        assert "ftp://h\\x1b7ttp" in no_escape_sequence(capsys.readouterr().err)


# What JSON admits raw in a string, and a terminal or a log viewer may obey: a C1 CSI
# (`\x9b` is `ESC [` on some terminals), DEL, a line separator, a bidi override.
SLY = "web\x9b2J\x7f\u2028\u202egnp.exe\u2066\u061c\u200e\x85"


def no_sly_character(text: str) -> str:
    assert not any(0x7F <= ord(c) <= 0x9F or c in "\u2028\u202e\u2066\u061c\u200e" for c in text), (
        ascii(text)
    )
    return text


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(json.dumps(SLY, ensure_ascii=False), id="json"),
        pytest.param(json.dumps({SLY: [SLY, "\\" + SLY]}, ensure_ascii=False), id="nested"),
        pytest.param(json.dumps(SLY), id="ascii"),
    ],
)
def test_json_safe_escapes_what_a_terminal_obeys_and_parses_the_same(document: str) -> None:
    assert json.loads(no_sly_character(json_safe(document))) == json.loads(document)


def test_plan_json_escapes_c1_and_bidi_controls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "_stdout_is_utf8", lambda: True)  # text as it is, `→` too
    target = f"nomad:{SLY}/web (default)"
    text = no_sly_character(report.render([evaluation(target)], "json"))
    assert "→" in text and json.loads(text)[0]["target"] == target


# Every character `json_safe` escapes that PyYAML writes raw (with allow_unicode) even in a
# double-quoted scalar: NEL, the line and paragraph separators, the bidi controls.
RAW_IN_YAML = "\x85\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e"
RAW_IN_YAML += "\u2066\u2067\u2068\u2069"
UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(SLY, id="sly"),
        pytest.param(RAW_IN_YAML, id="every-one"),
        pytest.param(f"it's: {RAW_IN_YAML} # not a comment", id="quotes-and-yaml-syntax"),
        pytest.param(f"\\u202e\\{RAW_IN_YAML}\\", id="backslashes"),
    ],
)
def test_plan_yaml_escapes_c1_and_bidi_controls_and_parses_as_the_json_does(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(report, "_stdout_is_utf8", lambda: True)
    evaluations = [evaluation(f"nomad:{name}/web (default)", error=name), evaluation("a/b")]
    text = report.render(evaluations, "yaml")
    assert UNSAFE_IN_JSON.search(text) is None, ascii(text)
    assert "→" in text  # the other Unicode as it is
    assert yaml.safe_load(text) == json.loads(report.render(evaluations, "json"))


def test_plan_yaml_for_a_stdout_that_is_not_utf8_is_ascii_and_parses_as_the_json_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Written raw, `→` became `\\u2192` by stdout's backslash replacement, which a single-quoted
    # scalar reads back as those six characters.
    monkeypatch.setattr(report, "_stdout_is_utf8", lambda: False)
    evaluations = [evaluation(f"nomad:{SLY}/web (default)", error="a → b"), evaluation("a/b")]
    text = report.render(evaluations, "yaml")
    assert text.isascii(), ascii(text)
    assert yaml.safe_load(text) == json.loads(report.render(evaluations, "json"))


def test_simulate_json_escapes_c1_and_bidi_controls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / f"{SLY}.csv"
    trace.write_text("timestamp_seconds,requests_per_second\n0,1\n15,2\n")
    assert main(["simulate", "--trace", str(trace), "--capacity", "10", "-o", "json"]) == 0
    out = no_sly_character(capsys.readouterr().out)
    assert json.loads(out)["trace"] == str(trace)


def test_the_json_log_escapes_c1_and_bidi_controls() -> None:
    record = logging.makeLogRecord({"msg": "target %s", "args": (SLY,), "target": SLY})
    line = no_sly_character(JsonFormatter().format(record))
    assert json.loads(line)["message"] == f"target {SLY}" and json.loads(line)["target"] == SLY
