"""The decision core at the edges: the ends of time, numbers at their limits, crons that
never fire, targets that report nonsense. Each case once crashed `decide()` (found by
`tests/unit/policy/test_shipped_policies_fuzz.py`); each now gives a decision with reasons.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autoscaler.core.bounds import allowed_step, limit
from autoscaler.core.decision import decide
from autoscaler.core.model import (
    Action,
    AsgTarget,
    Change,
    Check,
    Cooldown,
    Limits,
    Memory,
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
from autoscaler.core.ranges import MAX_COUNT, shifted
from autoscaler.core.schedules import is_active, last_fire
from autoscaler.core.strategies import apply_change, ceil_count, desired

LAST = datetime.max.replace(tzinfo=UTC)
FIRST = datetime.min.replace(tzinfo=UTC)
LOAD = Check(name="load", strategy=Strategy.PASS_THROUGH, query="sum(load)")


def policy(**overrides: object) -> Policy:
    fields: dict[str, object] = {
        "name": "web",
        "target": AsgTarget(asg="web"),
        "min": 1,
        "max": 40,
        "checks": (LOAD,),
        "cooldown": Cooldown(up=timedelta(minutes=5), down=timedelta(minutes=5)),
        "stabilization": Stabilization(up=timedelta(minutes=5), down=timedelta(minutes=5)),
        "limits": Limits(up=StepLimit(percent=100), down=StepLimit(count=2)),
        "schedules": (
            Schedule(
                name="office",
                cron="0 8 * * 1-5",
                duration=timedelta(hours=10),
                timezone="Pacific/Kiritimati",
                min=6,
            ),
            Schedule(name="bf", start=FIRST, end=LAST, max=30),
        ),
    }
    fields.update(overrides)
    return Policy(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "now",
    [
        pytest.param(LAST, id="datetime-max"),
        pytest.param(LAST - timedelta(hours=3), id="hours-before-max"),
        pytest.param(FIRST, id="datetime-min"),
        pytest.param(FIRST + timedelta(hours=3), id="hours-after-min"),
    ],
)
def test_decide_works_at_the_ends_of_time(now: datetime) -> None:
    memory = Memory(
        last_scaled_at=now,
        recommendations=(Recommendation(at=LAST, count=12), Recommendation(at=FIRST, count=12)),
    )
    outcome = decide(
        policy(),
        status=TargetStatus(count=5, last_scaled_at=FIRST),
        observations=[Observation(check="load", value=12)],
        memory=memory,
        now=now,
    )
    decision = outcome.decision
    assert decision.action is Action.HOLD  # we scaled "now": the cooldown runs
    assert any(r.startswith("cooldown up") for r in decision.reasons)
    assert outcome.memory.recommendations[-1] == Recommendation(at=now, count=12)


def test_a_cooldown_that_ends_past_datetime_max_still_holds() -> None:
    outcome = decide(
        policy(cooldown=Cooldown(up=timedelta(days=365))),
        status=TargetStatus(count=5),
        observations=[Observation(check="load", value=12)],
        memory=Memory(last_scaled_at=LAST - timedelta(days=1)),
        now=LAST - timedelta(hours=1),
    )
    assert outcome.decision.action is Action.HOLD


@pytest.mark.parametrize(
    ("instant", "delta", "expected"),
    [
        pytest.param(LAST, timedelta(microseconds=1), LAST, id="past-max"),
        pytest.param(FIRST, -timedelta(days=1), FIRST, id="before-min"),
        pytest.param(LAST, -timedelta(days=1), LAST - timedelta(days=1), id="inside"),
        pytest.param(FIRST, timedelta.max, LAST, id="huge"),
    ],
)
def test_shifted_stops_at_the_ends_of_time(
    instant: datetime, delta: timedelta, expected: datetime
) -> None:
    assert shifted(instant, delta) == expected


@pytest.mark.parametrize("cron", ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 1 1 0#5"])
def test_a_cron_that_never_fires_has_no_last_fire_and_is_never_open(cron: str) -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert last_fire(cron, now, within=timedelta(days=365)) is None
    schedule = Schedule(name="never", cron=cron, duration=timedelta(hours=1), min=3)
    assert not is_active(schedule, now)


@pytest.mark.parametrize(
    ("cron", "timezone"),
    [
        pytest.param("0 0 29 2 *", None, id="leap-day-near-min"),
        pytest.param("* * * * *", "Pacific/Kiritimati", id="local-time-past-max"),
        pytest.param("* * * * *", "Etc/GMT+12", id="local-time-before-min"),
    ],
)
def test_a_cron_window_at_the_ends_of_time_is_computed_or_closed(
    cron: str, timezone: str | None
) -> None:
    for now in (FIRST, FIRST + timedelta(minutes=5), LAST - timedelta(minutes=5), LAST):
        schedule = Schedule(
            name="s", cron=cron, duration=timedelta(hours=1), timezone=timezone, min=3
        )
        is_active(schedule, now)  # no exception


def test_a_cron_window_is_found_exactly_as_far_back_as_it_lasts() -> None:
    leap_day = Schedule(name="leap", cron="0 0 29 2 *", duration=timedelta(days=2), min=3)
    assert is_active(leap_day, datetime(2028, 3, 1, 12, tzinfo=UTC))
    assert not is_active(leap_day, datetime(2028, 3, 2, 12, tzinfo=UTC))
    assert not is_active(leap_day, datetime(2027, 3, 1, 12, tzinfo=UTC))


def test_a_count_beyond_any_target_is_capped_not_a_crash() -> None:
    assert ceil_count(float("inf")) == MAX_COUNT
    assert ceil_count(1e300) == MAX_COUNT
    huge = Check(name="q", strategy=Strategy.PER_INSTANCE, query="q", target=5e-324)
    assert desired(huge, 1e308, 3).count == MAX_COUNT
    assert apply_change(Change(amount=1e300, percent=True), 3) == MAX_COUNT
    assert allowed_step(StepLimit(percent=1e308), 10**6) == MAX_COUNT
    assert limit(Limits(up=StepLimit(percent=1e308)), 50, 10)[0] == 50


def test_nan_from_arithmetic_fails_the_check_instead_of_crashing() -> None:
    with pytest.raises(ValueError, match="not a number"):
        ceil_count(float("nan"))
    steps = (Step(change=Change(amount=1e308, percent=True), above=0),)
    check = Check(name="t", strategy=Strategy.THRESHOLD, query="q", steps=steps)
    outcome = decide(
        policy(checks=(check,), schedules=()),
        status=TargetStatus(count=0),
        observations=[Observation(check="t", value=1.0)],
        memory=Memory(),
        now=datetime(2026, 6, 1, tzinfo=UTC),
    )
    assert outcome.decision.desired is not None


@pytest.mark.parametrize("count", [-1, MAX_COUNT + 1, 10**400])
def test_a_target_reporting_an_implausible_count_holds(count: int) -> None:
    outcome = decide(
        policy(),
        status=TargetStatus(count=count),
        observations=[Observation(check="load", value=12)],
        memory=Memory(missing_data_streak=2),
        now=datetime(2026, 6, 1, tzinfo=UTC),
    )
    decision = outcome.decision
    assert decision.action is Action.HOLD
    assert (decision.current, decision.desired) == (None, None)
    assert "not a plausible count" in decision.reasons[0]
    assert outcome.memory == Memory(missing_data_streak=2)


@pytest.mark.parametrize("now", [FIRST, datetime(2026, 6, 1, tzinfo=UTC)])
def test_a_missing_data_streak_older_than_time_itself_is_counted_not_a_crash(
    now: datetime,
) -> None:
    outcome = decide(
        policy(schedules=()),
        status=TargetStatus(count=5),
        observations=[Observation(check="load", error="no series")],
        memory=Memory(missing_data_streak=10**18),
        now=now,
    )
    assert outcome.decision.action is Action.HOLD
    # Paced to one per interval since the earliest instant there is.
    assert 1 <= outcome.memory.missing_data_streak <= 10**18 + 1
