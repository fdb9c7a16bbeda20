"""A policy warning (valid, most likely not meant: a `fallback` block that
`on_missing_data: hold` ignores, as in POLICY_SPEC's own example) is said by every command
that reads policies, and fails none of them."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from autoscaler.cli.main import main
from autoscaler.cli.policytest import run_files
from autoscaler.cli.validate import cmd_validate

SPEC_EXAMPLE = Path(__file__).parents[1] / "policy" / "data" / "policy_spec_example.yaml"

POLICY = """\
name: web
target: {type: nomad, job: web, group: app}
min: 1
max: 20
interval: 30s
on_missing_data: hold
fallback: {after: 3, count: 10}
checks:
  - {name: rps, query: 'sum(rate(http_requests_total[1m]))', strategy: per-instance, target: 10}
"""
WARNING = (
    "7: fallback: warning: ignored while on_missing_data is hold: the policy holds without "
    "data; write `on_missing_data: fallback` to use it, or remove it"
)


def test_validate_accepts_the_spec_example_and_prints_its_warning() -> None:
    out = io.StringIO()
    # Before its Black Friday window ended (after it, that is a warning too).
    assert cmd_validate([str(SPEC_EXAMPLE)], out, now=datetime(2026, 11, 1, tzinfo=UTC)) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{SPEC_EXAMPLE}:")
    assert ": fallback: warning: ignored while on_missing_data is hold: " in lines[0]
    assert lines[1] == "1 policy valid in 1 file: checkout-web"


def test_validate_with_problems_exits_1_and_prints_the_warnings_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "web.yaml").write_text(POLICY)
    (tmp_path / "api.yaml").write_text(POLICY.replace("web", "api").replace("max: 20", "max: 0"))
    assert main(["validate", str(tmp_path)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{tmp_path / 'api.yaml'}:4: max: must be >= 1, got an integer 0",
        f"{tmp_path / 'web.yaml'}:{WARNING}",
    ]


def test_plan_says_a_warning_on_stderr_and_keeps_its_output_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOMAD_ADDR", "http://127.0.0.1:9")  # no Nomad: not evaluated, at once
    policy = tmp_path / "web.yaml"
    policy.write_text(POLICY)
    code = main(["plan", str(policy), "-o", "json", "--nomad-timeout", "0.1"])
    assert code == 3  # not evaluated (no Nomad), not 1: the file is valid
    out, err = capsys.readouterr()
    assert [e["policy"] for e in json.loads(out)] == ["web"]
    assert f"{policy}:{WARNING}\n" in err


def test_policy_tests_of_a_policy_with_a_warning_run_and_pass(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "web.yaml").write_text(POLICY)
    test_file = tmp_path / "web_test.yaml"
    test_file.write_text(
        "policy_files: [policies/web.yaml]\n"
        "tests:\n"
        "  - name: a gap holds, the fallback ignored\n"
        "    start_count: {web: 6}\n"
        "    input_values:\n"
        "      web: {rps: '60 _x4'}\n"
        "    expect:\n"
        "      - {at: 1m, action: hold, reason: no usable data}\n"
        "      - {at: 2m30s, current: 6, action: hold}\n"
    )
    out = io.StringIO()
    assert run_files([str(test_file)], out) == 0, out.getvalue()
    assert out.getvalue() == f"{test_file}: 1 test, 2 expectations: all passed\n"


ENDED_SCHEDULE = (
    "schedules:\n"
    "  - {name: launch, start: '%s-01-01T00:00:00Z', end: '%s-01-02T00:00:00Z', min: 2}\n"
)


def test_validate_warns_of_a_one_off_schedule_that_ended_by_its_clock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before, `validate` said nothing of a window over for good. The real clock: 2001 is
    # past and 9998 is not, whenever this runs.
    base = POLICY.replace("on_missing_data: hold\nfallback: {after: 3, count: 10}\n", "")
    (tmp_path / "old.yaml").write_text(base + ENDED_SCHEDULE % (2001, 2001))
    (tmp_path / "later.yaml").write_text(base.replace("web", "api") + ENDED_SCHEDULE % (9998, 9998))
    assert main(["validate", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(
        f"{tmp_path / 'old.yaml'}:9: schedules[0].end: warning: 2001-01-02T00:00:00+00:00 "
        "is past (it is "
    )
    assert lines[1] == "2 policies valid in 2 files: api, web"
