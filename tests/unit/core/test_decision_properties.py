"""Invariants of `decide` over random policies, observations, memory and target status.

Each property restates one promise of the spec with an independent, simpler computation
(bounds, step allowance, windows), so a bug in the pipeline cannot hide behind itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from unittest.mock import patch

from hypothesis import given
from hypothesis import strategies as st

from autoscaler.core import stabilization
from autoscaler.core.decision import decide
from autoscaler.core.model import (
    Action,
    AsgTarget,
    Change,
    Check,
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
from tests.support.fuzz import fuzz_settings

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

counts = st.integers(min_value=0, max_value=60)
optional_counts = st.none() | counts
durations = st.integers(min_value=0, max_value=600).map(lambda s: timedelta(seconds=s))
instants = st.integers(min_value=0, max_value=1200).map(lambda s: NOW - timedelta(seconds=s))
values = st.floats(min_value=-50, max_value=500, allow_nan=False)


@dataclass(frozen=True)
class Case:
    """One random evaluation's inputs."""

    policy: Policy
    status: TargetStatus
    observations: tuple[Observation, ...]
    memory: Memory

    def decide(self) -> Outcome:
        return decide(
            self.policy,
            status=self.status,
            observations=self.observations,
            memory=self.memory,
            now=NOW,
        )


@st.composite
def steps(draw: st.DrawFn) -> Step:
    amount = draw(st.integers(min_value=-100, max_value=100))
    return Step(
        change=Change(amount=amount, percent=draw(st.booleans())),
        above=draw(st.none() | values),
        below=draw(st.none() | values),
    )


@st.composite
def checks(draw: st.DrawFn, name: str) -> Check:
    strategy = draw(st.sampled_from(Strategy))
    if strategy is Strategy.FIXED:
        return Check(name=name, strategy=strategy, count=draw(counts))
    return Check(
        name=name,
        strategy=strategy,
        query=f"query_{name}",
        target=draw(st.floats(min_value=0.01, max_value=100)),
        tolerance=draw(st.sampled_from([0.0, 0.1, 0.25])),
        steps=tuple(draw(st.lists(steps(), max_size=3))),
    )


def observation(check: Check) -> st.SearchStrategy[Observation | None]:
    return st.one_of(
        values.map(lambda v: Observation(check=check.name, value=v)),
        st.just(Observation(check=check.name, error="timeout")),
        st.sampled_from([math.nan, math.inf, -math.inf, None]).map(
            lambda v: Observation(check=check.name, value=v)
        ),
        st.none(),  # never evaluated
    )


@st.composite
def step_limits(draw: st.DrawFn) -> StepLimit | None:
    return draw(
        st.none()
        | st.builds(
            StepLimit,
            count=st.none() | st.integers(min_value=0, max_value=10),
            percent=st.none() | st.sampled_from([10.0, 20.0, 33.3, 50.0, 100.0]),
        )
    )


@st.composite
def schedules(draw: st.DrawFn, name: str) -> Schedule:
    start = NOW + timedelta(minutes=draw(st.integers(min_value=-120, max_value=60)))
    end = start + timedelta(minutes=draw(st.integers(min_value=1, max_value=180)))
    return Schedule(
        name=name, start=start, end=end, min=draw(optional_counts), max=draw(optional_counts)
    )


@st.composite
def cases(draw: st.DrawFn, *, ready: bool | None = None) -> Case:
    """Random inputs; a target is mostly ready, so most examples exercise the pipeline."""
    names = [f"c{i}" for i in range(draw(st.integers(min_value=1, max_value=4)))]
    policy_checks = tuple(draw(checks(name)) for name in names)
    low = draw(counts)
    policy = Policy(
        name="p",
        target=AsgTarget(asg="web"),
        min=low,
        max=draw(st.integers(min_value=low, max_value=80)),
        checks=policy_checks,
        cooldown=Cooldown(up=draw(durations), down=draw(durations)),
        stabilization=Stabilization(up=draw(durations), down=draw(durations)),
        limits=Limits(up=draw(step_limits()), down=draw(step_limits())),
        on_missing_data=draw(st.sampled_from(MissingData)),
        fallback=draw(st.none() | st.builds(Fallback, after=st.integers(1, 4), count=counts)),
        schedules=tuple(draw(schedules(f"s{i}")) for i in range(draw(st.integers(0, 3)))),
    )
    drawn = [draw(observation(c)) for c in policy_checks if c.strategy is not Strategy.FIXED]
    min_size = draw(optional_counts)
    max_size = draw(optional_counts)
    if min_size is not None and max_size is not None and min_size > max_size:
        min_size, max_size = max_size, min_size
    status = TargetStatus(
        count=draw(counts),
        ready=draw(st.integers(0, 5).map(bool)) if ready is None else ready,
        not_ready_reason="busy",
        min_size=min_size,
        max_size=max_size,
        last_scaled_at=draw(st.none() | instants),
    )
    history = sorted(draw(st.lists(st.tuples(instants, counts), max_size=8)))
    memory = Memory(
        last_scaled_at=draw(st.none() | instants),
        recommendations=tuple(Recommendation(at=at, count=c) for at, c in history),
        missing_data_streak=draw(st.integers(0, 5)),
    )
    return Case(policy, status, tuple(o for o in drawn if o is not None), memory)


