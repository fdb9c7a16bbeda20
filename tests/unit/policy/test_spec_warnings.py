"""What POLICY_SPEC's "Validation" section does not refuse loads: a policy written from the
spec runs as written, with a warning at FILE:LINE: FIELD that says what the controller does
with it. Where its meaning is ambiguous (a wall-clock time a daylight-saving change skips
or repeats) it stays an error (tests/unit/policy/test_loader.py, INVALID)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autoscaler.core import model
from autoscaler.core.bounds import effective_bounds, limit
from autoscaler.core.strategies import desired
from autoscaler.errors import PolicyError
from autoscaler.policy.loader import FileLoad, load_file, load_text

# Lines 1-6; what each case adds starts on line 7.
HEAD = """\
name: web
target: {type: nomad, job: web, group: app}
min: 1
max: 20
checks:
  - {name: c, strategy: fixed, count: 2}
"""


def loaded(tmp_path: Path, body: str) -> FileLoad:
    path = tmp_path / "web.yaml"
    path.write_text(HEAD + body)
    return load_file(path)


def only_warning(load: FileLoad) -> tuple[int, str, str]:
    """The file's one warning as (line, field, message), its policy loaded."""
    assert load.problems == ()
    assert [p.policy.name for p in load.policies] == ["web"]
    (warning,) = load.warnings
    return warning.line, warning.field, warning.message


def policy_of(load: FileLoad) -> model.Policy:
    (located,) = load.policies
    return located.policy


# --- 1. one-off times without an offset ---------------------------------------------------

LOCAL_SCHEDULE = """\
schedules:
  - name: black-friday
    start: 2026-11-27T06:00:00
    end: 2026-11-28T02:00:00
    min: 12
"""


def test_a_one_off_schedule_without_offsets_loads_with_one_warning_naming_utc(
    tmp_path: Path,
) -> None:
    line, field, message = only_warning(loaded(tmp_path, LOCAL_SCHEDULE))
    assert (line, field) == (9, "schedules[0].start")
    assert message == (
        "start and end have no UTC offset: read in UTC, the default zone (as for cron "
        "schedules); write an offset (+01:00, or Z for UTC) or a `timezone` (e.g. "
        "Europe/Paris) to say which is meant"
    )


def test_one_time_without_an_offset_is_named_alone(tmp_path: Path) -> None:
    body = LOCAL_SCHEDULE.replace("end: 2026-11-28T02:00:00", "end: 2026-11-28T02:00:00Z")
    line, field, message = only_warning(loaded(tmp_path, body))
    assert (line, field) == (9, "schedules[0].start")
    assert message.startswith("start has no UTC offset: read in UTC")
    body = LOCAL_SCHEDULE.replace("start: 2026-11-27T06:00:00", "start: '2026-11-27T06:00Z'")
    line, field, message = only_warning(loaded(tmp_path, body))
    assert (line, field) == (10, "schedules[0].end")
    assert message.startswith("end has no UTC offset: read in UTC")


def test_a_one_off_schedule_without_offsets_is_open_from_start_to_end_read_in_utc(
    tmp_path: Path,
) -> None:
    policy = policy_of(loaded(tmp_path, LOCAL_SCHEDULE))
    opens, closes = datetime(2026, 11, 27, 6, tzinfo=UTC), datetime(2026, 11, 28, 2, tzinfo=UTC)
    tick = timedelta(microseconds=1)
    assert effective_bounds(policy, opens - tick).min == 1
    assert effective_bounds(policy, opens).min == 12
    assert effective_bounds(policy, closes - tick).min == 12
    assert effective_bounds(policy, closes).min == 1


