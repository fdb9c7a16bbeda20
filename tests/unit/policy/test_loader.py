"""The policy loader: every validation rule at its exact FILE:LINE: FIELD, and valid files
turned into the right dataclasses (defaults included)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autoscaler.core import model
from autoscaler.errors import PolicyError, Problem
from autoscaler.policy.conflicts import same_target
from autoscaler.policy.loader import json_schema, load_file, load_paths, load_text

FILE = "policies/web.yaml"

# Lines 1-4 of most cases; the body of each case starts on line 5.
HEAD = "name: web\ntarget: {type: aws-asg, asg: web}\nmin: 1\nmax: 5\n"
CHECK = "checks:\n  - {name: c, strategy: fixed, count: 2}\n"


def policy(body: str = CHECK, head: str = HEAD) -> str:
    return head + body


def problems_of(text: str, file: str = FILE) -> list[Problem]:
    with pytest.raises(PolicyError) as caught:
        load_text(text, file)
    return caught.value.problems


def schedule(*lines: str) -> str:
    """A policy whose schedule entry starts on line 8 (`- name: s`), its keys from line 9."""
    return policy(CHECK + "schedules:\n  - name: s\n" + "".join(f"    {x}\n" for x in lines))


def check(*lines: str) -> str:
    """A policy whose only check starts on line 6 (`- name: c`), its keys from line 7."""
    return policy("checks:\n  - name: c\n" + "".join(f"    {x}\n" for x in lines))


def steps(*steps_: str) -> str:
    """A threshold check whose steps start on line 10, one per line."""
    lines = ["strategy: threshold", "query: up", "steps:", *[f"  - {s}" for s in steps_]]
    return check(*lines)


INVALID = [
    # --- structure, keys and types ---------------------------------------------------------
    pytest.param("a: [1\n", "(yaml)", "invalid YAML", 2, id="yaml-syntax-error"),
    pytest.param(
        policy("min: 2\n" + CHECK),
        "min",
        "duplicate key 'min' (first set on line 3)",
        5,
        id="duplicate-yaml-key",
    ),
    pytest.param("- 1\n", "(policy)", "must be a mapping", 1, id="policy-not-a-mapping"),
    pytest.param("", "(file)", "no policy found", 1, id="empty-file"),
    pytest.param(
        policy("mni: 1\n" + CHECK),
        "mni",
        "unknown key 'mni' (did you mean 'min'?)",
        5,
        id="unknown-top-level-key",
    ),
    pytest.param(
        policy("cooldown:\n  upp: 1m\n" + CHECK),
        "cooldown.upp",
        "allowed keys: up, down",
        6,
        id="unknown-nested-key",
    ),
    pytest.param(
        policy(head=HEAD.replace("min: 1", 'min: "1"')),
        "min",
        "expected an integer, got text '1': write it without quotes",
        3,
        id="int-as-text",
    ),
    pytest.param(
        policy(head=HEAD.replace("min: 1", "min: one")),
        "min",
        "expected an integer, got text 'one': write a whole number, e.g. 3",
        3,
        id="word-for-int",  # no quotes to take away: say what to write instead
    ),
    pytest.param(
        policy('enabled: "yes please"\n' + CHECK),
        "enabled",
        "got text 'yes please': write true or false",
        5,
        id="word-for-bool",
    ),
    pytest.param(
        policy(head=HEAD.replace("max: 5", "max: 2.5")),
        "max",
        "use a whole number",
        4,
        id="float-for-int",
    ),
    pytest.param(
        policy('enabled: "true"\n' + CHECK),
        "enabled",
        "expected true or false",
        5,
        id="bool-as-text",
    ),
    pytest.param(
        policy("dry_run: 1\n" + CHECK),
        "dry_run",
        "expected true or false, got an integer",
        5,
        id="int-for-bool",
    ),
    pytest.param(
        check("strategy: target-value", "query: up", "target: .nan"),
        "checks[0].target",
        "finite",
        9,
        id="nan-number",
    ),
    pytest.param(
        policy("description: [a]\n" + CHECK),
        "description",
        "expected text, got a list",
        5,
        id="list-for-text",
    ),
    # --- names -----------------------------------------------------------------------------
    pytest.param(
        policy(head=HEAD.replace("name: web", "name: bad name!")),
        "name",
        "'bad name!' is not a valid name",
        1,
        id="policy-name-pattern",
    ),
    pytest.param(
        policy(head=HEAD.replace("name: web", 'name: ""')),
        "name",
        "is not a valid name",
        1,
        id="policy-name-empty",
    ),
    pytest.param(
        policy("checks:\n  - {name: -c, strategy: fixed, count: 2}\n"),
        "checks[0].name",
        "not a valid name",
        6,
        id="check-name-pattern",
    ),
    pytest.param(
        policy("checks:\n  - {strategy: fixed, count: 2}\n"),
        "checks[0].name",
        "`name` is required for strategy fixed",
        6,
        id="check-name-missing",
    ),
    pytest.param(
        policy(
            "checks:\n  - {name: c, strategy: fixed, count: 2}\n"
            "  - {name: c, strategy: fixed, count: 3}\n"
        ),
        "checks[1].name",
        f"duplicate name 'c': also used by checks[0] at {FILE}:6",
        7,
        id="duplicate-check-name",
    ),
    pytest.param(
        "- "
        + HEAD.replace("\n", "\n  ").rstrip()
        + "\n  "
        + CHECK.replace("\n  ", "\n    ")
        + "- "
        + HEAD.replace("\n", "\n  ").rstrip()
        + "\n  "
        + CHECK.replace("\n  ", "\n    "),
        "name",
        f"duplicate policy name 'web': also defined at {FILE}:1",
        7,
        id="duplicate-policy-name-in-file",
    ),
    pytest.param(
        policy(head=HEAD.replace("name: web\n", "")) + "---\n" + policy(),
        "name",
        "needs a name when a file holds several policies",
        1,
        id="name-required-with-several-policies",
    ),
    # --- bounds ----------------------------------------------------------------------------
    pytest.param(
        policy(head=HEAD.replace("max: 5", "max: 10").replace("min: 1", "min: 11")),
        "min",
        "min 11 is above max 10: use min <= max",
        3,
        id="min-above-max",
    ),
    pytest.param(
        policy(head=HEAD.replace("min: 1", "min: -1")),
        "min",
        "must be >= 0",
        3,
        id="negative-min",
    ),
    pytest.param(
        policy(head=HEAD.replace("max: 5", "max: 0").replace("min: 1", "min: 0")),
        "max",
        "must be >= 1",
        4,
        id="max-zero",
    ),
    pytest.param(
        policy(head=HEAD.replace("min: 1", "min: 0")),
        "min",
        "aws-asg targets need min >= 1 (min: 0 is allowed for nomad targets only)",
        3,
        id="asg-min-zero",
    ),
    # --- durations -------------------------------------------------------------------------
    pytest.param(
        policy("interval: 30\n" + CHECK),
        "interval",
        "30 is not a duration: use Prometheus",
        5,
        id="duration-as-number",
    ),
    pytest.param(
        policy("cooldown: {up: 5 minutes}\n" + CHECK),
        "cooldown.up",
        "is not a duration",
        5,
        id="duration-bad-text",
    ),
    pytest.param(
        policy("stabilization:\n  down: 1m1h\n" + CHECK),
        "stabilization.down",
        "largest to smallest",
        6,
        id="duration-unit-order",
    ),
    pytest.param(
        policy("interval: 0s\n" + CHECK),
        "interval",
        "0s is shorter than 1s: write at least 1s",
        5,
        id="interval-zero",
    ),
    # --- targets ---------------------------------------------------------------------------
    pytest.param(
        policy(head=HEAD.replace("aws-asg", "gcp-mig")),
        "target.type",
        "unknown target type 'gcp-mig': use one of aws-asg, nomad",
        2,
        id="unknown-target-type",
    ),
    pytest.param(
        policy(head=HEAD.replace("type: aws-asg, ", "")),
        "target.type",
        "missing target type",
        2,
        id="missing-target-type",
    ),
    pytest.param(
        policy(head=HEAD.replace("target: {type: aws-asg, asg: web}\n", "")),
        "target",
        "`target` is required",
        1,
        id="missing-target",
    ),
    pytest.param(
        policy(head=HEAD.replace(", asg: web", "")),
        "target.asg",
        "`asg` is required for target type aws-asg",
        2,
        id="asg-needs-asg",
    ),
    pytest.param(
        policy(head=HEAD.replace("asg: web", "job: web")),
        "target.job",
        "'job' is not used for target type aws-asg (only by nomad)",
        2,
        id="job-on-asg",
    ),
    pytest.param(
        policy(head=HEAD.replace("{type: aws-asg, asg: web}", "{type: nomad, job: web}")),
        "target.group",
        "`group` is required for target type nomad",
        2,
        id="nomad-needs-group",
    ),
    pytest.param(
        policy(head=HEAD.replace("{type: aws-asg, asg: web}", "{type: nomad, group: g}")),
        "target.job",
        "`job` is required for target type nomad",
        2,
        id="nomad-needs-job",
    ),
    # --- checks and strategies -------------------------------------------------------------
    pytest.param(
        policy("checks: []\n"),
        "checks",
        "needs at least one check",
        5,
        id="no-checks",
    ),
    pytest.param(
        policy(""),
        "checks",
        "`checks` is required",
        1,
        id="checks-missing",
    ),
    pytest.param(
        check("strategy: foo", "query: up"),
        "checks[0].strategy",
        "unknown strategy 'foo': use one of target-value, per-instance, threshold, fixed, "
        "pass-through",
        7,
        id="unknown-strategy",
    ),
    pytest.param(
        check("query: up"),
        "checks[0].strategy",
        "missing strategy",
        6,
        id="missing-strategy",
    ),
    pytest.param(
        check("strategy: target-value", "target: 1"),
        "checks[0].query",
        "`query` is required for strategy target-value",
        6,
        id="target-value-needs-query",
    ),
    pytest.param(
        check("strategy: target-value", "query: up"),
        "checks[0].target",
        "`target` is required for strategy target-value",
        6,
        id="target-value-needs-target",
    ),
    pytest.param(
        check("strategy: target-value", "query: up", "target: 0"),
        "checks[0].target",
        "must be > 0",
        9,
        id="target-value-target-positive",
    ),
    pytest.param(
        check("strategy: per-instance", "query: up", "target: -5"),
        "checks[0].target",
        "must be > 0",
        9,
        id="per-instance-target-positive",
    ),
    pytest.param(
        check("strategy: per-instance", "target: 5"),
        "checks[0].query",
        "`query` is required for strategy per-instance",
        6,
        id="per-instance-needs-query",
    ),
    pytest.param(
        check("strategy: threshold", "query: up"),
        "checks[0].steps",
        "`steps` is required for strategy threshold",
        6,
        id="threshold-needs-steps",
    ),
    pytest.param(
        check("strategy: threshold", "query: up", "steps: []"),
        "checks[0].steps",
        "needs at least one step",
        9,
        id="threshold-needs-one-step",
    ),
    pytest.param(
        check("strategy: threshold", "steps: [{above: 1, change: '+1'}]"),
        "checks[0].query",
        "`query` is required for strategy threshold",
        6,
        id="threshold-needs-query",
    ),
    pytest.param(
        check("strategy: fixed", "count: 2", "query: up"),
        "checks[0].query",
        "'query' is not used for strategy fixed",
        9,
        id="fixed-takes-no-query",
    ),
    pytest.param(
        check("strategy: fixed"),
        "checks[0].count",
        "`count` is required for strategy fixed",
        6,
        id="fixed-needs-count",
    ),
    pytest.param(
        check("strategy: fixed", "count: -1"),
        "checks[0].count",
        "must be >= 0",
        8,
        id="fixed-count-negative",
    ),
    pytest.param(
        check("strategy: pass-through"),
        "checks[0].query",
        "`query` is required for strategy pass-through",
        6,
        id="pass-through-needs-query",
    ),
    pytest.param(
        check("strategy: target-value", "query: up", "target: 1", "steps: []"),
        "checks[0].steps",
        "'steps' is not used for strategy target-value (only by threshold)",
        10,
        id="steps-on-target-value",
    ),
    pytest.param(
        check("strategy: pass-through", "query: up", "tolerance: 0.2"),
        "checks[0].tolerance",
        "'tolerance' is not used for strategy pass-through (only by target-value, per-instance)",
        9,
        id="tolerance-on-pass-through",
    ),
    pytest.param(
        check("strategy: target-value", "query: up", "target: 1", "tolerance: -0.1"),
        "checks[0].tolerance",
        "must be >= 0",
        10,
        id="tolerance-negative",
    ),
    pytest.param(
        check("strategy: pass-through", "query: sum(rate(x[5m])"),
        "checks[0].query",
        "query is not valid PromQL: unclosed left parenthesis",
        8,
        id="promql-does-not-parse",
    ),
    pytest.param(
        check("strategy: pass-through", f"query: {'(' * 150}up{')' * 150}"),
        "checks[0].query",
        "too large to check",
        8,
        id="promql-too-deep",
    ),
    # --- threshold steps -------------------------------------------------------------------
    pytest.param(
        steps("{change: '+1'}"),
        "checks[0].steps[0]",
        "needs `above` and/or `below`",
        10,
        id="step-needs-above-or-below",
    ),
    pytest.param(
        steps("{above: 1}"),
        "checks[0].steps[0].change",
        "`change` is required",
        10,
        id="step-needs-change",
    ),
    pytest.param(
        steps("{above: 1, change: '2'}"),
        "checks[0].steps[0].change",
        "'2' is not a change: write +N, -N, +N% or -N%",
        10,
        id="step-change-needs-sign",
    ),
    pytest.param(
        steps("{above: 1, change: 2}"),
        "checks[0].steps[0].change",
        "'2' is not a change",
        10,
        id="step-change-unquoted-unsigned",
    ),
    pytest.param(
        steps("{above: 1, change: '+2 instances'}"),
        "checks[0].steps[0].change",
        "is not a change",
        10,
        id="step-change-bad-text",
    ),
    pytest.param(
        steps("{above: 5, below: 1, change: '+1'}"),
        "checks[0].steps[0].below",
        "no value is above 5 and below 1; use above < below",
        10,
        id="step-above-not-below",
    ),
    pytest.param(
        steps("{above: 0.5, change: '+1'}", "{above: 0.8, change: '+2'}"),
        "checks[0].steps[1]",
        "every value it matches is matched first by steps[0]",
        11,
        id="step-shadowed-by-one",
    ),
    pytest.param(
        steps(
            "{below: 1, change: '-1'}",
            "{above: 0.5, change: '+1'}",
            "{above: 0.2, below: 2, change: '+2'}",
        ),
        "checks[0].steps[2]",
        "matched first by steps[0], steps[1]",
        12,
        id="step-shadowed-by-union",
    ),
    # --- schedules -------------------------------------------------------------------------
    pytest.param(
        schedule("cron: '61 * * * *'", "duration: 1h", "min: 2"),
        "schedules[0].cron",
        "is not a cron expression",
        9,
        id="schedule-bad-cron",
    ),
    pytest.param(
        schedule("cron: '0 8 * * *'", "duration: 1h", "timezone: Mars/Olympus", "min: 2"),
        "schedules[0].timezone",
        "unknown timezone 'Mars/Olympus'",
        11,
        id="schedule-bad-timezone",
    ),
    pytest.param(
        schedule("start: 2026-11-28T00:00:00+01:00", "end: 2026-11-27T00:00:00+01:00", "min: 2"),
        "schedules[0].end",
        "end must be after start",
        10,
        id="schedule-end-before-start",
    ),
    pytest.param(
        schedule(
            "start: 2026-10-25T02:30:00",
            "end: 2026-10-26T00:00:00+01:00",
            "timezone: Europe/Paris",
            "min: 2",
        ),
        "schedules[0].start",
        "2026-10-25T02:30:00 happens twice in Europe/Paris (the clocks go back): write the "
        "offset meant, 2026-10-25T02:30:00+02:00 or 2026-10-25T02:30:00+01:00",
        9,
        id="schedule-local-time-repeated-in-its-timezone",
    ),
    pytest.param(
        schedule(
            "start: 2026-03-28T00:00:00+01:00",
            "end: '2026-03-29 02:30'",
            "timezone: Europe/Paris",
            "min: 2",
        ),
        "schedules[0].end",
        "2026-03-29T02:30:00 does not exist in Europe/Paris (the clocks skip it)",
        10,
        id="schedule-local-time-skipped-in-its-timezone",
    ),
    pytest.param(
        schedule(
            "start: 2026-11-27T06:00:00Z",
            "end: 9999-12-31T23:30:00",
            "timezone: America/New_York",
            "min: 2",
        ),
        "schedules[0].end",
        "9999-12-31T23:30:00 in America/New_York is outside the years 1 to 9999 in UTC",
        10,
        id="schedule-local-time-past-9999-in-utc",
    ),
    pytest.param(
        schedule("start: 2026-11-27T06:00:00", "end: 2026-11-27T06:00:00Z", "min: 2"),
        "schedules[0].end",
        "end must be after start",
        10,
        id="schedule-local-time-read-in-utc-ends-before-it-starts",
    ),
    pytest.param(
        schedule("start: 2026-11-27", "end: 2026-11-28T00:00:00+01:00", "min: 2"),
        "schedules[0].start",
        "is a date: add a time, e.g.",
        9,
        id="schedule-date-only",
    ),
    pytest.param(
        schedule("start: next friday", "end: 2026-11-28T00:00:00+01:00", "min: 2"),
        "schedules[0].start",
        "is not an ISO 8601 time",
        9,
        id="schedule-bad-time-text",
    ),
    pytest.param(
        schedule("start: 2026-11-27T06:00:00Z", "min: 2"),
        "schedules[0].end",
        "a one-off schedule needs end",
        8,
        id="schedule-start-without-end",
    ),
    pytest.param(
        schedule("cron: '0 8 * * *'", "min: 2"),
        "schedules[0].duration",
        "a recurring schedule needs duration",
        8,
        id="schedule-cron-without-duration",
    ),
    pytest.param(
        schedule("cron: '0 8 * * *'", "duration: 0s", "min: 2"),
        "schedules[0].duration",
        "longer than 0s",
        10,
        id="schedule-duration-zero",
    ),
    pytest.param(
        schedule(
            "start: 2026-11-27T06:00:00Z",
            "end: 2026-11-28T06:00:00Z",
            "cron: '0 8 * * *'",
            "duration: 1h",
            "min: 2",
        ),
        "schedules[0].cron",
        "either one-off (start + end) or recurring",
        11,
        id="schedule-both-kinds",
    ),
    pytest.param(
        schedule("min: 2"),
        "schedules[0]",
        "give start and end (one-off) or cron and duration",
        8,
        id="schedule-neither-kind",
    ),
    pytest.param(
        schedule("cron: '0 8 * * *'", "duration: 1h", "min: 4", "max: 3"),
        "schedules[0].min",
        "min 4 is above the schedule's max 3",
        11,
        id="schedule-min-above-own-max",
    ),
    pytest.param(
        schedule("cron: '0 8 * * *'", "duration: 1h", "min: 6"),
        "schedules[0].min",
        "min 6 is above the policy's max 5",
        11,
        id="schedule-min-above-policy-max",
    ),
    pytest.param(
        schedule("cron: '0 8 * * *'", "duration: 1h", "min: 0"),
        "schedules[0].min",
        "aws-asg targets need min >= 1",
        11,
        id="schedule-asg-min-zero",
    ),
    # --- limits, missing data, triggers ----------------------------------------------------
    pytest.param(
        policy("limits:\n  down: {count: 0}\n" + CHECK),
        "limits.down.count",
        "must be >= 1",
        6,
        id="limit-count-zero",
    ),
    pytest.param(
        policy("limits:\n  up: {percent: 0}\n" + CHECK),
        "limits.up.percent",
        "must be > 0",
        6,
        id="limit-percent-zero",
    ),
    pytest.param(
        policy("on_missing_data: fallback\n" + CHECK),
        "on_missing_data",
        "needs a `fallback: {after: 3, count: N}` block",
        5,
        id="fallback-block-missing",
    ),
    pytest.param(
        policy("on_missing_data: fallback\nfallback: {after: 0, count: 4}\n" + CHECK),
        "fallback.after",
        "must be >= 1",
        6,
        id="fallback-after-zero",
    ),
    pytest.param(
        policy("on_missing_data: fallback\nfallback: {after: 2, count: 0}\n" + CHECK),
        "fallback.count",
        "must be >= 1",
        6,
        id="fallback-count-zero",
    ),
    pytest.param(
        policy("on_missing_data: scale\n" + CHECK),
        "on_missing_data",
        "text 'scale' is not allowed: use 'hold' or 'fallback'",
        5,
        id="on-missing-data-unknown",
    ),
    pytest.param(
        policy("triggers:\n  alerts: CheckoutSlow\n" + CHECK),
        "triggers.alerts",
        "expected a list",
        6,
        id="trigger-alerts-not-a-list",
    ),
    pytest.param(
        policy("triggers:\n  alert: [CheckoutSlow]\n" + CHECK),
        "triggers.alert",
        "did you mean 'alerts'",
        6,
        id="trigger-unknown-key",
    ),
    # --- extensions of issue 11: forecasts, the anomaly guard, provisioning -------------
    pytest.param(
        check("strategy: target-value", "query: up", "target: 1", "forecast: {}"),
        "checks[0].forecast",
        "'forecast' is not used for strategy target-value (only by per-instance, pass-through)",
        10,
        id="forecast-on-target-value",
    ),
    pytest.param(
        check("strategy: per-instance", "query: up", "target: 1", "forecast: {lead: 1d}"),
        "checks[0].forecast.lead",
        "lead 1d is not shorter than the shortest season",
        10,
        id="forecast-lead-as-long-as-a-season",
    ),
    pytest.param(
        check("strategy: pass-through", "query: up", "forecast:", "  history: 3d"),
        "checks[0].forecast.seasons[1]",
        "season 1w is longer than the history 3d",
        9,
        id="forecast-season-longer-than-history",
    ),
    pytest.param(
        check("strategy: pass-through", "query: up", "forecast:", "  resolution: 1s"),
        "checks[0].forecast.history",
        "history 14d at resolution 1s is 1,209,600 buckets; keep it within 100,000",
        9,
        id="forecast-history-too-long-for-its-resolution",
    ),
    pytest.param(
        check("strategy: pass-through", "query: up", "forecast: {seasons: [90s]}"),
        "checks[0].forecast.seasons[0]",
        "season 90s is shorter than two buckets of the resolution 1m",
        9,
        id="forecast-season-shorter-than-two-buckets",
    ),
    pytest.param(
        check("strategy: pass-through", "query: up", "forecast: {min_history: 15d}"),
        "checks[0].forecast.min_history",
        "min_history 15d is longer than the history 14d",
        9,
        id="forecast-min-history-longer-than-history",
    ),
    pytest.param(
        check("strategy: pass-through", "query: up", "forecast: {forecast_only: 1}"),
        "checks[0].forecast.forecast_only",
        "expected true or false",
        9,
        id="forecast-only-not-a-boolean",
    ),
    pytest.param(
        policy("anomaly: {z: 0}\n" + CHECK),
        "anomaly.z",
        "must be > 0",
        5,
        id="anomaly-z-zero",
    ),
    pytest.param(
        policy("anomaly: {window: 0s}\n" + CHECK),
        "anomaly.window",
        "window must be longer than 0s",
        5,
        id="anomaly-empty-window",
    ),
    pytest.param(
        policy("provisioning: soon\n" + CHECK),
        "provisioning",
        "'soon' is not a duration",
        5,
        id="provisioning-not-a-duration",
    ),
]


@pytest.mark.parametrize(("text", "field", "fragment", "line"), INVALID)
def test_invalid_policy_is_reported_at_its_field_and_line(
    text: str, field: str, fragment: str, line: int
) -> None:
    problems = problems_of(text)
    matching = [p for p in problems if p.field == field and fragment in p.message]
    assert matching, "\n".join(str(p) for p in problems)
    assert matching[0].line == line, str(matching[0])
    assert all(p.file == FILE for p in problems)


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = policy(
        "interval: soon\ncooldown: {up: 1x}\n"
        "checks:\n  - {name: c, strategy: nope}\n"
        "  - name: t\n    strategy: threshold\n    query: up\n"
        "    steps: [{above: 1, change: '+1'}, {above: 2, change: '+2'}]\n",
        head=HEAD.replace("min: 1", "min: x"),
    )
    fields = [p.field for p in problems_of(text)]
    assert fields == [
        "min",
        "interval",
        "cooldown.up",
        "checks[0].strategy",
        "checks[1].steps[1]",  # cross-field rules still run on the checks that are valid
    ]


def test_problem_renders_as_file_line_field_message() -> None:
    (problem,) = problems_of(policy("mni: 1\n" + CHECK))
    assert str(problem).startswith(f"{FILE}:5: mni: unknown key 'mni'")


# --- valid files --------------------------------------------------------------------------


def test_minimal_policy_gets_every_default_and_the_file_stem_as_name() -> None:
    text = "# comment\ntarget: {type: aws-asg, asg: web}\nmin: 1\nmax: 5\n" + CHECK.replace(
        "fixed, count: 2", "target-value, query: up, target: 3"
    )
    (loaded,) = load_text(text, "policies/checkout-web.yaml")
    assert loaded == model.Policy(
        name="checkout-web",
        target=model.AsgTarget(asg="web"),
        min=1,
        max=5,
        checks=(
            model.Check(
                name="c",
                strategy=model.Strategy.TARGET_VALUE,
                query="up",
                target=3.0,
                tolerance=0.1,
            ),
        ),
        source=model.Source(file="policies/checkout-web.yaml", line=2),
    )
    assert loaded.enabled
    assert not loaded.dry_run
    assert loaded.interval == timedelta(seconds=30)
    assert loaded.cooldown == model.Cooldown(up=timedelta(minutes=1), down=timedelta(minutes=5))
    assert loaded.stabilization == model.Stabilization(up=timedelta(0), down=timedelta(minutes=5))
    assert loaded.on_missing_data is model.MissingData.HOLD
    assert loaded.fallback is None
    assert loaded.schedules == ()
    assert loaded.triggers.alerts == ()


FULL = """\
name: checkout
description: everything set
enabled: false
dry_run: true
target: {type: nomad, job: shop, group: web, region: eu}
min: 0
max: 40
interval: 1m30s
cooldown: {up: 2m, down: 10m}
stabilization: {up: 30s, down: 15m}
limits:
  up: {count: 10, percent: 100}
  down: {percent: 20}