# --- an independent restatement of the bounds -------------------------------------------------


def policy_bounds(policy: Policy) -> tuple[int, int]:
    """The policy's min/max with the one-off schedules open at NOW applied."""
    open_now = [s for s in policy.schedules if s.start and s.end and s.start <= NOW < s.end]
    mins = [s.min for s in open_now if s.min is not None]
    maxes = [s.max for s in open_now if s.max is not None]
    low = max(mins) if mins else policy.min
    high = max(maxes) if maxes else policy.max
    return low, max(low, high)


def clamp_all(case: Case, count: int) -> int:
    """`count` through the policy bounds then the target's own, as the spec orders them."""
    low, high = policy_bounds(case.policy)
    count = min(max(count, low), high)
    if case.status.max_size is not None:
        count = min(count, case.status.max_size)
    if case.status.min_size is not None:
        count = max(count, case.status.min_size)
    return count


def bound_values(case: Case) -> set[int]:
    low, high = policy_bounds(case.policy)
    target = {case.status.min_size, case.status.max_size} - {None}
    return {low, high} | {b for b in target if b is not None}


def any_failed(outcome: Outcome) -> bool:
    return any(c.error is not None for c in outcome.decision.checks)


def is_fallback(outcome: Outcome) -> bool:
    return any("fallback to at least" in r for r in outcome.decision.reasons)


def held_before_shaping(case: Case, outcome: Outcome) -> bool:
    """Held because not ready, or without data and at or above the bounds' floor: the count
    is left alone (without data, bounds raise a count below `min`, never lower one)."""
    return not case.status.ready or (
        any(r.startswith("no usable data from any check") for r in outcome.decision.reasons)
        and outcome.decision.desired == case.status.count
    )


# --- properties ---------------------------------------------------------------------------------

# Generating a whole policy is the slow part; 100 examples per property keeps the file
# within a few seconds while still covering every branch many times over. CI always runs
# the same 100 (fixed seed, no example database), so its outcome never depends on luck;
# `AUTOSCALER_FUZZ=nightly` runs thousands with a fresh seed (see tests/support/fuzz.py).
PROPERTY_SETTINGS = fuzz_settings(ci=100)


@PROPERTY_SETTINGS
@given(cases(ready=False))
def test_not_ready_never_changes_anything(case: Case) -> None:
    outcome = case.decide()
    assert outcome.decision.action is Action.HOLD
    assert outcome.decision.desired == case.status.count
    assert outcome.memory == case.memory
    assert outcome.decision.reasons == ("busy",)


@PROPERTY_SETTINGS
@given(cases())
def test_result_stays_within_effective_bounds(case: Case) -> None:
    outcome = case.decide()
    if held_before_shaping(case, outcome):
        assert outcome.decision.action is Action.HOLD
        assert outcome.decision.desired == case.status.count
        return
    if any_failed(outcome) and outcome.decision.desired == case.status.count:
        return  # a failed check keeps a count above lowered bounds: never scale in blind
    desired = outcome.decision.desired
    assert desired is not None
    assert clamp_all(case, desired) == desired
    low, high = policy_bounds(case.policy)
    target_low = case.status.min_size if case.status.min_size is not None else low
    target_high = case.status.max_size if case.status.max_size is not None else high
    if max(low, target_low) <= min(high, target_high):
        assert low <= desired <= high  # the policy's bounds hold when the target allows them


@PROPERTY_SETTINGS
@given(cases())
def test_failed_check_never_scales_down_not_even_to_lowered_bounds(case: Case) -> None:
    outcome = case.decide()
    if any_failed(outcome):
        desired = outcome.decision.desired
        assert desired is not None
        assert desired >= case.status.count
        assert outcome.decision.action is not Action.DOWN


@PROPERTY_SETTINGS
@given(cases())
def test_step_limits_hold_unless_bounds_force_it(case: Case) -> None:
    outcome = case.decide()
    if held_before_shaping(case, outcome) or is_fallback(outcome):
        return
    current, desired = case.status.count, outcome.decision.desired
    assert desired is not None
    limit = case.policy.limits.up if desired > current else case.policy.limits.down
    if limit is None or (limit.count is None and limit.percent is None):
        return
    by_percent = math.ceil(current * limit.percent / 100) if limit.percent else 0
    allowed = max(limit.count or 0, by_percent, 1)
    assert abs(desired - current) <= allowed or desired in bound_values(case)


