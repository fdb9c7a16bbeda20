"""`autoscaler test` end to end: exit 0 when every test passes, 1 with each failure explained.

No server is involved: that is the point of the command, so users can run it in CI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

POLICY = """\
name: web
target: {type: nomad, job: web, group: app}
min: 1
max: 20
interval: 30s
cooldown: {up: 1m, down: 5m}
stabilization: {up: 0s, down: 0s}
checks:
  - {name: rps, query: 'sum(rate(http_requests_total[1m]))', strategy: per-instance, target: 10}
"""

PASSING = """\
policy_files: [policies/web.yaml]
tests:
  - name: burst
    interval: 1m
    start_count: {web: 2}
    input_values:
      web: {rps: '20x4 60x6'}
    expect:
      - {at: 5m, policy: web, desired: 6, action: up}
  - name: a gap never scales in
    start_count: {web: 6}
    input_values:
      web: {rps: '60 _x4 10'}
    expect:
      - {at: 1m, action: hold, reason: no usable data}
      - {at: 2m30s, current: 6, desired: 1, action: down}
"""

FAILING = """\
policy_files: [policies/web.yaml]
tests:
  - name: too optimistic
    start_count: {web: 2}
    input_values: {web: {rps: '20 90 30'}}
    expect:
      - {at: 30s, desired: 9, action: up}
      - {at: 1m, desired: 9, action: none}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "web.yaml").write_text(POLICY)
    return tmp_path


def policy_test(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoscaler", "test", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "AUTOSCALER_PROMETHEUS_URL": "http://127.0.0.1:9"},  # never used
        check=False,
    )


def test_passing_tests_exit_0_with_a_summary(folder: Path) -> None:
    (folder / "web_test.yaml").write_text(PASSING)
    done = policy_test(folder / "web_test.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == f"{folder / 'web_test.yaml'}: 2 tests, 3 expectations: all passed\n"
    assert done.stderr == ""


def test_a_failing_test_exits_1_with_name_time_expected_got_and_reasons(folder: Path) -> None:
    (folder / "web_test.yaml").write_text(PASSING)
    (folder / "fail_test.yaml").write_text(FAILING)
    done = policy_test(folder / "web_test.yaml", folder / "fail_test.yaml")
    assert done.returncode == 1
    failing = folder / "fail_test.yaml"
    assert done.stdout.splitlines() == [
        f"{folder / 'web_test.yaml'}: 2 tests, 3 expectations: all passed",
        f"FAILED {failing}:8: test 'too optimistic' at 1m, policy web",
        "  expected: desired 9, action none",
        "  got:      current 9, desired 3, action hold",
        "  reasons:  rps: 30 / 10 per instance → 3 | cooldown down: 4 min 30 s left → hold",
        f"{failing}: 1 test, 2 expectations: 1 test failed (1 expectation not met)",
        "2 files (0 invalid): 3 tests, 2 passed, 1 failed",
    ]


def test_a_bad_test_file_exits_1_with_file_and_line(folder: Path) -> None:
    bad = folder / "bad_test.yaml"
    bad.write_text(FAILING.replace("'20 90 30'", "'20 9O 30'").replace("action: up", "action: u"))
    done = policy_test(bad)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"{bad}:5: tests[0].input_values.web.rps: item 2 '9O': write a number (1, 0.5, NaN, "
        "Inf), 'a+bxn', 'a-bxn', 'axn', '_', '_xn' or 'stale' (items separated by spaces)",
        f"{bad}:7: tests[0].expect[0].action: 'u' is not an action: one of up, down, none, hold",
        f"{bad}: invalid, not run",
    ]


def test_no_file_is_a_usage_error() -> None:
    done = policy_test()
    assert done.returncode == 2 and "FILE" in done.stderr


def test_the_shipped_policy_tests_pass() -> None:
    """`policies/tests/` pins the shipped example policies' behaviour: the README points
    users at them as the model of a policy test, so they must keep passing."""
    shipped = Path(__file__).resolve().parents[3] / "policies" / "tests"
    files = sorted(shipped.glob("*_test.yaml"))
    assert [f.name.removesuffix("_test.yaml") for f in files] == [
        "checkout-latency",
        "nomad-chat-api",
        "support-conversations",
    ]
    done = policy_test(*files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "3 files (0 invalid): 10 tests, 10 passed, 0 failed"


SHIPPED = Path(__file__).resolve().parents[3] / "policies"


def test_the_feature_tours_threshold_policy_scales_in_when_cpu_is_cold(tmp_path: Path) -> None:
    """`search-api` shows threshold steps that shrink the group when the CPU is cold. Its
    alert check must then ask for no more than the others: a threshold check whose steps
    all miss asks for the current count, and the highest count wins, so without a `below`
    step of its own the alert check kept the group at its size for ever."""
    test = tmp_path / "tour_test.yaml"
    test.write_text(
        f"policy_files: [{SHIPPED / 'feature-tour.yaml'}]\n"
        "tests:\n"
        "  - name: cold cpu, no alert, a low forecast\n"
        "    start: 2024-01-06T12:00:00Z\n"  # a Saturday: the office-hours window is shut
        "    start_count: {search-api: 20}\n"
        "    input_values:\n"
        "      search-api: {cpu: '0.1x40', backlog-alert: '0x40', forecast: '1x40'}\n"
        "    expect:\n"
        "      - {at: 0s, policy: search-api, desired: 20, reason: first evaluation}\n"
        "      - {at: 5m, policy: search-api, current: 20, desired: 18, action: down}\n"
        "      - {at: 15m, policy: search-api, current: 18, desired: 16, action: down}\n"
    )
    done = policy_test(test)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_nomad_example_keeps_one_instance_without_conversations(tmp_path: Path) -> None:
    """`nomad-chat-api` allows `min: 0`, but its p95 check (target-value) never asks for
    fewer than one instance while one runs, and without traffic its query is NaN, a failed
    check, which blocks scale-in: its comment must not promise a scale to zero."""
    test = tmp_path / "zero_test.yaml"
    test.write_text(
        f"policy_files: [{SHIPPED / 'nomad-chat-api.yaml'}]\n"
        "tests:\n"
        "  - name: no conversations, little traffic\n"
        "    start_count: {nomad-chat-api: 1}\n"
        "    input_values: {nomad-chat-api: {open-conversations: '0x60', p95-latency: '0.05x60'}}\n"
        "    expect: [{at: 15m, current: 1, desired: 1, action: none}]\n"
        "  - name: no conversations, no traffic\n"
        "    start_count: {nomad-chat-api: 1}\n"
        "    input_values: {nomad-chat-api: {open-conversations: '0x60', p95-latency: 'NaNx60'}}\n"
        "    expect: [{at: 15m, current: 1, desired: 1, reason: scale-down blocked}]\n"
    )
    done = policy_test(test)
    assert done.returncode == 0, done.stdout + done.stderr