def test_a_one_off_schedule_without_offsets_is_read_in_its_timezone_without_a_warning(
    tmp_path: Path,
) -> None:
    """The timezone is then used, so neither warning fires: the offset-less one nor the
    one for a timezone that a one-off schedule ignores."""
    body = LOCAL_SCHEDULE + "    timezone: Europe/Paris\n"
    load = loaded(tmp_path, body)
    assert (load.problems, load.warnings) == ((), ())
    policy = policy_of(load)
    (schedule,) = policy.schedules
    assert schedule.start == datetime(2026, 11, 27, 5, tzinfo=UTC)  # 06:00 at +01:00
    assert schedule.end == datetime(2026, 11, 28, 1, tzinfo=UTC)
    tick = timedelta(microseconds=1)
    assert effective_bounds(policy, datetime(2026, 11, 27, 5, tzinfo=UTC) - tick).min == 1
    assert effective_bounds(policy, datetime(2026, 11, 27, 5, tzinfo=UTC)).min == 12
    assert effective_bounds(policy, datetime(2026, 11, 28, 1, tzinfo=UTC)).min == 1


def test_a_time_without_an_offset_follows_daylight_saving_in_its_timezone(tmp_path: Path) -> None:
    body = (
        "schedules:\n  - {name: s, min: 3, timezone: Europe/Paris,\n"
        "     start: 2026-07-01T06:00:00, end: 2026-12-01T06:00:00}\n"
    )
    (schedule,) = policy_of(loaded(tmp_path, body)).schedules
    assert schedule.start == datetime(2026, 7, 1, 4, tzinfo=UTC)  # summer time, +02:00
    assert schedule.end == datetime(2026, 12, 1, 5, tzinfo=UTC)  # winter time, +01:00


def test_a_timezone_beside_a_time_with_and_one_without_an_offset_is_used_not_ignored(
    tmp_path: Path,
) -> None:
    body = LOCAL_SCHEDULE.replace("T02:00:00", "T02:00:00+01:00") + "    timezone: Asia/Tokyo\n"
    load = loaded(tmp_path, body)
    assert (load.problems, load.warnings) == ((), ())
    (schedule,) = policy_of(load).schedules
    assert schedule.start == datetime(2026, 11, 26, 21, tzinfo=UTC)  # 06:00 at +09:00
    assert schedule.end == datetime(2026, 11, 28, 1, tzinfo=UTC)


def test_a_timezone_on_a_one_off_schedule_with_offsets_is_still_ignored_with_a_warning(
    tmp_path: Path,
) -> None:
    body = LOCAL_SCHEDULE.replace(":00:00\n", ":00:00+01:00\n") + "    timezone: Asia/Tokyo\n"
    line, field, message = only_warning(loaded(tmp_path, body))
    assert (line, field) == (12, "schedules[0].timezone")
    assert message.startswith("ignored: a one-off schedule's start and end carry their own")
    (schedule,) = policy_of(loaded(tmp_path, body)).schedules
    assert schedule.start == datetime(2026, 11, 27, 5, tzinfo=UTC)


def test_an_end_not_after_its_start_once_read_in_the_timezone_is_still_refused() -> None:
    body = LOCAL_SCHEDULE.replace("end: 2026-11-28T02:00:00", "end: 2026-11-27T05:00:00Z")
    with pytest.raises(PolicyError) as caught:
        load_text(HEAD + body + "    timezone: Europe/Paris\n", "web.yaml")
    assert [(p.line, p.field, p.message) for p in caught.value.problems] == [
        (10, "schedules[0].end", "end must be after start")
    ]


# --- 2. two schedules of one name ---------------------------------------------------------

TWIN_SCHEDULES = """\
schedules:
  - {name: peak, cron: "0 8 * * *", duration: 2h, min: 4}
  - {name: peak, cron: "0 9 * * *", duration: 2h, min: 6}
"""


def test_two_schedules_of_one_name_load_with_one_warning_at_the_second(tmp_path: Path) -> None:
    line, field, message = only_warning(loaded(tmp_path, TWIN_SCHEDULES))
    assert (line, field) == (9, "schedules[1].name")
    assert message == (
        "also the name of schedules[0]: both apply, but decision reasons name a schedule only "
        "by its name, so they cannot say which of the two set a bound; rename one"
    )


