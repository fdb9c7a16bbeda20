"""`autoscaler test`: policies decide on test values as `run` would, failures say why."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from autoscaler.core.model import Action
from autoscaler.errors import TestFileError
from autoscaler.replay.policytest import run_file
from autoscaler.replay.testfile import load_test_file

Write = Callable[[str, str], Path]


def run(write: Write, tests: str, policy_files: str = "[web.yaml]") -> list[str]:
    """Run a test file with these tests; the descriptions of its failures."""
    path = write("t.yaml", f"policy_files: {policy_files}\ntests:\n{tests}")
    result = run_file(load_test_file(path))
    return [failure.describe() for failure in result.failures]


def test_the_issue_example_passes(write: Write) -> None:
    tests = """\
  - name: burst
    interval: 1m
    start_count: {web: 2}
    input_values:
      web: {rps: '20x4 60x6'}
    expect:
      - {at: 4m, policy: web, desired: 2, action: none}
      - {at: 5m, policy: web, desired: 6, action: up}
"""
    assert run(write, tests) == []


def test_a_failure_names_test_time_expected_got_and_reasons(write: Write) -> None:
    tests = """\
  - name: burst
    start_count: {web: 2}
    input_values: {web: {rps: '20x4 60x6'}}
    expect:
      - {at: 5m, policy: web, desired: 5, action: up}
"""
    (failure,) = run(write, tests)
    path = write("unused", "")
    assert failure == (
        f"{path.parent / 't.yaml'}:7: test 'burst' at 5m, policy web\n"
        "  expected: desired 5, action up\n"
        "  got:      current 2, desired 6, action up\n"
        "  reasons:  rps: 60 / 10 per instance → 6"
    )


def test_the_count_follows_each_scale_and_cooldowns_hold_later_changes(write: Write) -> None:
    # A rising per-instance need is not delayed by the cooldown up (issue 11); a scale-down
    # inside the cooldown down is.
    tests = """\
  - name: closed loop
    start_count: {web: 2}
    input_values: {web: {rps: '20 60 100 100 40 40 40 40 40 40'}}
    expect:
      - {at: 1m, current: 2, desired: 6, action: up}
      - {at: 2m, current: 6, desired: 10, action: up, reason: 'rps keeps rising'}
      - {at: 3m, current: 10, desired: 10, action: none}
      - {at: 4m, current: 10, desired: 4, action: hold, reason: 'cooldown down: 3 min left'}
      - {at: 7m, current: 10, desired: 4, action: down}
"""
    assert run(write, tests) == []


def test_missing_and_stale_values_hold_and_never_scale_in(write: Write) -> None:
    tests = """\
  - name: gap
    start_count: {web: 8}
    input_values: {web: {rps: '80 _x2 stale'}}
    expect:
      - {at: 0s, desired: 8, action: none}
      - {at: 1m, desired: 8, action: hold, reason: 'no usable data from any check (1 in a row)'}
      - {at: 2m, desired: 8, action: hold, reason: 'no data (no series)'}
      - {at: 3m, desired: 8, action: hold, reason: 'the series is stale'}
      - {at: 10m, desired: 8, action: hold, reason: 'no usable data from any check (10 in a row)'}
"""
    assert run(write, tests) == []


def test_nan_fails_the_check_like_a_missing_value(write: Write) -> None:
    tests = """\
  - input_values: {web: {rps: 'NaN'}}
    start_count: {web: 4}
    expect: [{at: 0s, desired: 4, action: hold, reason: 'value is nan'}]
"""
    assert run(write, tests) == []


def test_each_policy_uses_its_own_interval_unless_the_test_sets_one(write: Write) -> None:
    write(
        "fast.yaml",
        (Path(write("x", "").parent / "web.yaml").read_text())
        .replace("name: web", "name: fast")
        .replace("asg: web", "asg: fast")
        .replace("interval: 1m", "interval: 15s"),
    )
    tests = """\
  - name: own intervals
    start_count: {web: 1, fast: 1}
    input_values: {web: {rps: '30 30'}, fast: {rps: '10 10 10 10 50'}}
    expect:
      - {at: 1m, policy: fast, desired: 5, action: up}
      - {at: 1m, policy: web, current: 3, action: none}
"""
    assert run(write, tests, "[web.yaml, fast.yaml]") == []


def test_start_places_the_test_in_time_for_schedules(write: Write) -> None:
    policy = (Path(write("x", "").parent / "web.yaml").read_text()).replace(
        "checks:",
        "schedules:\n"
        "  - {name: launch, min: 5, start: '2026-03-02T08:00:00Z', end: '2026-03-02T09:00:00Z'}\n"
        "checks:",
    )
    write("web.yaml", policy)
    tests = """\
  - name: launch
    start: 2026-03-02T07:58:00Z
    start_count: {web: 1}
    input_values: {web: {rps: '10x5'}}
    expect:
      - {at: 1m, desired: 1, action: none}
      - {at: 2m, desired: 5, action: up, reason: 'schedule launch min 5'}
"""
    assert run(write, tests) == []


def test_a_dry_run_policy_is_tested_as_if_live(write: Write) -> None:
    policy = (Path(write("x", "").parent / "web.yaml").read_text()) + "dry_run: true\n"
    write("web.yaml", policy)
    tests = """\
  - start_count: {web: 1}
    input_values: {web: {rps: '30 30'}}
    expect:
      - {at: 0s, desired: 3, action: up}
      - {at: 1m, current: 3, action: none}
