"""Validation that tells users where and what: "did you mean" for near-miss tags and
values, and PromQL errors located at the file's line and column, also inside multi-line
queries."""

from __future__ import annotations

import time

import pytest

from autoscaler.errors import PolicyError, Problem
from autoscaler.policy.loader import load_text
from autoscaler.policy.promql import error_offset, parse_error

FILE = "policies/web.yaml"
HEAD = "name: web\ntarget: {type: aws-asg, asg: web}\nmin: 1\nmax: 5\n"


def problems_of(text: str) -> list[Problem]:
    with pytest.raises(PolicyError) as caught:
        load_text(text, FILE)
    return caught.value.problems


def only_problem(text: str) -> Problem:
    (problem,) = problems_of(text)
    return problem


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        pytest.param("target_value", "target-value", id="underscore"),
        pytest.param("Per-Instance", "per-instance", id="case"),
        pytest.param("PerInstance", "per-instance", id="camel-case"),
        pytest.param("trheshold", "threshold", id="transposed-letters"),
        pytest.param("passthrough", "pass-through", id="missing-dash"),
        pytest.param("fix", "fixed", id="truncated"),
    ],
)
def test_a_strategy_typo_suggests_the_strategy(written: str, meant: str) -> None:
    problem = only_problem(HEAD + f"checks:\n  - {{name: c, strategy: {written}, count: 1}}\n")
    assert (problem.line, problem.field) == (6, "checks[0].strategy")
    assert f"unknown strategy '{written}' (did you mean '{meant}'?)" in problem.message
    assert "use one of target-value, per-instance, threshold, fixed, pass-through" in (
        problem.message
    )


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        pytest.param("asg", "aws-asg", id="short"),
        pytest.param("aws_asg", "aws-asg", id="underscore"),
        pytest.param("Nomad", "nomad", id="case"),
        pytest.param("nomda", "nomad", id="transposed"),
    ],
)
def test_a_target_type_typo_suggests_the_kind(written: str, meant: str) -> None:
    text = HEAD.replace("type: aws-asg", f"type: {written}")
    problem = only_problem(text + "checks:\n  - {name: c, strategy: fixed, count: 1}\n")
    assert (problem.line, problem.field) == (2, "target.type")
    assert f"unknown target type '{written}' (did you mean '{meant}'?)" in problem.message


def test_a_far_miss_suggests_nothing_and_lists_the_choices() -> None:
    problem = only_problem(HEAD + "checks:\n  - {name: c, strategy: banana, count: 1}\n")
    assert "did you mean" not in problem.message
    assert "use one of target-value" in problem.message


def test_a_mistyped_choice_suggests_the_value() -> None:
    text = HEAD + "on_missing_data: fallbak\nchecks:\n  - {name: c, strategy: fixed, count: 1}\n"
    problem = only_problem(text)
    assert problem.field == "on_missing_data"
    assert "'fallbak' is not allowed (did you mean 'fallback'?)" in problem.message


# --- PromQL positions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "at"),
    [
        pytest.param("sum(rate(x[5m])", "(rate(x[5m])", id="unclosed-parenthesis"),
        pytest.param("sum(rate(x[5m])))", ")", id="extra-closing-parenthesis"),
        pytest.param('x{a="b"', '{a="b"', id="unclosed-brace"),
        pytest.param('x{a="b}', '"b}', id="unterminated-string"),
        pytest.param("rate(x[5m)", ")", id="parenthesis-inside-brackets"),
        pytest.param("rate(x[5z])", "5z])", id="bad-duration"),
        pytest.param("sum(x) bye (le)", "bye (le)", id="misspelt-keyword"),
        pytest.param("1 +* 2", "* 2", id="two-operators"),
        pytest.param("foo bar", "bar", id="two-selectors"),
        pytest.param("histogram_quantile(0.9, sum(rate(x[5m])) by le)", "le)", id="by-without-()"),
        pytest.param("sum(x) by (le) unless on(a) b c", "c", id="trailing-selector"),
        pytest.param("x{a=b}", "b}", id="unquoted-label-value"),
        pytest.param("rate(x)", "rate(x)", id="type-error-names-the-function"),
        pytest.param("up +", "", id="ends-too-early"),
    ],
)
def test_a_promql_error_has_the_offset_of_its_cause(query: str, at: str) -> None:
    message = parse_error(query)
    assert message is not None
    offset = error_offset(query, message)
    assert offset is not None
    assert query[offset:] == at or (at and query[offset:].startswith(at))


def test_an_arity_error_without_a_function_name_has_no_offset() -> None:
    message = parse_error("topk(x)")
    assert message is not None
    assert error_offset("topk(x)", message) is None


def test_locating_an_error_in_the_largest_query_stays_fast() -> None:
    # The schema accepts 4,000 characters; a binary search keeps this to a few seconds at
    # most even on a loaded machine (a token-by-token search took about a minute).
    terms = "+".join(f"rate(m{i}[5m])" for i in range(140))
    query = f"{terms} bad + {terms}"
    message = parse_error(query)
    assert message is not None
    started = time.process_time()
    offset = error_offset(query, message)
    assert query[offset or 0 :].startswith("bad")
    assert time.process_time() - started < 20