def test_two_schedules_of_one_name_both_apply(tmp_path: Path) -> None:
    policy = policy_of(loaded(tmp_path, TWIN_SCHEDULES))
    assert effective_bounds(policy, datetime(2026, 1, 5, 8, 30, tzinfo=UTC)).min == 4
    assert effective_bounds(policy, datetime(2026, 1, 5, 9, 30, tzinfo=UTC)).min == 6
    assert effective_bounds(policy, datetime(2026, 1, 5, 10, 30, tzinfo=UTC)).min == 6
    assert effective_bounds(policy, datetime(2026, 1, 5, 11, 30, tzinfo=UTC)).min == 1


def test_two_checks_of_one_name_are_still_refused() -> None:
    """The spec requires unique check names: a decision lists its checks by name."""
    body = "  - {name: c, strategy: fixed, count: 3}\n"
    with pytest.raises(PolicyError) as caught:
        load_text(HEAD + body, "web.yaml")
    assert [(p.line, p.field) for p in caught.value.problems] == [(7, "checks[1].name")]


# --- 3. a schedule without min or max -----------------------------------------------------

UNBOUNDED_SCHEDULE = """\
schedules:
  - name: office-hours
    cron: "0 8 * * 1-5"
    duration: 10h
"""


def test_a_schedule_without_min_or_max_loads_with_one_warning(tmp_path: Path) -> None:
    line, field, message = only_warning(loaded(tmp_path, UNBOUNDED_SCHEDULE))
    assert (line, field) == (8, "schedules[0]")
    assert message == (
        "neither min nor max: this schedule changes no bound while it is open; give min "
        "and/or max, or remove it"
    )


def test_a_schedule_without_min_or_max_changes_no_bound_while_open(tmp_path: Path) -> None:
    policy = policy_of(loaded(tmp_path, UNBOUNDED_SCHEDULE))
    bounds = effective_bounds(policy, datetime(2026, 1, 5, 9, tzinfo=UTC))  # a Monday, open
    assert (bounds.min, bounds.max, bounds.min_source, bounds.max_source) == (1, 20, "min", "max")


# --- 4. a step limit without count or percent ---------------------------------------------


@pytest.mark.parametrize("direction", ["up", "down"])
def test_a_step_limit_without_count_or_percent_loads_with_one_warning(
    tmp_path: Path, direction: str
) -> None:
    line, field, message = only_warning(loaded(tmp_path, f"limits:\n  {direction}: {{}}\n"))
    assert (line, field) == (8, f"limits.{direction}")
    assert message == (
        f"neither count nor percent: no limit on a scale-{direction} step (as without the "
        "key); give count and/or percent, e.g. {count: 2, percent: 20}, or remove it"
    )


def test_a_step_limit_without_count_or_percent_limits_nothing(tmp_path: Path) -> None:
    limits = policy_of(loaded(tmp_path, "limits:\n  up: {}\n  down: {}\n")).limits
    assert limit(limits, 20, 2) == (20, [])
    assert limit(limits, 1, 20) == (1, [])


# --- 5. a threshold step that changes nothing ---------------------------------------------

ZERO_STEPS = """\
  - name: queue
    query: sum(queue_depth)
    strategy: threshold
    steps:
      - {above: 100, change: "+2"}
      - {above: 40, change: "%s"}
      - {above: 0, change: "+1"}
"""


@pytest.mark.parametrize("change", ["+0", "-0", "+0%", "-0.0", "+0.00%"])
def test_a_step_that_changes_nothing_loads_with_one_warning(tmp_path: Path, change: str) -> None:
    line, field, message = only_warning(loaded(tmp_path, ZERO_STEPS % change))
    assert (line, field) == (12, "checks[1].steps[1].change")
    assert message == (
        f"{change} changes nothing: while this step matches, the check asks for the current "
        "count (and the steps after it do not apply, the first matching one wins); use e.g. "
        '"+2" or "-10%" to move the count'
    )