on_missing_data: fallback
fallback: {after: 3, count: 10}
triggers: {alerts: [CheckoutSlow]}
schedules:
  - {name: bf, start: 2026-11-27T06:00:00+01:00, end: "2026-11-28T02:00:00Z", max: 50}
  - {name: office, cron: "0 8 * * 1-5", duration: 10h, min: 4}
checks:
  - {name: tv, strategy: target-value, query: up, target: 0.25, tolerance: 0.05}
  - {name: pi, strategy: per-instance, query: up, target: 50}
  - name: th
    strategy: threshold
    query: up
    steps:
      - {above: 0.05, change: +2}
      - {below: 0.01, change: -1}
      - {above: 0.02, below: 0.03, change: "-10%"}
  - {name: fx, strategy: fixed, count: 6}
  - {name: pt, strategy: pass-through, query: capacity_forecast}
"""


def test_full_policy_becomes_the_matching_dataclasses() -> None:
    (loaded,) = load_text(FULL, "f.yaml")
    assert loaded.target == model.NomadTarget(job="shop", group="web", region="eu")
    assert (loaded.enabled, loaded.dry_run, loaded.min, loaded.max) == (False, True, 0, 40)
    assert loaded.interval == timedelta(seconds=90)
    assert loaded.cooldown == model.Cooldown(up=timedelta(minutes=2), down=timedelta(minutes=10))
    assert loaded.stabilization == model.Stabilization(
        up=timedelta(seconds=30), down=timedelta(minutes=15)
    )
    assert loaded.limits == model.Limits(
        up=model.StepLimit(count=10, percent=100.0), down=model.StepLimit(percent=20.0)
    )
    assert loaded.on_missing_data is model.MissingData.FALLBACK
    assert loaded.fallback == model.Fallback(after=3, count=10)
    assert loaded.triggers == model.Triggers(alerts=("CheckoutSlow",))
    one_off, cron = loaded.schedules
    assert one_off == model.Schedule(
        name="bf",
        max=50,
        start=datetime(2026, 11, 27, 5, tzinfo=UTC),
        end=datetime(2026, 11, 28, 2, tzinfo=UTC),
    )
    assert cron == model.Schedule(
        name="office", min=4, cron="0 8 * * 1-5", duration=timedelta(hours=10), timezone="UTC"
    )
    tv, pi, th, fx, pt = loaded.checks
    assert tv == model.Check(
        name="tv", strategy=model.Strategy.TARGET_VALUE, query="up", target=0.25, tolerance=0.05
    )
    assert pi == model.Check(
        name="pi", strategy=model.Strategy.PER_INSTANCE, query="up", target=50.0
    )
    assert th.steps == (
        model.Step(change=model.Change(amount=2), above=0.05),  # unquoted +2 keeps its sign
        model.Step(change=model.Change(amount=-1), below=0.01),
        model.Step(change=model.Change(amount=-10, percent=True), above=0.02, below=0.03),
    )
    assert fx == model.Check(name="fx", strategy=model.Strategy.FIXED, count=6)
    assert pt == model.Check(
        name="pt", strategy=model.Strategy.PASS_THROUGH, query="capacity_forecast"
    )


@pytest.mark.parametrize(
    "change",
    [
        pytest.param("+0.4", id="unquoted"),  # YAML reads 0.4; the loader takes back the text
        pytest.param('"-1.5"', id="quoted"),
    ],
)
def test_a_count_change_that_is_no_whole_number_is_refused_at_its_step(change: str) -> None:
    [problem] = problems_of(steps(f"{{above: 1, change: {change}}}"))
    assert (problem.line, problem.field) == (10, "checks[0].steps[0].change")
    assert "is not a whole number of instances: write +N or -N" in problem.message


def test_a_percentage_change_may_be_fractional_and_a_count_written_with_zero_decimals() -> None:
    (loaded,) = load_text(steps('{above: 2, change: "+0.5%"}', "{above: 1, change: +2.0}"), FILE)
    assert [s.change for s in loaded.checks[0].steps] == [
        model.Change(amount=0.5, percent=True),
        model.Change(amount=2),
    ]


@pytest.mark.parametrize(
    ("interval", "message"),
    [
        pytest.param("5ms", "5ms is shorter than 1s (did you mean 5m?)", id="typo-for-minutes"),
        pytest.param("500ms", "500ms is shorter than 1s: write at least 1s", id="half-a-second"),
    ],
)
def test_an_interval_under_a_second_is_refused_at_its_line(interval: str, message: str) -> None:
    [problem] = problems_of(policy(f"interval: {interval}\n" + CHECK))
    assert (problem.line, problem.field) == (5, "interval")
    assert message in problem.message


def test_nomad_namespace_defaults_to_default() -> None:
    text = policy(head=HEAD.replace("{type: aws-asg, asg: web}", "{type: nomad, job: j, group: g}"))
    (loaded,) = load_text(text, FILE)
    assert loaded.target == model.NomadTarget(job="j", group="g", namespace="default")


def test_several_documents_each_give_a_policy_with_its_own_line() -> None:
    text = "---\n" + policy() + "---\n" + policy(head=HEAD.replace("name: web", "name: api"))
    loaded = load_text(text, FILE)
    assert [(p.name, p.source.line) for p in loaded] == [("web", 2), ("api", 9)]


def test_a_list_holds_several_policies() -> None:
    text = (
        "- name: a\n  target: {type: aws-asg, asg: a}\n  min: 1\n  max: 2\n"
        "  checks: [{name: c, strategy: fixed, count: 1}]\n"
    )
    text += text.replace("name: a", "name: b")
    loaded = load_text(text, FILE)
    assert [(p.name, p.source.line) for p in loaded] == [("a", 1), ("b", 6)]


def test_a_long_list_of_plain_policies_loads_whole() -> None:
    # Every value counted against the cap meant for what aliases expand: a list of 2,200
    # plain policies (295 KB) was refused as "expands to too many values", none loaded.
    one = (
        "- name: p{n}\n  target: {{type: aws-asg, asg: g{n}}}\n  min: 1\n  max: 2\n"
        "  checks: [{{name: c, strategy: fixed, count: 1}}]\n"
    )
    text = "".join(one.format(n=n) for n in range(3000))
    loaded = load_text(text, FILE)
    assert len(loaded) == 3000 and loaded[-1].name == "p2999"


def test_a_document_whose_aliases_expand_too_far_is_refused() -> None:
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for level in "bcdefgh":
        previous = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [{', '.join(['*' + previous] * 10)}]")
    with pytest.raises(PolicyError) as raised:
        load_text("\n".join(lines) + "\n", FILE)
    assert "expands to too many values" in str(raised.value)


def test_yaml_anchors_and_merge_keys_are_followed() -> None:
    text = (
        "- &base\n  name: a\n  target: {type: aws-asg, asg: a}\n  min: 1\n  max: 2\n"
        "  checks: [{name: c, strategy: fixed, count: 1}]\n"
        "- <<: *base\n  name: b\n  max: 3\n"
    )
    a, b = load_text(text, FILE)
    assert (b.name, b.max, b.target) == ("b", 3, a.target)


def test_a_merge_key_after_a_mappings_own_keys_does_not_take_their_text_or_lines() -> None:
    # The base was read under the same path after the own keys: its `change: "+1"` text
    # replaced web-b's `+5` (restored from the text: a silent +1), and its lines were the
    # ones a problem of web-b named.
    base = (
        "- &base\n  name: web-a\n  target: {type: aws-asg, asg: a}\n  min: 1\n  max: 10\n"
        "  checks: [{name: errors, strategy: threshold, query: q,"
        ' steps: [{above: 0.05, change: "+1"}]}]\n'
    )
    b = (
        "- name: web-b\n  target: {type: aws-asg, asg: b}\n"
        "  checks: [{name: errors, strategy: threshold, query: q,"
        " steps: [{above: 0.05, change: +5}]}]\n  <<: *base\n"
    )
    a, loaded = load_text(base + b, FILE)
    assert str(a.checks[0].steps[0].change) == "+1"
    assert (loaded.name, str(loaded.checks[0].steps[0].change), loaded.max) == ("web-b", "+5", 10)
    with pytest.raises(PolicyError) as raised:
        load_text(base + b.replace("  <<: *base", '  min: "3"\n  <<: *base'), FILE)
    assert [(p.line, p.field) for p in raised.value.problems] == [(10, "min")]  # not 4


def test_one_off_schedule_accepts_iso_text_and_yaml_timestamps_alike() -> None:
    text = schedule(
        'start: "2026-11-27T06:00:00+01:00"', "end: 2026-11-27T07:00:00+01:00", "min: 2"
    )
    (loaded,) = load_text(text, FILE)
    (window,) = loaded.schedules
    assert window.start == datetime(2026, 11, 27, 5, tzinfo=UTC)
    assert window.end == datetime(2026, 11, 27, 6, tzinfo=UTC)


def test_a_bare_zero_is_a_duration_as_in_prometheus() -> None:
    # Prometheus' ParseDuration takes "0" without a unit; the spec says Prometheus syntax.
    text = policy('cooldown: {up: "0", down: 0s}\nstabilization: {down: "0"}\n' + CHECK)
    (loaded,) = load_text(text, FILE)
    assert (loaded.cooldown.up, loaded.stabilization.down) == (timedelta(0), timedelta(0))
    with pytest.raises(PolicyError, match=r'cooldown\.up: 0 is not a duration: write "0"'):
        load_text(policy("cooldown: {up: 0}\n" + CHECK), FILE)  # a YAML number


# --- load_paths ---------------------------------------------------------------------------


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def named(name: str) -> str:
    """HEAD for a policy called `name` scaling its own ASG of the same name."""
    return HEAD.replace("name: web", f"name: {name}").replace("asg: web", f"asg: {name}")


def test_load_paths_keeps_good_files_when_one_is_broken(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", policy(head=named("a")))
    write(tmp_path, "b.yml", policy(head=named("b")) + "bogus: 1\n")
    write(tmp_path, "c.yaml", policy(head=named("c")))
    write(tmp_path, "notes.txt", "not a policy")
    result = load_paths([tmp_path])
    assert [p.name for p in result.policies] == ["a", "c"]
    assert [str(p) for p in result.problems] == [
        f"{tmp_path / 'b.yml'}:7: bogus: unknown key 'bogus'; allowed keys: name, description, "
        "enabled, dry_run, target, min, max, interval, cooldown, stabilization, limits, "
        "on_missing_data, fallback, schedules, checks, triggers, provisioning, anomaly"
    ]
    assert [f.name for f in result.files] == ["a.yaml", "b.yml", "c.yaml"]


SPEC_EXAMPLE = Path(__file__).parent / "data" / "policy_spec_example.yaml"


def test_the_spec_example_loads_with_one_warning_for_its_ignored_fallback() -> None:
    """POLICY_SPEC's example writes a `fallback` block beside `on_missing_data: hold`: valid
    (the block is ignored), so a policy copied from the spec loads, with a warning."""
    result = load_paths([SPEC_EXAMPLE])
    assert result.problems == []
    assert [p.name for p in result.policies] == ["checkout-web"]
    assert result.policies[0].on_missing_data is model.MissingData.HOLD
    (warning,) = result.warnings
    lines = SPEC_EXAMPLE.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.startswith("fallback:"))
    assert (warning.file, warning.line, warning.field) == (str(SPEC_EXAMPLE), line, "fallback")
    assert str(warning) == (
        f"{SPEC_EXAMPLE}:{line}: fallback: warning: ignored while on_missing_data is hold: "
        "the policy holds without data; write `on_missing_data: fallback` to use it, or "
        "remove it"
    )


def test_a_fallback_block_without_any_on_missing_data_warns_that_hold_is_the_default(
    tmp_path: Path,
) -> None:
    write(tmp_path, "web.yaml", policy("fallback: {after: 3, count: 4}\n" + CHECK))
    loaded = load_file(tmp_path / "web.yaml")
    assert [p.policy.name for p in loaded.policies] == ["web"]
    assert [(w.line, w.field) for w in loaded.warnings] == [(5, "fallback")]
    assert "ignored while on_missing_data is hold (the default):" in loaded.warnings[0].message


def test_a_timezone_on_a_one_off_schedule_is_a_warning_not_a_problem(tmp_path: Path) -> None:
    """The spec allows `timezone` on every schedule; a one-off's own offsets make it moot."""
    text = schedule(
        "start: 2026-11-27T06:00:00+01:00", "end: 2026-11-28T02:00:00+01:00",
        "timezone: Europe/Paris", "min: 2",
    )  # fmt: skip
    write(tmp_path, "web.yaml", text)
    loaded = load_file(tmp_path / "web.yaml")
    assert loaded.problems == ()
    assert [p.policy.name for p in loaded.policies] == ["web"]
    assert [(w.line, w.field) for w in loaded.warnings] == [(11, "schedules[0].timezone")]
    assert loaded.warnings[0].message.startswith("ignored: a one-off schedule's start and end")


