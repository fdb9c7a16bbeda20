"""Policy test files: the documented format is read, and every mistake is located."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autoscaler.core.model import Action
from autoscaler.errors import TestFileError
from autoscaler.replay.series import Gap
from autoscaler.replay.testfile import EPOCH, load_test_file

Write = Callable[[str, str], Path]

ISSUE_EXAMPLE = """\
policy_files: [web.yaml]            # relative to this file
tests:
  - name: burst
    interval: 1m                    # default: each policy's interval
    start_count: {web: 2}
    input_values:                   # per policy, per check; promtool's expanding
      web: {rps: '20x4 60x6'}       # notation ('1+1x10', '_' missing, 'stale')
    expect:
      - {at: 5m, policy: web, desired: 6, action: up}
"""


def problems_of(path: Path) -> list[str]:
    with pytest.raises(TestFileError) as raised:
        load_test_file(path)
    return [str(p) for p in raised.value.problems]


def test_the_format_of_the_issue_is_read_as_written(write: Write) -> None:
    loaded = load_test_file(write("web_test.yaml", ISSUE_EXAMPLE))
    assert list(loaded.policies) == ["web"]
    (test,) = loaded.tests
    assert (test.name, test.interval, test.start) == ("burst", timedelta(minutes=1), EPOCH)
    assert test.start_count == {"web": 2}
    assert test.input_values["web"]["rps"] == [20.0] * 5 + [60.0] * 7
    (expectation,) = test.expect
    assert (expectation.at, expectation.policy, expectation.desired, expectation.action) == (
        timedelta(minutes=5),
        "web",
        6,
        Action.UP,
    )
    assert expectation.line == 9


def test_extensions_start_current_reason_and_a_lone_policy_named_implicitly(write: Write) -> None:
    loaded = load_test_file(
        write(
            "t.yaml",
            "policy_files: [web.yaml]\n"
            "tests:\n"
            "  - start: 2026-03-02T08:00:00+01:00\n"
            "    input_values: {web: {rps: '_ stale 0'}}\n"
            "    expect:\n"
            "      - {at: 0, current: 1, reason: no usable data}\n",
        )
    )
    (test,) = loaded.tests
    assert test.name == "tests[0]" and test.interval is None
    assert test.start == datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    assert test.input_values["web"]["rps"] == [Gap.MISSING, Gap.STALE, 0.0]
    (expectation,) = test.expect
    assert expectation.policy == "web" and expectation.at == timedelta(0)
    assert (expectation.current, expectation.reason) == (1, "no usable data")


def test_inf_and_nan_are_read_in_any_case_and_as_yaml_numbers(write: Write) -> None:
    # promtool reads `inf`, `NaN` and `-INF` alike. Before, only `NaN` and `Inf` were read,
    # and an unquoted YAML `.inf` was refused as 'inf', which the file does not say.
    hold = "    expect: [{at: 0s, action: hold}]\n"
    loaded = load_test_file(
        write(
            "t.yaml",
            "policy_files: [web.yaml]\n"
            "tests:\n"
            f"  - input_values: {{web: {{rps: 'inf -Inf nan INF +nan 1-infx1'}}}}\n{hold}"
            f"  - input_values: {{web: {{rps: .inf}}}}\n{hold}"
            f"  - input_values: {{web: {{rps: -.Inf}}}}\n{hold}"
            f"  - input_values: {{web: {{rps: .NaN}}}}\n{hold}",
        )
    )
    words, inf, minus_inf, nan = (test.input_values["web"]["rps"] for test in loaded.tests)
    assert words[:2] == [math.inf, -math.inf] and words[3] == math.inf
    assert all(isinstance(v, float) and math.isnan(v) for v in (words[2], words[4]))
    assert words[5:] == [1.0, -math.inf]
    assert (inf, minus_inf) == ([math.inf], [-math.inf])
    assert len(nan) == 1 and isinstance(nan[0], float) and math.isnan(nan[0])


def test_a_spelling_promtool_refuses_is_quoted_as_written(write: Write) -> None:
    path = write(
        "t.yaml",
        "policy_files: [web.yaml]\n"
        "tests:\n"
        "  - input_values: {web: {rps: '1 Infinity'}}\n"
        "    expect: [{at: 0s, action: hold}]\n"
        "  - input_values: {web: {rps: '.inf'}}\n"
        "    expect: [{at: 0s, action: hold}]\n",
    )
    assert [p.split(": write")[0] for p in problems_of(path)] == [
        f"{path}:3: tests[0].input_values.web.rps: item 2 'Infinity'",
        f"{path}:5: tests[1].input_values.web.rps: item 1 '.inf'",
    ]


BAD = [
    pytest.param(
        "policy_files: web.yaml\ntests: []\n",
        [
            "t.yaml:1: policy_files: a non-empty list of policy file paths (relative to this file)",
            "t.yaml:2: tests: a non-empty list of tests is required",
        ],
        id="shapes",
    ),
    pytest.param(
        "policy_files: [web.yaml, nope.yaml]\ntests: [{expect: [{at: 0, desired: 1}]}]\n",
        [
            "t.yaml:1: policy_files[1]: no such policy file: {dir}/nope.yaml",
        ],
        id="missing-policy-file",
    ),
    pytest.param(
        "policy_files: [web.yaml, .]\ntests: [{expect: [{at: 0, desired: 1}]}]\n",
        ["t.yaml:1: policy_files[1]: {dir} is a folder: name each policy file in it"],
        id="folder-as-policy-file",
    ),
    pytest.param(
        "policy_files: [web.yaml]\n"
        "tests:\n"
        "  - name: t\n"
        "    intervall: 1m\n"
        "    interval: 1x\n"
        "    start: 2026-03-02 08:00\n"
        "    start_count: {web: -1, api: 2}\n"
        "    input_values:\n"
        "      web: {rps: '1 2 x3', cpu: '1'}\n"
        "    expect:\n"
        "      - {at: 90s, policy: web, action: upwards}\n"
        "      - {at: 1m, policy: web}\n"
        "      - {policy: api, desired: 2.5}\n",
        [
            "t.yaml:4: tests[0].intervall: unknown key 'intervall'; allowed keys: name, interval,"
            " start, start_count, input_values, expect",
            "t.yaml:5: tests[0].interval: '1x' is not a duration: use Prometheus syntax such as"
            " 30s, 5m, 1h30m or 0s",
            "t.yaml:6: tests[0].start: '2026-03-02 08:00' is not an RFC 3339 time such as"
            " 2026-03-02T08:00:00Z",
            "t.yaml:7: tests[0].start_count.web: must be a count (0 or more), got -1",
            "t.yaml:7: tests[0].start_count.api: no policy 'api' in policy_files (policies: web)",
            "t.yaml:9: tests[0].input_values.web.rps: item 3 'x3': write a number (1, 0.5, NaN,"
            " Inf), 'a+bxn', 'a-bxn', 'axn', '_', '_xn' or 'stale' (items separated by spaces)",
            "t.yaml:9: tests[0].input_values.web.cpu: policy web has no check 'cpu' with a query"
            " (rps)",
            "t.yaml:11: tests[0].expect[0].action: 'upwards' is not an action: one of up, down,"
            " none, hold",
            "t.yaml:11: tests[0].expect[0].at: 1m30s is not an evaluation of policy web (every"
            " 1m): use a multiple of 1m",
            "t.yaml:12: tests[0].expect[1]: expects nothing: set desired, action, current or"
            " reason",
            "t.yaml:13: tests[0].expect[2].at: required",
            "t.yaml:13: tests[0].expect[2].policy: no policy 'api' in policy_files (policies: web)",
            "t.yaml:13: tests[0].expect[2].desired: must be a count (0 or more), got 2.5",
        ],
        id="every-mistake-of-a-test",
    ),
    pytest.param(
        "policy_files: [web.yaml]\ntests:\n  - interval: 0s\n    expect: [{at: 1m, desired: 1}]\n",
        ["t.yaml:3: tests[0].interval: must be longer than 0s"],
        id="zero-interval",
    ),
    pytest.param(
        "policy_files: [web.yaml]\ntests:\n  - expect: [{at: 0, desired: 1}]\n"
        "  - expect: [{at: 0, desired: 1}]\n    expect: []\n",
        [
            "t.yaml:5: tests[1].expect: duplicate key 'expect' (first set on line 4):"
            " keep only one",
        ],
        id="yaml-issues-located",
    ),
    pytest.param(
        "policy_files: [web.yaml]\ntests:\n  - interval: 1s\n    expect: [{at: 1y, desired: 1}]\n",
        [
            "t.yaml:4: tests[0].expect[0].at: 365d is 31,536,001 evaluations of policy web (every"
            " 1s): a test replays at most 1,000,000; use a longer interval or an earlier `at`",
        ],
        id="too-many-evaluations",
    ),
    pytest.param(
        "policy_files: [web.yaml]\ntests:\n  - start: 0001-01-01T00:00:00+01:00\n"
        "    expect: [{at: 0, desired: 1}]\n",
        ["t.yaml:3: tests[0].start: '0001-01-01T00:00:00+01:00' is outside year 1 to 9999 in UTC"],
        id="start-before-year-1",
    ),
    pytest.param(
        "policy_files: [web.yaml]\ntests:\n  - start: 9999-12-31T23:00:00Z\n"
        "    expect: [{at: 2h, desired: 1}]\n",
        ["t.yaml:3: tests[0].start: start plus 2h (the last `at`) is past year 9999"],
        id="start-plus-at-past-9999",
    ),
    pytest.param(
        "policy_files: [web.yaml]\ntests:\n  - {name: burst, expect: [{at: 0, desired: 1}]}\n"
        "  - {name: gap, expect: [{at: 0, desired: 1}]}\n"
        "  - {name: burst, expect: [{at: 0, desired: 2}]}\n",
        [
            "t.yaml:5: tests[2].name: test name 'burst' is already used at line 3: give each"
            " test its own name",
        ],
        id="test-names-unique",
    ),
    pytest.param(
        "policy_files: [web.yaml]\ntests:\n  - {name: 'tests[1]', expect: [{at: 0, desired: 1}]}\n"
        "  - {expect: [{at: 0, desired: 1}]}\n",
        [
            "t.yaml:4: tests[1]: test name 'tests[1]' is already used at line 3: give each test"
            " its own name",
        ],
        id="a-name-taken-by-an-unnamed-test",
    ),
    pytest.param(
        "policy_files: [web.yaml\n",
        [
            "t.yaml:2: (yaml): invalid YAML: while parsing a flow sequence expected ',' or ']',"
            " but got '<stream end>'",
        ],
        id="yaml-syntax",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_every_problem_of_a_bad_file_is_reported_at_file_and_line(
    write: Write, text: str, expected: list[str]
) -> None:
    path = write("t.yaml", text)
    found = [p.replace(str(path.parent) + "/", "") for p in problems_of(path)]
    assert found == [
        e.format(dir=path.parent).replace(str(path.parent) + "/", "") for e in expected
    ]


def test_problems_of_a_named_policy_file_are_reported_in_that_file(write: Write) -> None:
    write(
        "broken.yaml", "name: broken\ntarget: {type: aws-asg, asg: b}\nmin: 1\nmax: 2\nchecks: 7\n"
    )
    path = write(
        "t.yaml", "policy_files: [broken.yaml]\ntests: [{expect: [{at: 0, desired: 1}]}]\n"
    )
    found = problems_of(path)
    assert [p.split(": ")[0] for p in found] == [f"{path.parent / 'broken.yaml'}:5"]