def test_a_step_that_changes_nothing_keeps_the_count_and_shadows_later_steps(
    tmp_path: Path,
) -> None:
    check = policy_of(loaded(tmp_path, ZERO_STEPS % "+0")).checks[1]
    assert desired(check, 150, 5).count == 7
    assert desired(check, 50, 5).count == 5  # +0 matched first: the +1 below does not apply
    assert desired(check, 10, 5).count == 6


def test_a_step_covered_by_an_earlier_step_that_changes_nothing_can_never_match() -> None:
    text = HEAD + ZERO_STEPS.replace("above: 0,", "above: 50,") % "+0"
    with pytest.raises(PolicyError) as caught:
        load_text(text, "web.yaml")
    ((line, field, message),) = [(p.line, p.field, p.message) for p in caught.value.problems]
    assert (line, field) == (13, "checks[1].steps[2]")
    assert message.startswith("this step can never match: every value it matches is matched")


# --- 6. a one-off schedule that ended (with `now`: what `validate` gives) ------------------

ENDED = """\
schedules:
  - name: black-friday
    start: 2026-11-27T06:00:00+01:00
    end: 2026-11-28T02:00:00+01:00
    min: 12
"""
END = datetime(2026, 11, 28, 1, tzinfo=UTC)  # 02:00 at +01:00


def loaded_at(tmp_path: Path, body: str, now: datetime) -> FileLoad:
    path = tmp_path / "web.yaml"
    path.write_text(HEAD + body)
    return load_file(path, now=now)


def test_a_one_off_schedule_that_ended_loads_with_one_warning_naming_its_end(
    tmp_path: Path,
) -> None:
    # Before, an old window was accepted without a word: it never opens again.
    line, field, message = only_warning(loaded_at(tmp_path, ENDED, END + timedelta(days=6)))
    assert (line, field) == (10, "schedules[0].end")
    assert message == (
        "2026-11-28T01:00:00+00:00 is past (it is 2026-12-04T01:00:00+00:00): this one-off "
        "window is over and never opens again, so the schedule changes nothing; remove it, "
        "or give it the dates meant"
    )


def test_a_one_off_schedule_ends_at_its_end_not_before(tmp_path: Path) -> None:
    """The window is [start, end): it is over at `end` itself, open a moment before."""
    tick = timedelta(microseconds=1)
    assert loaded_at(tmp_path, ENDED, END - tick).warnings == ()
    assert only_warning(loaded_at(tmp_path, ENDED, END))[1] == "schedules[0].end"


def test_an_end_without_an_offset_is_past_as_read_in_its_timezone(tmp_path: Path) -> None:
    body = LOCAL_SCHEDULE + "    timezone: Europe/Paris\n"  # ends 2026-11-28 01:00 UTC
    assert loaded_at(tmp_path, body, END - timedelta(seconds=1)).warnings == ()
    line, field, message = only_warning(loaded_at(tmp_path, body, END))
    assert (line, field) == (10, "schedules[0].end")
    assert message.startswith("2026-11-28T01:00:00+00:00 is past (it is 2026-11-28T01:00:00+00:00)")


def test_without_now_or_for_a_recurring_schedule_nothing_is_past(tmp_path: Path) -> None:
    # `plan`, `run` and the others load without `now`: the warning is `validate`'s.
    (tmp_path / "web.yaml").write_text(HEAD + ENDED)
    assert load_file(tmp_path / "web.yaml").warnings == ()
    recurring = "schedules:\n  - {name: n, cron: '0 8 * * *', duration: 1h, min: 2}\n"
    assert loaded_at(tmp_path, recurring, datetime(2099, 1, 1, tzinfo=UTC)).warnings == ()