def test_a_warning_is_listed_beside_the_problems_of_a_broken_file(tmp_path: Path) -> None:
    write(tmp_path, "web.yaml", policy("fallback: {after: 3, count: 4}\ninterval: 5ms\n" + CHECK))
    result = load_paths([tmp_path])
    assert result.policies == []
    assert [p.field for p in result.problems] == ["interval"]
    assert [w.field for w in result.warnings] == ["fallback"]


def test_on_missing_data_fallback_without_its_block_is_still_a_problem(tmp_path: Path) -> None:
    """The reverse cannot be evaluated: no count to fall back to."""
    write(tmp_path, "web.yaml", policy("on_missing_data: fallback\n" + CHECK))
    result = load_paths([tmp_path])
    assert (result.policies, result.warnings) == ([], [])
    assert [(p.line, p.field) for p in result.problems] == [(5, "on_missing_data")]


def test_load_paths_reports_a_missing_path_and_loads_the_rest(tmp_path: Path) -> None:
    good = write(tmp_path, "web.yaml", policy())
    result = load_paths([tmp_path / "nope.yaml", good])
    assert [p.name for p in result.policies] == ["web"]
    (problem,) = result.problems
    assert problem.file == str(tmp_path / "nope.yaml")
    assert "no such file" in problem.message