"""
    assert run(write, tests) == []


def test_results_count_tests_expectations_and_failed_tests(write: Write) -> None:
    path = write(
        "t.yaml",
        "policy_files: [web.yaml]\n"
        "tests:\n"
        "  - {name: a, input_values: {web: {rps: '5'}}, expect: [{at: 0s, action: none}]}\n"
        "  - {name: b, input_values: {web: {rps: '50'}}, expect: [{at: 0s, action: down},"
        " {at: 0s, desired: 1}]}\n",
    )
    result = run_file(load_test_file(path))
    assert (result.tests, result.expectations, result.failed_tests) == (2, 3, {"b"})
    assert [f.expectation.action for f in result.failures] == [Action.DOWN, None]


FLEET = """\
name: "svc-{job}-{group}"
for_each: {nomad: {meta: {autoscaler.enabled: "true"}}}
target: {type: nomad, job: "{job}", group: "{group}"}
min: 1
max: 20
interval: 1m
cooldown: {up: 0s, down: 0s}
stabilization: {up: 0s, down: 0s}
checks:
  - name: rps
    query: sum by (job) (rate(http_requests_total[1m]))
    group_by: {job: "{job}"}
    strategy: per-instance
    target: 10
"""


def test_templates_are_tested_on_the_targets_the_file_says_discovery_finds(
    write: Write,
) -> None:
    write("fleet.yaml", FLEET)
    path = write(
        "t.yaml",
        """\
policy_files: [fleet.yaml, web.yaml]
discovered:
  nomad:
    - {job: api, group: main, meta: {autoscaler.enabled: "true", autoscaler.max: "4"}}
    - {job: cart, group: main, meta: {autoscaler.enabled: "true"}}
    - {job: batch, group: main}
tests:
  - name: each target on its own series, with its own overrides
    start_count: {svc-api-main: 1, svc-cart-main: 1}
    input_values:
      svc-api-main: {rps: '20 90'}
      svc-cart-main: {rps: '30 _'}
    expect:
      - {at: 0m, policy: svc-api-main, desired: 2, action: up}
      - {at: 1m, policy: svc-api-main, desired: 4, reason: "max 4"}
      - {at: 0m, policy: svc-cart-main, desired: 3, action: up}
      - {at: 1m, policy: svc-cart-main, action: hold, reason: "no series with job='cart'"}
""",
    )
    test_file = load_test_file(path)
    assert sorted(test_file.policies) == ["svc-api-main", "svc-cart-main", "web"]
    assert [f.describe() for f in run_file(test_file).failures] == []


def test_two_discovered_groups_reading_one_series_hold_as_run_would(write: Write) -> None:
    # `test` expands templates as `run` does: both groups of job `api` read its one series,
    # so neither is sized on it (the worker is not scaled in from 12 on the web's traffic).
    write("fleet.yaml", FLEET)
    path = write(
        "t.yaml",
        """\
policy_files: [fleet.yaml]
discovered:
  nomad:
    - {job: api, group: web, meta: {autoscaler.enabled: "true"}}
    - {job: api, group: worker, meta: {autoscaler.enabled: "true"}}
tests:
  - name: one series for two groups
    start_count: {svc-api-web: 2, svc-api-worker: 12}
    input_values:
      svc-api-web: {rps: '15'}
      svc-api-worker: {rps: '15'}
    expect:
      - {at: 0m, policy: svc-api-web, desired: 2, action: hold}
      - {at: 0m, policy: svc-api-worker, desired: 12, action: hold,
         reason: "ambiguous: svc-api-web (nomad job api group web) reads this same series"}
""",
    )
    assert [f.describe() for f in run_file(load_test_file(path)).failures] == []


def test_a_discovered_target_is_checked_at_its_line(write: Write) -> None:
    write("fleet.yaml", FLEET)
    path = write(
        "t.yaml",
        """\
policy_files: [fleet.yaml]
discovered:
  nomad:
    - {job: api, meta: {autoscaler.enabled: true}}
tests:
  - input_values: {svc-api-main: {rps: '1'}}
    expect: [{at: 0m, desired: 1}]
""",
    )
    with pytest.raises(TestFileError) as caught:
        load_test_file(path)
    found = [(p.line, p.field, p.message) for p in caught.value.problems]
    assert (4, "discovered.nomad[0].group", "required") in found
    assert any(
        line == 4 and field == "discovered.nomad[0].meta.autoscaler.enabled" and "quote" in m
        for line, field, m in found
    ), found


def test_a_check_without_input_values_has_no_data_even_when_another_shares_its_query(
    write: Write,
) -> None:
    write(
        "twin.yaml",
        "name: twin\ntarget: {type: aws-asg, asg: twin}\nmin: 1\nmax: 20\ninterval: 1m\n"
        "checks:\n"
        "  - {name: rps, query: q, strategy: per-instance, target: 10}\n"
        "  - {name: rps_again, query: q, strategy: per-instance, target: 5}\n",
    )
    tests = """\
  - start_count: {twin: 2}
    input_values: {twin: {rps: '50'}}
    expect: [{at: 0s, desired: 5, action: up, reason: 'check rps_again failed (no data'}]
"""
    assert run(write, tests, "[twin.yaml]") == []
