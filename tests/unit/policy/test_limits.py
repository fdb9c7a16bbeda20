"""The limits that keep every accepted policy computable: durations, counts, percents,
instants and crons outside them are rejected at their field, with the limit in the message.

Each case below was accepted (and later crashed `decide()`) or crashed `validate` itself
with an internal error, found by `test_shipped_policies_fuzz.py`.
"""

from __future__ import annotations

import pytest

from autoscaler.errors import PolicyError
from autoscaler.policy.loader import load_text

FILE = "policies/web.yaml"
HEAD = "name: web\ntarget: {type: aws-asg, asg: web}\nmin: 1\nmax: 5\n"
CHECK = "checks:\n  - {name: c, strategy: fixed, count: 2}\n"


def schedule(*lines: str) -> str:
    """A policy whose schedule's keys start on line 9."""
    return HEAD + CHECK + "schedules:\n  - name: s\n" + "".join(f"    {x}\n" for x in lines)


REJECTED = [
    pytest.param(
        HEAD + "interval: 99999999999999999999y\n" + CHECK,
        "interval",
        "'99999999999999999999y' is too long: a duration is at most 1y (365d)",
        5,
        id="duration-overflowing-timedelta",
    ),
    pytest.param(
        HEAD + "cooldown: {up: 1y1ms}\n" + CHECK,
        "cooldown.up",
        "at most 1y",
        5,
        id="duration-just-over-a-year",
    ),
    pytest.param(
        schedule("cron: '0 8 * * *'", "duration: 366d", "min: 2"),
        "schedules[0].duration",
        "at most 1y",
        10,
        id="schedule-duration",
    ),
    pytest.param(
        schedule("cron: '0 0 30 2 *'", "duration: 1h", "min: 2"),
        "schedules[0].cron",
        "'0 0 30 2 *' never fires",
        9,
        id="cron-february-30",
    ),
    pytest.param(
        schedule("cron: '0 0 31 4,6,9,11 *'", "duration: 1h", "min: 2"),
        "schedules[0].cron",
        "never fires",
        9,
        id="cron-31st-of-short-months",
    ),
    pytest.param(
        schedule("cron: '0 0 1 1 * 0 2030'", "duration: 1h", "min: 2"),
        "schedules[0].cron",
        "use five fields",
        9,
        id="cron-with-a-year-field",
    ),
    pytest.param(
        schedule("cron: '* * * * * *'", "duration: 1h", "min: 2"),
        "schedules[0].cron",
        "use five fields",
        9,
        id="cron-with-seconds",
    ),
    pytest.param(
        schedule("start: 0001-01-01T00:00:00+14:00", "end: 2026-01-01T00:00:00Z", "min: 2"),
        "schedules[0].start",
        "outside the years 1 to 9999 in UTC",
        9,
        id="instant-before-year-1-in-utc",
    ),
    pytest.param(
        schedule("start: '2026-01-01T00:00:00Z'", "end: '9999-12-31T23:00:00-14:00'", "min: 2"),
        "schedules[0].end",
        "outside the years 1 to 9999 in UTC",
        10,
        id="instant-after-9999-in-utc",
    ),
    pytest.param(
        HEAD.replace("max: 5", "max: 10000000") + CHECK,
        "max",
        "must be <= 1000000",
        4,
        id="max-above-a-million",
    ),
    pytest.param(
        HEAD + "checks:\n  - {name: c, strategy: fixed, count: 100000000000000000000}\n",
        "checks[0].count",
        "must be <= 1000000",
        6,
        id="fixed-count",
    ),
    pytest.param(
        HEAD + "limits: {up: {percent: 1.0e+308}}\n" + CHECK,
        "limits.up.percent",
        "must be <= 10000",
        5,
        id="limit-percent",
    ),
    pytest.param(
        HEAD + "limits: {down: {count: 2000000}}\n" + CHECK,
        "limits.down.count",
        "must be <= 1000000",
        5,
        id="limit-count",
    ),
    pytest.param(
        HEAD + "on_missing_data: fallback\nfallback: {after: 3, count: 99999999}\n" + CHECK,
        "fallback.count",
        "must be <= 1000000",
        6,
        id="fallback-count",
    ),
    pytest.param(
        schedule("cron: '0 8 * * *'", "duration: 1h", "max: 5000000"),
        "schedules[0].max",
        "must be <= 1000000",
        11,
        id="schedule-max",
    ),
    pytest.param(
        HEAD
        + "checks:\n  - name: c\n    strategy: threshold\n    query: up\n    steps:\n"
        + "      - {above: 1, change: '+99999999999999999999'}\n",
        "checks[0].steps[0].change",
        "'+99999999999999999999' changes by more than 1000000",
        10,
        id="change-count",
    ),
    pytest.param(
        HEAD
        + "checks:\n  - name: c\n    strategy: threshold\n    query: up\n    steps:\n"
        + "      - {above: 1, change: '+1000000%'}\n",
        "checks[0].steps[0].change",
        "changes by more than 10000%",
        10,
        id="change-percent",
    ),
    pytest.param(
        HEAD
        + "checks:\n  - {name: c, strategy: target-value, query: up, target: 1, tolerance: 1}\n",
        "checks[0].tolerance",
        "must be < 1.0, got an integer 1: at 1 or more the value would have to fall below 0",
        6,
        id="tolerance-that-never-scales-in",
    ),
    pytest.param(
        HEAD + "checks:\n  - name: c\n    strategy: per-instance\n    query: up\n"
        "    target: 5\n    tolerance: 2.5\n",
        "checks[0].tolerance",
        "must be < 1.0",
        10,
        id="per-instance-tolerance-that-never-scales-in",
    ),
]


@pytest.mark.parametrize(("text", "field", "fragment", "line"), REJECTED)
def test_a_value_beyond_its_limit_is_rejected_at_its_field(
    text: str, field: str, fragment: str, line: int
) -> None:
    with pytest.raises(PolicyError) as caught:
        load_text(text, FILE)
    found = [(p.line, p.field, p.message) for p in caught.value.problems]
    assert any(
        (p.line, p.field) == (line, field) and fragment in p.message for p in caught.value.problems
    ), found
    assert not any("internal error" in p.message for p in caught.value.problems), found


ACCEPTED = [
    pytest.param(HEAD + "cooldown: {down: 1y}\n" + CHECK, id="a-year"),
    pytest.param(HEAD + "stabilization: {down: 52w1d}\n" + CHECK, id="a-year-in-weeks"),
    pytest.param(HEAD.replace("max: 5", "max: 1000000") + CHECK, id="a-million"),
    pytest.param(HEAD + "limits: {up: {percent: 10000}}\n" + CHECK, id="ten-thousand-percent"),
    pytest.param(
        HEAD + "checks:\n  - {name: c, strategy: target-value, query: up, target: 1, "
        "tolerance: 0.99}\n",
        id="tolerance-just-below-1",
    ),
    pytest.param(schedule("cron: '0 0 29 2 *'", "duration: 1d", "min: 2"), id="leap-day"),
    pytest.param(schedule("cron: '0 0 29 2 1#5'", "duration: 1d", "min: 2"), id="rare-cron"),
    pytest.param(schedule("cron: '@yearly'", "duration: 1d", "min: 2"), id="cron-macro"),
    pytest.param(
        schedule("start: 0001-01-01T00:00:00Z", "end: 9999-12-31T23:59:59Z", "min: 2"),
        id="whole-range-one-off",
    ),
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_a_value_at_its_limit_is_accepted(text: str) -> None:
    (policy,) = load_text(text, FILE)
    assert policy.name == "web"