def test_duplicate_policy_name_across_files_drops_the_later_one(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", policy())
    second = write(tmp_path, "b.yaml", "# the same name\n" + policy().replace("max: 5", "max: 9"))
    result = load_paths([tmp_path])
    assert [(p.name, p.max) for p in result.policies] == [("web", 5)]
    (problem,) = result.problems
    assert (problem.file, problem.line, problem.field) == (str(second), 2, "name")
    assert f"also defined at {first}:1" in problem.message


@pytest.mark.parametrize(
    ("first_target", "second_target", "clash"),
    [
        pytest.param("{type: aws-asg, asg: web}", "{type: aws-asg, asg: web}", True, id="same-asg"),
        pytest.param(
            "{type: aws-asg, asg: web, region: eu-west-3}",
            "{type: aws-asg, asg: web}",
            True,
            id="region-given-once-matches-any",
        ),
        pytest.param(
            "{type: aws-asg, asg: web, region: eu-west-3}",
            "{type: aws-asg, asg: web, region: us-east-1}",
            False,
            id="other-region",
        ),
        pytest.param("{type: aws-asg, asg: web}", "{type: aws-asg, asg: api}", False, id="other"),
        pytest.param(
            "{type: nomad, job: chat, group: api}",
            "{type: nomad, job: chat, group: api, namespace: default}",
            True,
            id="same-nomad-group",
        ),
        pytest.param(
            "{type: nomad, job: chat, group: api}",
            "{type: nomad, job: chat, group: api, namespace: apps}",
            False,
            id="other-namespace",
        ),
    ],
)
def test_two_enabled_policies_may_not_scale_one_target(
    tmp_path: Path, first_target: str, second_target: str, clash: bool
) -> None:
    head = "target: {}\nmin: 1\nmax: 5\n"
    first = write(tmp_path, "a.yaml", "name: a\n" + policy(head=head.format(first_target)))
    second = write(tmp_path, "b.yaml", "name: b\n" + policy(head=head.format(second_target)))
    result = load_paths([tmp_path])
    if not clash:
        assert [p.name for p in result.policies] == ["a", "b"]
        assert not result.problems
        return
    assert [p.name for p in result.policies] == ["a"]
    (problem,) = result.problems
    assert (problem.file, problem.line, problem.field) == (str(second), 1, "target")
    assert f"already scaled by policy 'a' ({first}:1)" in problem.message


@pytest.mark.parametrize(
    "target",
    [
        pytest.param('{type: aws-asg, asg: web, region: ""}', id="aws-asg"),
        pytest.param('{type: nomad, job: chat, group: api, region: ""}', id="nomad"),
    ],
)
def test_an_empty_region_is_refused_so_it_cannot_slip_past_the_one_policy_per_target_rule(
    target: str,
) -> None:
    # "" is the default region where the target is scaled, but "" matches no named region
    # when two policies are compared: `region: eu-west-3` and `region: ""` both loaded.
    (problem,) = problems_of(policy(head=f"name: web\ntarget: {target}\nmin: 1\nmax: 5\n"))
    assert (problem.line, problem.field) == (2, "target.region")
    assert problem.message == "must not be empty: leave region out to use the default region"


@pytest.mark.parametrize(("written", "shown"), [('"*"', "'*'"), ('"prod-*"', "'prod-*'")])
def test_a_wildcard_namespace_is_refused_at_its_field_pointing_to_discovery(
    written: str, shown: str
) -> None:
    # `*` lists jobs in every namespace, but a scale call goes to one job in one namespace.
    target = f"{{type: nomad, job: chat, group: api, namespace: {written}}}"
    (problem,) = problems_of(policy(head=f"name: web\ntarget: {target}\nmin: 1\nmax: 5\n"))
    assert (problem.line, problem.field) == (2, "target.namespace")
    assert problem.message.startswith(f"{shown} is a wildcard, but a Nomad target is one job")
    assert 'for_each.nomad.namespace: "*"' in problem.message


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(model.AsgTarget(asg="web", region=""), id="aws-asg"),
        pytest.param(model.NomadTarget(job="chat", group="api", region=""), id="nomad"),
    ],
)
def test_a_target_with_an_empty_region_is_the_same_as_one_in_any_region(
    target: model.TargetRef,
) -> None:
    # A target built without the schema (which refuses "") still meets the rule.
    assert same_target(target, dataclasses.replace(target, region="eu-west-3"))


