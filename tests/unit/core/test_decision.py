"""The decision pipeline, one behaviour per test, grouped by the spec's steps."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from autoscaler.core.decision import decide, unavailable
from autoscaler.core.model import (
    Action,
    AsgTarget,
    Change,
    Check,
    CheckResult,
    Cooldown,
    Fallback,
    Limits,
    Memory,
    MissingData,
    Observation,
    Policy,
    Recommendation,
    Schedule,
    Stabilization,
    Step,
    StepLimit,
    Strategy,
    TargetStatus,
)
from autoscaler.core.run import Outcome

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ZERO = timedelta(0)

LATENCY = Check(
    name="p95-latency",
    strategy=Strategy.TARGET_VALUE,
    query="latency_query",
    target=0.25,
    tolerance=0.1,
)
ERRORS = Check(
    name="error-ratio",
    strategy=Strategy.THRESHOLD,
    query="errors_query",
    steps=(Step(change=Change(amount=2), above=0.05), Step(change=Change(amount=-1), below=0.01)),
)
FLOOR = Check(name="sales-floor", strategy=Strategy.FIXED, count=6)


def make_policy(*checks: Check, **overrides: Any) -> Policy:
    """A policy with neutral stabilization and cooldown, so each test enables only its step."""
    fields: dict[str, Any] = {
        "name": "checkout-web",
        "target": AsgTarget(asg="checkout-web", region="eu-west-3"),
        "min": 1,
        "max": 40,
        "checks": checks or (LATENCY,),
        "cooldown": Cooldown(up=ZERO, down=ZERO),
        "stabilization": Stabilization(up=ZERO, down=ZERO),
    }
    fields.update(overrides)
    return Policy(**fields)


def ok(check: Check, value: float) -> Observation:
    return Observation(check=check.name, value=value)


def failed(check: Check, error: str = "timeout") -> Observation:
    return Observation(check=check.name, error=error)


def run(
    policy: Policy,
    *observations: Observation,
    current: int = 5,
    memory: Memory | None = None,
    now: datetime = NOW,
    dry_run: bool = False,
    **status: Any,
) -> Outcome:
    return decide(
        policy,
        status=TargetStatus(count=current, **status),
        observations=observations,
        memory=memory or Memory(),
        now=now,
        dry_run=dry_run,
    )


def ago(**kwargs: float) -> datetime:
    return NOW - timedelta(**kwargs)


# --- step 1: target not ready ----------------------------------------------------------------


def test_not_ready_holds_and_keeps_memory() -> None:
    memory = Memory(
        recommendations=(Recommendation(at=ago(minutes=1), count=3),), missing_data_streak=2
    )
    outcome = run(
        make_policy(),
        failed(LATENCY),
        memory=memory,
        ready=False,
        not_ready_reason="instance refresh in progress",
    )
    assert outcome.memory == memory
    assert outcome.decision.action is Action.HOLD
    assert (outcome.decision.current, outcome.decision.desired) == (5, 5)
    assert outcome.decision.reasons == ("instance refresh in progress",)


def test_not_ready_without_reason_still_says_why() -> None:
    outcome = run(make_policy(), ok(LATENCY, 1.0), ready=False)
    assert outcome.decision.reasons == ("target not ready",)
    assert outcome.decision.action is Action.HOLD


# --- step 2: checks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("observations", "error"),
    [
        pytest.param([failed(LATENCY, "no series")], "no series", id="query-error"),
        pytest.param([Observation(check=LATENCY.name)], "no value", id="no-value"),
        pytest.param([ok(LATENCY, math.nan)], "value nan is not a finite number", id="nan"),
        pytest.param([ok(LATENCY, math.inf)], "value inf is not a finite number", id="inf"),
        pytest.param([ok(LATENCY, -math.inf)], "value -inf is not", id="minus-inf"),
        pytest.param([], "not evaluated", id="missing-observation"),
        pytest.param([ok(ERRORS, 0.5)], "not evaluated", id="other-checks-observation"),
    ],
)
def test_unusable_observation_fails_the_check(observations: list[Observation], error: str) -> None:
    outcome = run(make_policy(), *observations)
    (result,) = outcome.decision.checks
    assert result.desired is None
    assert result.value is None
    assert result.error is not None
    assert result.error.startswith(error)


def test_check_results_follow_policy_order() -> None:
    policy = make_policy(ERRORS, FLOOR, LATENCY)
    outcome = run(policy, ok(LATENCY, 0.41), failed(ERRORS, "no series"))
    assert outcome.decision.checks == (
        CheckResult(
            name="error-ratio", query="errors_query", value=None, desired=None, error="no series"
        ),
        CheckResult(name="sales-floor", query=None, value=None, desired=6, error=None),
        CheckResult(name="p95-latency", query="latency_query", value=0.41, desired=9, error=None),
    )


def test_misconfigured_check_fails_instead_of_crashing() -> None:
    broken = replace(LATENCY, target=0.0)
    outcome = run(make_policy(broken, FLOOR), ok(broken, 1.0))
    assert outcome.decision.checks[0].error is not None
    assert "needs a target > 0" in outcome.decision.checks[0].error
    assert outcome.decision.desired == 6


# --- step 3: combine ---------------------------------------------------------------------------


def test_highest_check_wins_and_every_check_reason_comes_first() -> None:
    outcome = run(make_policy(LATENCY, FLOOR, ERRORS), ok(LATENCY, 0.41), ok(ERRORS, 0.03))
    assert outcome.decision.desired == 9
    assert outcome.decision.action is Action.UP
    assert outcome.decision.reasons == (
        "p95-latency: 0.41 / 0.25 → 9",
        "sales-floor: fixed → 6",
        "error-ratio: 0.03 no step matched → 5",
    )


def test_failed_check_blocks_scale_down() -> None:
    outcome = run(make_policy(LATENCY, ERRORS), ok(LATENCY, 0.1), failed(ERRORS, "no series"))
    assert outcome.decision.desired == 5
    assert outcome.decision.action is Action.NONE
    assert outcome.decision.reasons[-1] == (
        "check error-ratio failed (no series): scale-down blocked, 5 instead of 2"
    )


def test_failed_check_still_allows_scale_up() -> None:
    outcome = run(make_policy(LATENCY, ERRORS), ok(LATENCY, 0.41), failed(ERRORS))
    assert outcome.decision.desired == 9
    assert outcome.decision.action is Action.UP
    assert "check error-ratio failed (timeout): scale-down blocked" in outcome.decision.reasons


def test_checks_sharing_a_name_fail_rather_than_read_each_others_value() -> None:
    # Values are matched with checks by name: a policy built with two checks of one name
    # (the loader refuses it) must not read the first one's low value for both.
    twin = replace(LATENCY, target=0.5, query="other_query")
    outcome = run(make_policy(LATENCY, twin, FLOOR), ok(LATENCY, 0.05), ok(twin, 0.05), current=8)
    assert outcome.decision.action is Action.NONE
    assert outcome.decision.desired == 8  # not 6 (the floor), let alone 2 (the low value)
    errors = [c.error for c in outcome.decision.checks]
    assert errors[:2] == ["2 checks are named 'p95-latency': their values cannot be told apart"] * 2
    assert errors[2] is None


def test_checks_sharing_a_name_alone_hold() -> None:
    twin = replace(LATENCY, target=0.5, query="other_query")
    outcome = run(make_policy(LATENCY, twin), ok(LATENCY, 0.01), current=8)
    assert (outcome.decision.action, outcome.decision.desired) == (Action.HOLD, 8)


def test_two_different_values_for_one_check_fail_it_rather_than_pick_one() -> None:
    # `decide` matches values with checks by name: two answers for one check (a caller's
    # bug, a merge of two sources) were read as the first, and 0.05 scaled 8 in to 2.
    outcome = run(make_policy(LATENCY), ok(LATENCY, 0.05), ok(LATENCY, 0.41), current=8)
    assert (outcome.decision.action, outcome.decision.desired) == (Action.HOLD, 8)
    assert outcome.decision.checks[0].error == (
        "2 different answers for check 'p95-latency': which one is its value cannot be told"
    )


def test_one_value_given_twice_for_a_check_is_its_value() -> None:
    outcome = run(make_policy(LATENCY), ok(LATENCY, 0.05), ok(LATENCY, 0.05), current=8)
    assert outcome.decision.checks[0].error is None
    assert outcome.decision.desired == 2


def test_several_failed_checks_are_named_in_one_reason() -> None:
    outcome = run(make_policy(LATENCY, ERRORS, FLOOR), failed(LATENCY, "a"), failed(ERRORS, "b"))
    assert outcome.decision.reasons[-1] == (
        "checks p95-latency (a), error-ratio (b) failed: scale-down blocked"
    )
    assert outcome.decision.desired == 6


def test_all_checks_failed_holds_and_counts_the_streak() -> None:
    memory = Memory(
        recommendations=(Recommendation(at=ago(seconds=10), count=4),), missing_data_streak=1
    )
    outcome = run(make_policy(LATENCY, ERRORS), failed(LATENCY), memory=memory)
    assert outcome.decision.action is Action.HOLD
    assert outcome.decision.desired == 5
    assert outcome.decision.reasons == (
        "checks p95-latency (timeout), error-ratio (not evaluated) failed",
        "no usable data from any check (2 in a row): holding",
    )
    assert outcome.memory == replace(
        memory,
        missing_data_streak=2,
        missing_data_since=NOW - policy_interval(),
        recommendations=(Recommendation(at=NOW, count=5),),  # the count held is recorded
    )


def policy_interval() -> timedelta:
    return make_policy().interval


def test_a_successful_check_resets_the_streak() -> None:
    outcome = run(make_policy(), ok(LATENCY, 0.25), memory=Memory(missing_data_streak=7))
    assert outcome.memory.missing_data_streak == 0


def test_fixed_only_policy_never_lacks_data() -> None:
    outcome = run(make_policy(FLOOR), memory=Memory(missing_data_streak=3))
    assert outcome.decision.desired == 6
    assert outcome.memory.missing_data_streak == 0


FALLBACK = {"on_missing_data": MissingData.FALLBACK, "fallback": Fallback(after=3, count=10)}


@pytest.mark.parametrize(
    ("streak", "current", "desired", "action", "reason"),
    [
        pytest.param(
            0,
            4,
            4,
            Action.HOLD,
            "no usable data from any check (1 in a row): holding, fallback after 3",
            id="before-after",
        ),
        pytest.param(
            2,
            4,
            10,
            Action.UP,
            "no usable data for 3 evaluations: fallback to at least 10",
            id="at-after",
        ),
        pytest.param(
            5, 4, 10, Action.UP, "no usable data for 6 evaluations", id="stays-in-fallback"
        ),
        pytest.param(2, 12, 12, Action.NONE, "fallback to at least 10", id="never-scales-down"),
    ],
)
def test_fallback_after_enough_evaluations_without_data(
    streak: int, current: int, desired: int, action: Action, reason: str
) -> None:
    outcome = run(
        make_policy(**FALLBACK),
        failed(LATENCY),
        current=current,
        memory=Memory(missing_data_streak=streak),
    )
    assert (outcome.decision.desired, outcome.decision.action) == (desired, action)
    assert reason in outcome.decision.reasons[-1]
    assert outcome.memory.missing_data_streak == streak + 1


def test_a_fallback_after_one_evaluation_says_one_evaluation() -> None:
    # It said "no usable data for 1 evaluations".
    policy = make_policy(on_missing_data=MissingData.FALLBACK, fallback=Fallback(after=1, count=10))
    outcome = run(policy, failed(LATENCY), current=4, memory=Memory())
    assert outcome.decision.reasons[-1].startswith(
        "no usable data for 1 evaluation: fallback to at least 10"
    )


ALERTED = {"on_missing_data": MissingData.FALLBACK, "fallback": Fallback(after=8, count=10)}


def evaluate_without_data(policy: Policy, times: list[datetime], memory: Memory) -> Outcome:
    """Every evaluation at `times` finds no data; the last outcome."""
    outcome = None
    for at in times:
        outcome = run(policy, failed(LATENCY), current=4, memory=memory, now=at)
        memory = outcome.memory
    assert outcome is not None
    return outcome


def test_a_burst_of_triggered_evaluations_advances_the_streak_once_per_interval() -> None:
    # 200 alert posts without a token: 200 evaluations within 20 s used to reach 8 at once.
    policy = make_policy(interval=timedelta(seconds=30), **ALERTED)
    burst = [NOW + timedelta(seconds=i / 10) for i in range(200)]
    outcome = evaluate_without_data(policy, burst, Memory())
    assert outcome.memory.missing_data_streak == 1
    assert outcome.decision.action is Action.HOLD
    assert outcome.decision.reasons[-1] == (
        "no usable data from any check (1 in a row, counted at most once per interval of "
        "30s): holding, fallback after 8"
    )


def test_the_fallback_waits_for_its_intervals_however_many_triggers_come_between() -> None:
    policy = make_policy(interval=timedelta(seconds=30), **ALERTED)
    # Scheduled every 30 s, with 10 triggered evaluations between two scheduled ones.
    times = [NOW + timedelta(seconds=30 * i + j) for i in range(8) for j in range(11)]
    held = evaluate_without_data(
        policy, [t for t in times if t < NOW + timedelta(seconds=210)], Memory()
    )
    assert (held.decision.action, held.memory.missing_data_streak) == (Action.HOLD, 7)
    fell_back = evaluate_without_data(policy, [NOW + timedelta(seconds=210)], held.memory)
    assert (fell_back.decision.action, fell_back.decision.desired) == (Action.UP, 10)
    assert fell_back.memory.missing_data_streak == 8


def test_jitter_delays_the_fallback_by_one_evaluation_at_most() -> None:
    # The scheduler spreads runs by ±10 %: a run 27 s after the first of the streak cannot
    # count a second interval; the streak then follows the elapsed intervals.
    policy = make_policy(interval=timedelta(seconds=30), **ALERTED)
    gaps = [27, 33, 27, 33, 30, 27, 33, 27]
    times = [NOW + timedelta(seconds=sum(gaps[:i])) for i in range(len(gaps) + 1)]
    eighth = evaluate_without_data(policy, times[:8], Memory())
    assert (eighth.decision.action, eighth.memory.missing_data_streak) == (Action.HOLD, 7)
    ninth = evaluate_without_data(policy, times[8:], eighth.memory)
    assert (ninth.decision.action, ninth.memory.missing_data_streak) == (Action.UP, 8)


def test_a_streak_from_an_older_state_file_keeps_counting() -> None:
    # Saved before the streak had a start time: it is taken as one evaluation per interval.
    policy = make_policy(interval=timedelta(seconds=30), **ALERTED)
    outcome = run(policy, failed(LATENCY), current=4, memory=Memory(missing_data_streak=7))
    assert (outcome.decision.action, outcome.memory.missing_data_streak) == (Action.UP, 8)
    assert outcome.memory.missing_data_since == NOW - timedelta(seconds=210)


def test_data_coming_back_clears_the_streak_and_its_start() -> None:
    memory = Memory(missing_data_streak=3, missing_data_since=ago(minutes=2))
    outcome = run(make_policy(), ok(LATENCY, 0.25), memory=memory)
    assert (outcome.memory.missing_data_streak, outcome.memory.missing_data_since) == (0, None)


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param(make_policy(LATENCY, ERRORS, max=10), id="one-check-failed"),
        pytest.param(make_policy(LATENCY, max=10, **FALLBACK), id="fallback"),
    ],
)
def test_lowered_bounds_never_scale_in_while_a_check_fails(policy: Policy) -> None:
    # 30 instances (a schedule just ended, or someone scaled by hand) above max 10, with
    # Prometheus partly or wholly unreachable: removing 20 instances blind is not safe.
    observations = [failed(LATENCY)] + ([ok(ERRORS, 0.0)] if len(policy.checks) > 1 else [])
    outcome = run(policy, *observations, current=30, memory=Memory(missing_data_streak=5))
    assert outcome.decision.desired == 30
    assert outcome.decision.action is not Action.DOWN
    assert "staying at 30 until every check has data" in outcome.decision.reasons[-1]


def test_lowered_bounds_scale_in_once_every_check_has_data() -> None:
    outcome = run(make_policy(LATENCY, max=10), ok(LATENCY, 0.25), current=30)
    assert (outcome.decision.desired, outcome.decision.action) == (10, Action.DOWN)


def test_hold_policy_ignores_a_configured_fallback() -> None:
    policy = make_policy(on_missing_data=MissingData.HOLD, fallback=Fallback(after=1, count=10))
    outcome = run(policy, failed(LATENCY), memory=Memory(missing_data_streak=9))
    assert outcome.decision.action is Action.HOLD
    assert outcome.decision.reasons[-1] == "no usable data from any check (10 in a row): holding"


def test_fallback_skips_limits_and_stabilization_but_not_bounds() -> None:
    policy = make_policy(
        max=8,
        limits=Limits(up=StepLimit(count=1)),
        stabilization=Stabilization(up=timedelta(minutes=5)),
        **FALLBACK,
    )
    history = (Recommendation(at=ago(minutes=1), count=2),)
    outcome = run(
        policy,
        failed(LATENCY),
        current=4,
        memory=Memory(recommendations=history, missing_data_streak=2),
    )
    assert outcome.decision.desired == 8
    assert outcome.decision.reasons[-1] == "max 8: 10 → 8"
    # Not stabilized, but recorded: the down window holds the fallback's count once data
    # comes back.
    assert outcome.memory.recommendations == (*history, Recommendation(at=NOW, count=8))


def test_fallback_respects_cooldown() -> None:
    policy = make_policy(cooldown=Cooldown(up=timedelta(minutes=1)), **FALLBACK)
    memory = Memory(missing_data_streak=2, last_scaled_at=ago(seconds=20))
    outcome = run(policy, failed(LATENCY), current=4, memory=memory)
    assert (outcome.decision.desired, outcome.decision.action) == (10, Action.HOLD)
    assert outcome.decision.reasons[-1] == "cooldown up: 40 s left → hold"


def test_a_fixed_floor_does_not_hide_an_outage_from_the_fallback() -> None:
    # The spec's own example: a `fixed` check next to query checks and a fallback. Only
    # the query checks measure anything; with all of them failing, the evaluation has no
    # usable data, and the fallback takes over after `after` of them (the floor did not
    # count as data, so the fallback never came).
    policy = make_policy(LATENCY, ERRORS, FLOOR, **FALLBACK)
    memory, decisions = Memory(), []
    for i in range(4):
        outcome = run(
            policy,
            failed(LATENCY),
            failed(ERRORS),
            current=3,
            memory=memory,
            now=NOW + policy.interval * i,
        )
        memory = outcome.memory
        decisions.append((outcome.decision.desired, outcome.memory.missing_data_streak))
    assert decisions == [(6, 1), (6, 2), (10, 3), (10, 4)]
    assert outcome.decision.reasons[-1] == (
        "no usable data from any query check for 4 evaluations: fallback to at least 10"
    )


def test_a_fallback_next_to_a_fixed_floor_respects_the_up_cooldown() -> None:
    # The floor (6) is above what was recommended since the last scale-up (none), so it
    # "keeps rising" and may pass the up cooldown; the fallback's 10 went through with it.
    policy = make_policy(LATENCY, FLOOR, cooldown=Cooldown(up=timedelta(minutes=1)), **FALLBACK)
    memory = Memory(
        missing_data_streak=2,
        missing_data_since=ago(minutes=3),
        last_scaled_at=ago(seconds=20),
        recommendations=(Recommendation(at=ago(seconds=20), count=4),),
    )
    outcome = run(policy, failed(LATENCY), current=4, memory=memory)
    assert (outcome.decision.desired, outcome.decision.action) == (10, Action.HOLD)
    assert outcome.decision.reasons[-1] == "cooldown up: 40 s left → hold"


def test_a_fixed_floor_with_one_query_answering_is_not_an_outage() -> None:
    policy = make_policy(LATENCY, ERRORS, FLOOR, **FALLBACK)
    memory = Memory(missing_data_streak=5, missing_data_since=ago(minutes=2))
    outcome = run(policy, failed(LATENCY), ok(ERRORS, 0.02), current=3, memory=memory)
    assert (outcome.decision.desired, outcome.memory.missing_data_streak) == (6, 0)


# --- step 4: stabilization -------------------------------------------------------------------


FIVE_MIN_DOWN = Stabilization(down=timedelta(minutes=5))


def history(*pairs: tuple[timedelta, int]) -> Memory:
    return Memory(recommendations=tuple(Recommendation(at=NOW - a, count=c) for a, c in pairs))


def test_scale_down_goes_only_to_the_highest_recent_recommendation() -> None:
    memory = history((timedelta(minutes=4), 6), (timedelta(minutes=1), 8))
    outcome = run(
        make_policy(stabilization=FIVE_MIN_DOWN), ok(LATENCY, 0.05), current=10, memory=memory
    )
    assert (outcome.decision.desired, outcome.decision.action) == (8, Action.DOWN)
    assert outcome.decision.reasons[-1] == (
        "stabilization down 5m: highest recommendation 8 → 8 instead of 2"
    )


@pytest.mark.parametrize("zone", [UTC, ZoneInfo("Europe/Paris")], ids=["utc", "zone"])
@pytest.mark.parametrize("up", [ZERO, timedelta(minutes=5)], ids=["no-up-window", "up-window-5m"])
def test_a_recommendation_from_a_clock_that_went_back_holds_no_scale_up(
    zone: tzinfo, up: timedelta
) -> None:
    # Recorded an hour "later" before NTP stepped the clock back: it held every scale-up
    # for that hour, even with no up window (the HPA's window holds only this one then).
    now = NOW.astimezone(zone)
    memory = Memory(recommendations=(Recommendation(at=now + timedelta(hours=1), count=3),))
    stabilization = Stabilization(up=up, down=ZERO)
    outcome = run(
        make_policy(stabilization=stabilization),
        ok(LATENCY, 1.0),
        current=3,
        memory=memory,
        now=now,
    )
    assert (outcome.decision.desired, outcome.decision.action) == (12, Action.UP)


def test_stabilization_may_keep_the_current_count() -> None:
    memory = history((timedelta(minutes=1), 12))
    outcome = run(
        make_policy(stabilization=FIVE_MIN_DOWN), ok(LATENCY, 0.05), current=10, memory=memory
    )
    assert (outcome.decision.desired, outcome.decision.action) == (10, Action.NONE)
    assert outcome.decision.reasons[-1] == (
        "stabilization down 5m: highest recommendation 12 → 10 instead of 2"
    )


@pytest.mark.parametrize(
    ("age", "counts"),
    [
        pytest.param(timedelta(minutes=5), False, id="at-window-start-excluded"),
        pytest.param(timedelta(minutes=6), False, id="older-excluded"),
        pytest.param(timedelta(minutes=4, seconds=59), True, id="inside-included"),
    ],
)
def test_down_window_edges(age: timedelta, counts: bool) -> None:
    # (the record a minute old keeps the window from being empty, which would count the
    # current 10 as a recommendation: `test_a_first_evaluation_holds_a_scale_in_one_window`)
    memory = history((age, 9), (timedelta(minutes=1), 2))
    outcome = run(
        make_policy(stabilization=FIVE_MIN_DOWN), ok(LATENCY, 0.05), current=10, memory=memory
    )
    assert outcome.decision.desired == (9 if counts else 2)
    kept = [r.count for r in outcome.memory.recommendations]
    assert kept == ([9, 2] if counts else [2])


SEEDED = (
    "stabilization down 5m: a first evaluation (no earlier recommendation), so the current "
    "10 counts as one made now → 10 instead of 2"
)


def test_a_first_evaluation_holds_a_scale_in_one_window() -> None:
    # As the Kubernetes HPA's `recordInitialRecommendation`: a new policy (or one whose
    # memory was lost) never scales in before a whole window of evidence.
    policy = make_policy(stabilization=FIVE_MIN_DOWN)
    first = run(policy, ok(LATENCY, 0.05), current=10, memory=Memory())
    assert (first.decision.desired, first.decision.action) == (10, Action.NONE)
    assert first.decision.reasons[-1] == SEEDED
    assert [(r.at, r.count) for r in first.memory.recommendations] == [(NOW, 10), (NOW, 2)]
    # The current count it recorded holds the window...
    held = run(
        policy,
        ok(LATENCY, 0.05),
        current=10,
        memory=first.memory,
        now=NOW + FIVE_MIN_DOWN.down - timedelta(seconds=1),
    )
    assert held.decision.desired == 10
    assert held.decision.reasons[-1] == (
        "stabilization down 5m: highest recommendation 10 → 10 instead of 2"
    )
    # ... then lets the scale-in go, even with no evaluation in between (an interval as
    # long as the window): a history past the window is not a first evaluation.
    after = run(
        policy, ok(LATENCY, 0.05), current=10, memory=first.memory, now=NOW + FIVE_MIN_DOWN.down
    )
    assert (after.decision.desired, after.decision.action) == (2, Action.DOWN)


def test_a_first_evaluation_scales_up_at_once() -> None:
    outcome = run(make_policy(stabilization=FIVE_MIN_DOWN), ok(LATENCY, 1.0), current=3)
    assert (outcome.decision.desired, outcome.decision.action) == (12, Action.UP)
    assert [r.count for r in outcome.memory.recommendations] == [12]  # nothing seeded


def test_without_a_down_window_a_first_evaluation_scales_in_at_once() -> None:
    outcome = run(make_policy(), ok(LATENCY, 0.05), current=10)
    assert (outcome.decision.desired, outcome.decision.action) == (2, Action.DOWN)


def test_scale_up_goes_only_to_the_lowest_recent_recommendation() -> None:
    policy = make_policy(stabilization=Stabilization(up=timedelta(minutes=3), down=ZERO))
    memory = history((timedelta(minutes=2), 4))
    outcome = run(policy, ok(LATENCY, 1.0), current=2, memory=memory)
    assert outcome.decision.desired == 4
    assert outcome.decision.reasons[-1] == (
        "stabilization up 3m: lowest recommendation 4 → 4 instead of 8"
    )


def test_recommendation_is_recorded_before_limits_and_bounds() -> None:
    policy = make_policy(max=6, limits=Limits(up=StepLimit(count=1)))
    outcome = run(policy, ok(LATENCY, 0.5), current=5)
    assert outcome.decision.desired == 6
    assert outcome.memory.recommendations == (Recommendation(at=NOW, count=10),)


def test_zero_windows_keep_only_the_latest_recommendation() -> None:
    memory = history((timedelta(seconds=1), 30))
    outcome = run(make_policy(), ok(LATENCY, 0.25), current=5, memory=memory)
    assert outcome.memory.recommendations == (Recommendation(at=NOW, count=5),)


def test_an_up_window_added_by_a_reload_sees_the_lows_recorded_before_it() -> None:
    """The memory written under a policy without an up window is read by the policy as
    reloaded (or as restarted) with one: the lowest recommendation of the new window must
    be the one the whole history gives, not a later, higher one."""
    before = make_policy(
        stabilization=FIVE_MIN_DOWN, cooldown=Cooldown(up=timedelta(minutes=5), down=ZERO)
    )
    memory = Memory(last_scaled_at=ago(minutes=3))  # a scale-up whose cooldown still runs
    for at, value in ((ago(minutes=2), 0.25), (ago(minutes=1), 0.5)):  # asks 2, then 4
        outcome = run(before, ok(LATENCY, value), current=2, memory=memory, now=at)
        assert outcome.decision.action in (Action.NONE, Action.HOLD)  # the cooldown holds
        memory = outcome.memory
    after = replace(before, stabilization=Stabilization(up=timedelta(minutes=5), down=ZERO))
    outcome = run(after, ok(LATENCY, 1.0), current=2, memory=memory, now=ago(seconds=-150))
    assert (outcome.decision.desired, outcome.decision.action) == (2, Action.NONE)
    assert outcome.decision.reasons[-1] == (
        "stabilization up 5m: lowest recommendation 2 → 2 instead of 8"
    )


# --- step 5: limits and bounds --------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "current", "value", "desired", "reason"),
    [
        pytest.param(
            Limits(up=StepLimit(count=4)), 5, 0.6, 9, "limit up +4: 12 capped to 9", id="up-count"
        ),
        pytest.param(Limits(up=StepLimit(count=4)), 5, 0.4, 8, None, id="up-within-count"),
        pytest.param(
            Limits(up=StepLimit(count=2, percent=100)),
            5,
            0.75,
            10,
            "limit up +5: 15 capped to 10",
            id="up-percent-larger",
        ),
        pytest.param(
            Limits(up=StepLimit(percent=10)),
            5,
            0.5,
            6,
            "limit up +1: 10 capped to 6",
            id="percent-rounds-up",
        ),
        pytest.param(
            Limits(up=StepLimit(percent=100)),
            0,
            1.0,
            1,
            "limit up +1: 4 capped to 1",
            id="at-least-one-from-zero",
        ),
        pytest.param(
            Limits(down=StepLimit(count=2, percent=20)),
            20,
            0.05,
            16,
            "limit down -4: 4 capped to 16",
            id="down-percent",
        ),
        pytest.param(
            Limits(down=StepLimit(count=2)), 5, 0.05, 3, "limit down -2: 1 capped to 3", id="down"
        ),
        pytest.param(Limits(down=StepLimit(count=2)), 5, 0.6, 12, None, id="other-direction"),
    ],
)
def test_step_limits(
    limits: Limits, current: int, value: float, desired: int, reason: str | None
) -> None:
    outcome = run(make_policy(min=0, limits=limits), ok(LATENCY, value), current=current)
    assert outcome.decision.desired == desired
    if reason is None:
        assert not any(r.startswith("limit") for r in outcome.decision.reasons)
    else:
        assert outcome.decision.reasons[-1] == reason


def test_bounds_win_over_limits() -> None:
    policy = make_policy(min=10, limits=Limits(up=StepLimit(count=1)))
    outcome = run(policy, ok(LATENCY, 0.25), current=2)
    assert outcome.decision.desired == 10
    assert outcome.decision.reasons[-1] == "min 10: 2 → 10"


@pytest.mark.parametrize(
    ("value", "desired", "reason"),
    [
        pytest.param(0.05, 2, "min 2: 1 → 2", id="min"),
        pytest.param(2.5, 12, "max 12: 50 → 12", id="max"),
    ],
)
def test_policy_bounds(value: float, desired: int, reason: str) -> None:
    outcome = run(make_policy(min=2, max=12), ok(LATENCY, value), current=5)
    assert outcome.decision.desired == desired
    assert outcome.decision.reasons[-1] == reason


def window(name: str, *, min: int | None = None, max: int | None = None) -> Schedule:
    """A one-off schedule open from an hour before NOW to an hour after."""
    return Schedule(name=name, start=ago(hours=1), end=NOW + timedelta(hours=1), min=min, max=max)


CLOSED = Schedule(name="closed", start=ago(hours=3), end=ago(hours=2), min=30)


@pytest.mark.parametrize(
    ("schedules", "value", "desired", "reasons"),
    [
        pytest.param(
            (window("black-friday", min=12),),
            0.25,
            12,
            ["schedule black-friday min 12: 5 → 12"],
            id="schedule-min",
        ),
        pytest.param((CLOSED,), 0.25, 5, [], id="closed-schedule-ignored"),
        pytest.param((window("quiet", min=1),), 0.05, 1, [], id="schedule-min-replaces-policy-min"),
        pytest.param(
            (window("cap", max=6),), 0.5, 6, ["schedule cap max 6: 10 → 6"], id="schedule-max"
        ),
        pytest.param(
            (window("a", min=8, max=9), window("b", min=12), window("c", max=20)),
            2.5,
            20,
            ["schedule c max 20: 50 → 20"],
            id="highest-max-of-several",
        ),
        pytest.param(
            (window("a", min=8, max=9), window("b", min=12), window("c", max=20)),
            0.05,
            12,
            ["schedule b min 12: 1 → 12"],
            id="highest-min-of-several",
        ),
        pytest.param(
            (window("event", min=50),),
            0.25,
            50,
            [
                "schedule event min 50 is above max 40: max raised to 50",
                "schedule event min 50: 5 → 50",
            ],
            id="min-above-max-raises-max",
        ),
    ],
)
def test_schedules_replace_bounds(
    schedules: tuple[Schedule, ...], value: float, desired: int, reasons: list[str]
) -> None:
    outcome = run(make_policy(min=3, schedules=schedules), ok(LATENCY, value), current=5)
    assert outcome.decision.desired == desired
    assert list(outcome.decision.reasons[1:]) == reasons


@pytest.mark.parametrize(
    ("value", "status", "desired", "reason"),
    [
        pytest.param(0.6, {"max_size": 10}, 10, "target max size 10: 12 → 10", id="target-max"),
        pytest.param(0.05, {"min_size": 3}, 3, "target min size 3: 1 → 3", id="target-min"),
        pytest.param(
            0.25, {"max_size": 4}, 4, "target max size 4: 5 → 4", id="target-max-below-current"
        ),
    ],
)
def test_target_bounds_win_over_everything(
    value: float, status: dict[str, Any], desired: int, reason: str
) -> None:
    outcome = run(make_policy(min=1, max=40), ok(LATENCY, value), current=5, **status)
    assert outcome.decision.desired == desired
    assert outcome.decision.reasons[-1] == reason


def test_target_max_wins_over_policy_min() -> None:
    outcome = run(make_policy(min=8), ok(LATENCY, 0.25), current=5, max_size=6)
    assert outcome.decision.desired == 6
    assert outcome.decision.reasons[-2:] == ("min 8: 5 → 8", "target max size 6: 8 → 6")


# --- step 6: cooldown ---------------------------------------------------------------------------


COOLDOWN = Cooldown(up=timedelta(minutes=1), down=timedelta(minutes=5))


@pytest.mark.parametrize(
    ("value", "memory_at", "status_at", "action", "reason"),
    [
        pytest.param(
            0.41, ago(seconds=20), None, Action.HOLD, "cooldown up: 40 s left → hold", id="up"
        ),
        pytest.param(
            0.41, None, ago(seconds=20), Action.HOLD, "cooldown up: 40 s left", id="target-record"
        ),
        pytest.param(
            0.41,
            ago(minutes=10),
            ago(seconds=59.5),
            Action.HOLD,
            "cooldown up: 1 s left",
            id="latest-of-both-rounded-up",
        ),
        pytest.param(0.41, ago(minutes=1), None, Action.UP, None, id="up-elapsed"),
        pytest.param(
            0.1,
            ago(seconds=50),
            None,
            Action.HOLD,
            "cooldown down: 4 min 10 s left → hold",
            id="down",
        ),
        pytest.param(0.1, ago(minutes=6), None, Action.DOWN, None, id="down-elapsed"),
        pytest.param(0.25, ago(seconds=1), None, Action.NONE, None, id="no-change-no-cooldown"),
    ],
)
def test_cooldown(
    value: float,
    memory_at: datetime | None,
    status_at: datetime | None,
    action: Action,
    reason: str | None,
) -> None:
    memory = Memory(last_scaled_at=memory_at)
    outcome = run(
        make_policy(cooldown=COOLDOWN),
        ok(LATENCY, value),
        memory=memory,
        last_scaled_at=status_at,
    )
    assert outcome.decision.action is action
    assert outcome.decision.desired == {0.41: 9, 0.1: 2, 0.25: 5}[value]
    assert outcome.memory.last_scaled_at == memory_at
    if reason is None:
        assert not any(r.startswith("cooldown") for r in outcome.decision.reasons)
    else:
        assert outcome.decision.reasons[-1].startswith(reason)


# --- step 7: the decision itself ------------------------------------------------------------


def test_none_decision_still_says_why() -> None:
    outcome = run(make_policy(), ok(LATENCY, 0.26))
    assert outcome.decision.action is Action.NONE
    assert outcome.decision.reasons == ("p95-latency: 0.26 / 0.25 within tolerance ±10% → 5",)


def test_reasons_follow_the_pipeline_order() -> None:
    policy = make_policy(
        LATENCY,
        ERRORS,
        max=10,
        limits=Limits(up=StepLimit(count=10)),
        cooldown=COOLDOWN,
        schedules=(window("sale", max=11),),
    )
    outcome = run(
        policy, ok(LATENCY, 1.0), failed(ERRORS), memory=Memory(last_scaled_at=ago(seconds=30))
    )
    assert outcome.decision.reasons == (
        "p95-latency: 1 / 0.25 → 20",
        "check error-ratio failed (timeout): scale-down blocked",
        "limit up +10: 20 capped to 15",
        "schedule sale max 11: 15 → 11",
        "cooldown up: 30 s left → hold",
    )
    assert (outcome.decision.desired, outcome.decision.action) == (11, Action.HOLD)


@pytest.mark.parametrize(
    ("flag", "policy_flag", "expected"),
    [
        pytest.param(False, False, False, id="neither"),
        pytest.param(True, False, True, id="global"),
        pytest.param(False, True, True, id="policy"),
    ],
)
def test_dry_run_is_either_flag(flag: bool, policy_flag: bool, expected: bool) -> None:
    outcome = run(make_policy(dry_run=policy_flag), ok(LATENCY, 0.41), dry_run=flag)
    assert outcome.decision.dry_run is expected
    assert outcome.decision.action is Action.UP


def test_decision_identifies_policy_target_and_time() -> None:
    decision = run(make_policy(), ok(LATENCY, 0.41)).decision
    assert decision.policy == "checkout-web"
    assert decision.target == "aws-asg:checkout-web@eu-west-3"
    assert decision.time == NOW
    assert decision.current == 5


# --- unavailable ------------------------------------------------------------------------------


def test_unavailable_holds_with_the_reason_and_unevaluated_checks() -> None:
    policy = make_policy(LATENCY, FLOOR, dry_run=True)
    decision = unavailable(policy, now=NOW, reason="ASG not found", current=None)
    assert decision.action is Action.HOLD
    assert (decision.current, decision.desired) == (None, None)
    assert decision.reasons == ("ASG not found",)
    assert decision.dry_run is True
    assert [(c.name, c.error) for c in decision.checks] == [
        ("p95-latency", "not evaluated"),
        ("sales-floor", "not evaluated"),
    ]


def test_unavailable_keeps_a_known_count() -> None:
    decision = unavailable(make_policy(), now=NOW, reason="evaluation failed", current=4)
    assert (decision.current, decision.desired, decision.dry_run) == (4, 4, False)


def test_stabilization_keeps_every_other_field_of_the_memory() -> None:
    # `_stabilize` builds the new memory field by field: a field added to Memory must be
    # added there too, or it would be lost at every evaluation.
    assert set(Memory.__dataclass_fields__) == {
        "last_scaled_at",
        "recommendations",
        "missing_data_streak",
        "missing_data_since",
    }
    memory = replace(history((timedelta(minutes=1), 12)), last_scaled_at=NOW - timedelta(hours=1))
    outcome = run(make_policy(stabilization=FIVE_MIN_DOWN), ok(LATENCY, 0.05), memory=memory)
    assert outcome.memory.last_scaled_at == memory.last_scaled_at
    assert [r.count for r in outcome.memory.recommendations] == [12, 1]


@pytest.mark.parametrize(
    "zone", [UTC, ZoneInfo("Europe/Paris"), ZoneInfo("America/New_York")], ids=str
)
def test_stabilization_windows_are_the_same_in_any_time_zone(zone: tzinfo) -> None:
    # UTC instants take a shortcut (one cutoff per window); others subtract per record.
    local = NOW.astimezone(zone)
    pairs = [(timedelta(minutes=5), 20), (timedelta(minutes=4, seconds=59), 9), (timedelta(0), 3)]
    memory = Memory(
        recommendations=tuple(
            Recommendation(at=(NOW - a).astimezone(zone), count=c) for a, c in pairs
        )
    )
    outcome = run(
        make_policy(stabilization=FIVE_MIN_DOWN),
        ok(LATENCY, 0.05),
        current=10,
        memory=memory,
        now=local,
    )
    assert outcome.decision.desired == 9
    assert [r.count for r in outcome.memory.recommendations] == [9, 3, 2]


def test_the_first_answer_after_a_full_outage_is_stabilized_like_after_a_partial_one() -> None:
    # Every check failing recorded no recommendation, so after an outage longer than the
    # down window the first answer (3) scaled 10 in at once, where the same answer after
    # one check had failed was held by the window.
    policy = make_policy(LATENCY, stabilization=Stabilization(down=timedelta(minutes=5)))
    memory = Memory(recommendations=(Recommendation(at=ago(minutes=10), count=10),))
    for minutes in range(9, 0, -1):  # Prometheus down for nine minutes
        held = decide(
            policy,
            status=TargetStatus(count=10),
            observations=[failed(LATENCY)],
            memory=memory,
            now=ago(minutes=minutes),
        )
        assert held.decision.action is Action.HOLD
        memory = held.memory
    back = run(policy, ok(LATENCY, 0.075), current=10, memory=memory)  # asks for 3
    assert back.decision.action is Action.NONE
    assert back.decision.desired == 10
    assert "stabilization down 5m: highest recommendation 10 → 10 instead of 3" in (
        back.decision.reasons
    )


def test_without_any_data_a_count_below_min_is_raised_never_lowered_above_max() -> None:
    # Bounds win upwards even when every check fails (a group set to 0 by hand, a
    # schedule's min starting during an outage); a count above max stays (never scale in
    # blind).
    below = run(make_policy(LATENCY, min=2, max=8), failed(LATENCY), current=0)
    assert (below.decision.action, below.decision.desired) == (Action.UP, 2)
    # ... and its reasons say so, instead of "holding" followed by a scale-up.
    assert below.decision.reasons[-2:] == (
        "no usable data from any check (1 in a row): holding, but the bounds still apply",
        "min 2: 0 → 2",
    )
    above = run(make_policy(LATENCY, min=2, max=8), failed(LATENCY), current=12)
    assert (above.decision.action, above.decision.desired) == (Action.HOLD, 12)


def test_a_targets_record_far_in_the_future_is_not_counted_a_near_one_is() -> None:
    # A Nomad server's clock 2 h ahead dates its scale events 2 h ahead: counted, every
    # change was held for 2 h (the target's record is not ours to correct).
    policy = make_policy(LATENCY, cooldown=Cooldown(up=timedelta(minutes=1), down=ZERO))
    far = run(policy, ok(LATENCY, 0.5), last_scaled_at=NOW + timedelta(hours=2))
    assert (far.decision.action, far.decision.desired) == (Action.UP, 10)
    near = run(policy, ok(LATENCY, 0.5), last_scaled_at=NOW + timedelta(seconds=10))
    assert near.decision.action is Action.HOLD
    assert near.decision.reasons[-1] == "cooldown up: 1 min 10 s left → hold"