TARGET_CHECK = "checks:\n  - {name: c, strategy: target-value, query: up, target: %s}\n"


@pytest.mark.parametrize(
    ("text", "field", "hint"),
    [
        pytest.param(
            HEAD + TARGET_CHECK % "1e-3",
            "checks[0].target",
            "got text '1e-3': write 0.001 or 1.0e-3 (YAML 1.1 reads 1e-3 as text)",
            id="exponent-without-dot-and-sign",
        ),
        pytest.param(
            HEAD.replace("max: 5", "max: 08") + TARGET_CHECK % 1,
            "max",
            "got text '08': write 8 (YAML 1.1 reads 08 as text)",
            id="leading-zero-not-octal",
        ),
        pytest.param(
            HEAD.replace("max: 5", "max: 1e2") + TARGET_CHECK % 1,
            "max",
            "got text '1e2': write 100 (YAML 1.1 reads 1e2 as text)",
            id="exponent-for-an-integer",
        ),
        pytest.param(
            HEAD.replace("max: 5", "max: '8'") + TARGET_CHECK % 1,
            "max",
            "got text '8': write it without quotes",
            id="quoted",
        ),
    ],
)
def test_a_number_yaml_1_1_reads_as_text_is_told_what_to_write_not_to_drop_quotes(
    text: str, field: str, hint: str
) -> None:
    problem = only_problem(text)
    assert problem.field == field
    assert problem.message.endswith(hint), problem.message


def check_with_query(query_yaml: str) -> str:
    """A policy whose check's `query:` key is on line 8."""
    return HEAD + "checks:\n  - name: c\n    strategy: pass-through\n" + query_yaml


@pytest.mark.parametrize(
    ("query_yaml", "line", "column", "near"),
    [
        pytest.param("    query: sum(rate(x[5m])\n", 8, 15, "(rate(x[5m])", id="plain"),
        pytest.param("    query: 'sum(x) bye'\n", 8, 20, "bye", id="single-quoted"),
        pytest.param(
            "    query: |\n      sum by (le) (\n        rate(x[5m]) bye\n      )\n",
            10,
            21,
            "bye",
            id="literal-block",
        ),
        pytest.param(
            "    query: >-\n      sum(x)\n      bye (le)\n", 10, 7, "bye (le)", id="folded-block"
        ),
        pytest.param(
            "    query: sum(x)\n      bye (le)\n", 9, 7, "bye (le)", id="plain-on-two-lines"
        ),
    ],
)
def test_a_promql_error_points_at_the_file_line_and_column(
    query_yaml: str, line: int, column: int, near: str
) -> None:
    problem = only_problem(check_with_query(query_yaml))
    assert (problem.line, problem.field) == (line, "checks[0].query")
    assert problem.message.startswith("query is not valid PromQL: ")
    assert f"(column {column}, at {near!r})" in problem.message
    source_line = check_with_query(query_yaml).splitlines()[line - 1]
    assert source_line[column - 1 :].startswith(near)


def test_holt_winters_of_prometheus_2_is_valid_promql() -> None:
    # promql-parser knows it only by its Prometheus 3 name, double_exponential_smoothing.
    [policy] = load_text(
        check_with_query("    query: sum(holt_winters(x[1h], 0.5, 0.5)) > 0\n"), FILE
    )
    assert policy.checks[0].query == "sum(holt_winters(x[1h], 0.5, 0.5)) > 0"


@pytest.mark.parametrize(
    ("query", "message", "column", "near"),
    [
        pytest.param(
            "holt_winters(x, 0.5, 0.5)",
            "expected type matrix in call to function 'holt_winters', got vector",
            12,
            "holt_winters(x",
            id="type-error",
        ),
        pytest.param(
            "holt_winters(x[1h], 0.5, 0.5) + bad bad",
            "syntax error",
            48,
            "bad",
            id="syntax-error-after-it",
        ),
    ],
)
def test_errors_in_a_query_with_holt_winters_name_it_and_point_at_the_written_text(
    query: str, message: str, column: int, near: str
) -> None:
    problem = only_problem(check_with_query(f"    query: {query}\n"))
    expected = f"query is not valid PromQL: {message} (column {column}, at '{near}"
    assert expected in problem.message


def test_a_query_that_stops_too_early_says_so_at_its_end() -> None:
    problem = only_problem(check_with_query("    query: sum(x) by\n"))
    assert "the query ends too early (column 21, at the end of the query)" in problem.message


def test_a_query_in_a_list_of_policies_is_located_too() -> None:
    text = (
        "- name: web\n  target: {type: nomad, job: j, group: g}\n  min: 0\n  max: 5\n"
        "  checks:\n    - name: c\n      strategy: pass-through\n"
        "      query: |\n        sum(x)\n          bye\n"
    )
    problem = only_problem(text)
    assert (problem.line, problem.field) == (10, "checks[0].query")
    assert "(column 11, at 'bye')" in problem.message