@PROPERTY_SETTINGS
@given(cases())
def test_never_scales_down_below_a_recommendation_in_the_down_window(case: Case) -> None:
    outcome = case.decide()
    current, desired = case.status.count, outcome.decision.desired
    assert desired is not None
    if desired >= current:
        return
    cutoff = NOW - case.policy.stabilization.down
    window = [r.count for r in case.memory.recommendations if r.at > cutoff]
    if window:
        assert desired >= clamp_all(case, min(current, max(window)))


@PROPERTY_SETTINGS
@given(cases())
def test_cooldown_is_respected(case: Case) -> None:
    outcome = case.decide()
    action = outcome.decision.action
    if action not in (Action.UP, Action.DOWN):
        return
    times = [t for t in (case.memory.last_scaled_at, case.status.last_scaled_at) if t]
    cooldown = case.policy.cooldown.up if action is Action.UP else case.policy.cooldown.down
    if not times or NOW - max(times) >= cooldown:
        return
    # Inside the cooldown only a scale-up may go ahead, on a metric that keeps rising: the
    # recommendation above every one recorded since our last scaling action.
    assert action is Action.UP
    assert any("keeps rising" in reason for reason in outcome.decision.reasons)
    ours = case.memory.last_scaled_at
    assert ours is not None
    since = [r.count for r in case.memory.recommendations if r.at >= ours]
    asked = [c.desired for c in outcome.decision.checks if c.desired is not None]
    assert since
    assert max(asked) > max(since)


@PROPERTY_SETTINGS
@given(cases())
def test_decision_shape_and_memory(case: Case) -> None:
    outcome = case.decide()
    decision = outcome.decision
    assert [c.name for c in decision.checks] == [c.name for c in case.policy.checks]
    assert all((c.desired is None) != (c.error is None) for c in decision.checks)
    assert decision.reasons
    assert outcome.memory.last_scaled_at == case.memory.last_scaled_at
    if decision.action is Action.UP:
        assert decision.desired is not None
        assert decision.desired > case.status.count
    if decision.action is Action.DOWN:
        assert decision.desired is not None
        assert decision.desired < case.status.count
    if decision.action is Action.NONE:
        assert decision.desired == case.status.count
    if outcome.memory.recommendations != case.memory.recommendations:
        longest = max(case.policy.stabilization.up, case.policy.stabilization.down)
        *recent, latest = outcome.memory.recommendations
        assert latest.at == NOW
        assert all(r.at > NOW - longest for r in recent)


@st.composite
def sequences(
    draw: st.DrawFn,
) -> tuple[Case, list[tuple[int, int, dict[str, float], Stabilization | None]]]:
    """A case and the evaluations that follow it: (seconds since the one before, the
    target's count, a value per query check, the stabilization windows a reload brings or
    None); now and then the clock steps back."""
    case = draw(cases(ready=True))
    queried = [c.name for c in case.policy.checks if c.strategy is not Strategy.FIXED]
    windows = st.just(timedelta(0)) | durations  # no window at all, often
    reloads = st.none() | st.builds(Stabilization, up=windows, down=windows)
    following = draw(
        st.lists(
            st.tuples(
                st.integers(min_value=-30, max_value=120).filter(lambda s: s >= 0 or s % 7 == 0),
                counts,
                st.fixed_dictionaries(dict.fromkeys(queried, values)),
                reloads,
            ),
            min_size=1,
            max_size=25,
        )
    )
    return case, following


@given(sequences())
@PROPERTY_SETTINGS
def test_dropping_dominated_recommendations_changes_no_decision(
    sequence: tuple[Case, list[tuple[int, int, dict[str, float], Stabilization | None]]],
) -> None:
    """The memory keeps only recommendations that a later one does not stand in for
    (`_undominated`); evaluation after evaluation, every decision is the one the whole
    history gives, also when a reload (or a restart) changes the windows in between."""
    case, following = sequence
    policy = case.policy
    now = NOW
    whole = pruned = case.memory
    for seconds, count, read, reloaded in following:
        if reloaded is not None:
            policy = replace(policy, stabilization=reloaded)
        now += timedelta(seconds=seconds)
        status = TargetStatus(count=count)
        observations = [Observation(check=name, value=v) for name, v in read.items()]
        outcomes = []
        for memory, keep_all in ((pruned, False), (whole, True)):
            with patch.object(
                stabilization,
                "_undominated",
                tuple if keep_all else stabilization._undominated,
            ):
                outcomes.append(
                    decide(
                        policy,
                        status=status,
                        observations=observations,
                        memory=memory,
                        now=now,
                    )
                )
        got, expected = outcomes
        assert (got.decision.desired, got.decision.action, got.decision.reasons) == (
            expected.decision.desired,
            expected.decision.action,
            expected.decision.reasons,
        )
        assert set(got.memory.recommendations) <= set(expected.memory.recommendations)
        pruned, whole = got.memory, expected.memory
        if got.decision.action in (Action.UP, Action.DOWN):  # as the reconciler records it
            pruned = replace(pruned, last_scaled_at=now)
            whole = replace(whole, last_scaled_at=now)