def test_a_disabled_policy_may_share_a_target(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", policy(head=named("a").replace("asg: a", "asg: web")))
    write(
        tmp_path,
        "b.yaml",
        "enabled: false\n" + policy(head=named("b").replace("asg: b", "asg: web")),
    )
    assert [p.name for p in load_paths([tmp_path]).policies] == ["a", "b"]


def test_a_bad_field_in_the_last_of_many_files_is_reported_at_its_line(tmp_path: Path) -> None:
    """Valid files are read without their line tables (the fast path); a problem in one
    of them is still located exactly, whichever file of the folder it is in."""
    for i in range(10_000):
        text = f"target: {{type: nomad, job: j{i}, group: g}}\nmin: 1\nmax: 3\n" + CHECK
        write(
            tmp_path, f"p{i:05d}.yaml", text.replace("max: 3", "max: three") if i == 9_998 else text
        )
    result = load_paths([tmp_path])
    assert len(result.policies) == 9_999
    assert [str(p) for p in result.problems] == [
        f"{tmp_path / 'p09998.yaml'}:3: max: expected an integer, got text 'three': "
        "write a whole number, e.g. 3"
    ]


def test_load_paths_follows_a_link_and_reads_its_file_once(tmp_path: Path) -> None:
    path = write(tmp_path, "web.yaml", policy())
    (tmp_path / "alias.yaml").symlink_to(path)
    (tmp_path / "folder.yaml").mkdir()  # a folder is not a policy file, whatever its name
    result = load_paths([tmp_path])
    assert [f.name for f in result.files] == ["alias.yaml"]
    assert [p.name for p in result.policies] == ["web"]


def test_a_link_to_nothing_in_a_folder_is_a_problem_naming_its_target(tmp_path: Path) -> None:
    # It was skipped without a word: the policy it pointed to vanished from validate,
    # plan and run.
    write(tmp_path, "web.yaml", policy())
    (tmp_path / "api.yaml").symlink_to("gone/api.yaml")
    (tmp_path / "db.yaml").symlink_to(tmp_path / "api.yaml")  # a chain ending in nothing
    (tmp_path / "loop.yaml").symlink_to("loop.yaml")  # was a traceback (ELOOP)
    (tmp_path / ".#web.yaml").symlink_to("me@host.12345:1733400000")  # Emacs's lock: skipped
    result = load_paths([tmp_path])
    assert [p.name for p in result.policies] == ["web"]
    gone = tmp_path / "gone" / "api.yaml"
    link = f"cannot read the file: a symbolic link to {{}} ({gone}), which does not exist"
    loop = "cannot read the file: a symbolic link to {}, in a loop of links that leads to no file"
    assert [(Path(p.file).name, p.message) for p in result.problems] == [
        ("api.yaml", link.format("gone/api.yaml")),
        ("db.yaml", link.format(tmp_path / "api.yaml")),
        ("loop.yaml", loop.format("loop.yaml")),
    ]
    direct = load_paths([tmp_path / "api.yaml"]).problems
    assert [p.message for p in direct] == [
        f"a symbolic link to gone/api.yaml ({gone}), which does not exist"
    ]
    # A loop given on its own was "no such file or folder".
    alone = load_paths([tmp_path / "loop.yaml"]).problems
    assert [p.message for p in alone] == [
        loop.removeprefix("cannot read the file: ").format("loop.yaml")
    ]


def test_load_paths_reads_a_file_given_twice_once(tmp_path: Path) -> None:
    path = write(tmp_path, "web.yaml", policy())
    result = load_paths([tmp_path, path])
    assert len(result.policies) == 1
    assert not result.problems


# --- JSON Schema --------------------------------------------------------------------------


def test_json_schema_describes_a_policy_or_a_list_of_policies() -> None:
    schema = json_schema()
    assert schema["title"] == "Autoscaler policy file"
    policy_def = schema["$defs"]["PolicyModel"]
    assert {"target", "min", "max", "checks", "triggers", "schedules"} <= set(
        policy_def["properties"]
    )
    assert policy_def["additionalProperties"] is False
    assert policy_def["properties"]["interval"]["default"] == "30s"
    assert policy_def["properties"]["interval"]["type"] == "string"
    assert "pattern" in policy_def["properties"]["interval"]
    assert all("description" in p for p in policy_def["properties"].values())
    assert {"$ref": "#/$defs/PolicyModel"} in schema["anyOf"]


def test_forecast_guard_and_provisioning_load_with_their_defaults() -> None:
    text = policy(
        "provisioning: 3m\n"
        "anomaly: {z: 6}\n"
        "checks:\n"
        "  - name: rps\n"
        "    strategy: per-instance\n"
        "    query: sum(rate(http_requests_total[1m]))\n"
        "    target: 70\n"
        "    tolerance: 0.05\n"
        "    forecast: {resolution: 5m, forecast_only: true}\n"
    )
    (loaded,) = load_text(text, FILE)
    (rps,) = loaded.checks
    assert rps.tolerance == 0.05
    assert rps.forecast == model.ForecastSettings(
        lead=None,
        history=timedelta(days=14),
        resolution=timedelta(minutes=5),
        seasons=(timedelta(days=1), timedelta(days=7)),
        min_history=timedelta(days=1),
        max_error=0.5,
        only=True,
        noise_band=0.0,
    )
    assert loaded.provisioning == timedelta(minutes=3)
    assert loaded.anomaly == model.AnomalyGuard(z=6.0)
    assert loaded.forecast_lead(rps) == timedelta(minutes=3, seconds=30)


@pytest.mark.parametrize(
    ("band", "problem"),
    [
        pytest.param("0.25", None, id="a ratio below 1"),
        pytest.param("0", None, id="off"),
        pytest.param("1", "must be < 1", id="1 or more"),
        pytest.param("-0.1", "must be >= 0", id="negative"),
    ],
)
def test_a_forecasts_noise_band_is_a_ratio_from_0_to_below_1(
    band: str, problem: str | None
) -> None:
    text = (
        "name: web\n"
        "target: {type: aws-asg, asg: web}\n"
        "min: 1\n"
        "max: 10\n"
        "checks:\n"
        "  - name: rps\n"
        "    strategy: per-instance\n"
        "    query: sum(rate(http_requests_total[1m]))\n"
        "    target: 70\n"
        f"    forecast: {{noise_band: {band}}}\n"
    )
    if problem is None:
        (loaded,) = load_text(text, FILE)
        (rps,) = loaded.checks
        assert rps.forecast is not None
        assert rps.forecast.noise_band == float(band)
        return
    with pytest.raises(PolicyError) as raised:
        load_text(text, FILE)
    assert "checks[0].forecast.noise_band" in str(raised.value)
    assert problem in str(raised.value)


def test_without_forecast_guard_or_provisioning_a_policy_means_what_it_did() -> None:
    (loaded,) = load_text(policy(), FILE)
    assert loaded.provisioning is None
    assert loaded.anomaly is None
    assert all(c.forecast is None for c in loaded.checks)


def test_a_loaded_file_keeps_its_path_as_one_string_shared_by_its_policies(
    tmp_path: Path,
) -> None:
    # 10,000 files kept as `Path`s held 2.3 MB more in the service than as the text that
    # every policy's source already holds.
    path = tmp_path / "web.yaml"
    path.write_text(policy())
    load = load_file(path)

    assert type(load.path) is str and load.path == str(path)
    (located,) = load.policies
    assert located.policy.source.file is load.path


def test_policies_with_the_same_settings_share_their_frozen_setting_objects() -> None:
    # One object per distinct value, not per policy: 1.8 MB at 10,000 policy files.
    settings = (
        "cooldown: {up: 1m}\nlimits: {up: {count: 2, percent: 50}}\n"
        "triggers: {alerts: [HighLatency]}\n"
    )
    web = load_text(policy(settings + CHECK), "web.yaml")[0]
    api = load_text(policy(settings + CHECK, head=HEAD.replace("web", "api")), "api.yaml")[0]
    other = load_text(policy("cooldown: {up: 2m}\n" + CHECK), "o.yaml")[0]

    assert web.cooldown is api.cooldown and web.limits is api.limits
    assert web.triggers is api.triggers and web.stabilization is api.stabilization
    assert other.cooldown == model.Cooldown(up=timedelta(minutes=2), down=web.cooldown.down)
    assert other.cooldown is not web.cooldown


@pytest.mark.parametrize(
    ("text", "line", "field", "shown"),
    [
        (HEAD.replace("max: 5", "max: 010"), 4, "max", "octal (base 8) number 8"),
        (HEAD.replace("max: 5", "max: -010"), 4, "max", "octal (base 8) number -8"),
        (HEAD + "interval: 1:30\n", 5, "interval", "base 60 number 90"),
        (HEAD + "interval: 1:30.5\n", 5, "interval", "base 60 number 90.5"),
    ],
)
def test_a_number_yaml_1_1_reads_as_octal_or_base_60_is_refused_where_written(
    text: str, line: int, field: str, shown: str
) -> None:
    # YAML 1.1 (PyYAML) reads `010` as 8 and `1:30` as 90: `max: 010` loaded as a maximum
    # of 8 and `interval: 1:30` as 90 seconds, without a word.
    found = [p for p in problems_of(text + CHECK) if "YAML 1.1" in p.message]
    assert [(p.line, p.field) for p in found] == [(line, field)]
    assert shown in found[0].message
    assert "quote it" in found[0].message


def test_numbers_that_read_the_same_in_every_yaml_still_load() -> None:
    text = HEAD.replace("max: 5", "max: 0x0A") + "cooldown: '1:30'\n" + CHECK
    with pytest.raises(PolicyError) as raised:  # a cooldown of "1:30" is no duration
        load_text(text, FILE)
    assert "YAML 1.1" not in raised.value.problems[0].message
    text = HEAD.replace("min: 1", "min: 00").replace("max: 5", "max: 1_0") + CHECK
    (loaded,) = load_text(text.replace("aws-asg, asg: web", "nomad, job: web, group: g"), FILE)
    assert (loaded.min, loaded.max) == (0, 10)
    (loaded,) = load_text(HEAD.replace("max: 5", "max: 07") + CHECK, FILE)  # 7 either way
    assert loaded.max == 7
