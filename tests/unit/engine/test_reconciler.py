"""The reconciler's wiring: adapter failures become holds, scales are remembered."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from autoscaler import redact
from autoscaler.adapters.deadline import monotonic as lease_clock
from autoscaler.adapters.sources.prometheus_answers import series_set
from autoscaler.adapters.state import LayeredStateStore, MemoryStateStore
from autoscaler.core.model import (
    Action,
    AsgTarget,
    Check,
    CheckResult,
    Cooldown,
    Decision,
    ForecastReading,
    Memory,
    Policy,
    Stabilization,
    Strategy,
    TargetRef,
    TargetStatus,
)
from autoscaler.core.ports import ScalingTarget, StateStore
from autoscaler.core.series import SeriesSet
from autoscaler.engine.evaluation import Evaluation
from autoscaler.engine.reconciler import Reconciler
from autoscaler.engine.scrubbing import scrubbed
from autoscaler.errors import (
    NotLeader,
    QueryError,
    SourceUnavailable,
    StateError,
    TargetBusy,
    TargetDeadline,
    TargetError,
)

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@dataclass
class FakeSource:
    values: dict[str, float | Exception] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def query(self, promql: str) -> float:
        self.asked.append(promql)
        found = self.values.get(promql, QueryError("no series"))
        if isinstance(found, Exception):
            raise found
        return found

    def query_series(self, promql: str, *, reuse: float = 0.0) -> SeriesSet:
        raise NotImplementedError  # the grouped queries' fake is `GroupedSource` below

    def ping(self) -> None:
        return None


@dataclass
class FakeTarget:
    status_value: TargetStatus | Exception = field(default_factory=lambda: TargetStatus(count=4))
    scale_error: Exception | None = None
    scaled: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)
    expected: list[int | None] = field(default_factory=list)
    deadlines: list[float | None] = field(default_factory=list)

    def status(self) -> TargetStatus:
        if isinstance(self.status_value, Exception):
            raise self.status_value
        return self.status_value

    def scale(
        self,
        count: int,
        *,
        reason: str,
        meta: Mapping[str, str],
        expected: int | None = None,
        deadline: float | None = None,
    ) -> None:
        self.expected.append(expected)
        self.deadlines.append(deadline)
        if self.scale_error is not None:
            raise self.scale_error
        self.scaled.append((count, reason, dict(meta)))


def _policy(**overrides: object) -> Policy:
    base: dict[str, object] = {
        "name": "web",
        "target": AsgTarget(asg="web"),
        "min": 1,
        "max": 20,
        "checks": (
            Check(name="load", strategy=Strategy.PER_INSTANCE, query="sum(load)", target=10.0),
        ),
        "cooldown": Cooldown(up=timedelta(minutes=1), down=timedelta(minutes=5)),
        "stabilization": Stabilization(up=timedelta(0), down=timedelta(0)),
    }
    base.update(overrides)
    return Policy(**base)  # type: ignore[arg-type]


def _reconciler(
    source: FakeSource,
    target: FakeTarget,
    state: StateStore,
    now: datetime = T0,
    *,
    scale_up_unrecorded: bool = False,
    fence: Callable[[float], float | None] | None = None,
    tenure: Callable[[float], None] | None = None,
) -> Reconciler:
    def targets(_ref: TargetRef) -> ScalingTarget:
        return target

    return Reconciler(
        source=source,
        targets=targets,
        state=state,
        clock=lambda: now,
        scale_up_unrecorded=scale_up_unrecorded,
        fence=fence,
        tenure=tenure,
    )


def test_scale_up_calls_the_target_and_starts_the_cooldown() -> None:
    source, target, state = FakeSource({"sum(load)": 80.0}), FakeTarget(), MemoryStateStore()
    evaluation = _reconciler(source, target, state).evaluate(_policy())
    assert evaluation.ok and evaluation.scaled
    assert evaluation.decision.action is Action.UP
    assert [s[0] for s in target.scaled] == [8]
    _count, reason, meta = target.scaled[0]
    assert "web" in reason and meta["autoscaler.policy"] == "web"
    assert meta["autoscaler.check.load"] == "80"
    assert state.load("web", AsgTarget(asg="web").key).last_scaled_at == T0
    assert state.history()[0] == evaluation.decision


def test_second_evaluation_inside_the_cooldown_holds() -> None:
    source, target, state = FakeSource({"sum(load)": 80.0}), FakeTarget(), MemoryStateStore()
    _reconciler(source, target, state).evaluate(_policy())
    # The fake target still reads 4: the same load asks for 8 again, no more (not rising).
    later = _reconciler(source, target, state, now=T0 + timedelta(seconds=20))
    evaluation = later.evaluate(_policy())
    assert evaluation.decision.action is Action.HOLD
    assert len(target.scaled) == 1


def test_dry_run_decides_but_never_scales_nor_starts_a_cooldown() -> None:
    source, target, state = FakeSource({"sum(load)": 80.0}), FakeTarget(), MemoryStateStore()
    evaluation = _reconciler(source, target, state).evaluate(_policy(), dry_run=True)
    assert evaluation.decision.action is Action.UP and evaluation.decision.dry_run
    assert target.scaled == [] and not evaluation.scaled
    assert state.load("web", AsgTarget(asg="web").key).last_scaled_at is None
    assert state.history()[0].dry_run


def test_policy_dry_run_flag_is_honoured_like_the_global_one() -> None:
    source, target, state = FakeSource({"sum(load)": 80.0}), FakeTarget(), MemoryStateStore()
    evaluation = _reconciler(source, target, state).evaluate(_policy(dry_run=True))
    assert evaluation.decision.dry_run and target.scaled == []


def test_preview_reads_but_never_scales_nor_writes() -> None:
    source, target, state = FakeSource({"sum(load)": 80.0}), FakeTarget(), MemoryStateStore()
    evaluation = _reconciler(source, target, state).evaluate(_policy(), apply=False)
    assert evaluation.decision.desired == 8
    assert target.scaled == [] and state.history() == []
    assert state.load("web", AsgTarget(asg="web").key) == Memory()


def test_unreadable_target_holds_and_reports_a_target_error() -> None:
    target = FakeTarget(status_value=TargetError("AccessDenied"))
    evaluation = _reconciler(FakeSource(), target, MemoryStateStore()).evaluate(_policy())
    assert evaluation.decision.action is Action.HOLD
    assert evaluation.error_kind == "target" and "AccessDenied" in (evaluation.error or "")


def test_prometheus_down_never_scales_in_and_is_reported() -> None:
    source = FakeSource({"sum(load)": SourceUnavailable("connection refused")})
    target = FakeTarget()
    evaluation = _reconciler(source, target, MemoryStateStore()).evaluate(_policy(min=1))
    assert evaluation.decision.action is Action.HOLD
    assert evaluation.error_kind == "source"
    assert target.scaled == []


def test_not_ready_target_is_not_queried() -> None:
    source = FakeSource({"sum(load)": 80.0})
    target = FakeTarget(status_value=TargetStatus(count=4, ready=False, not_ready_reason="refresh"))
    evaluation = _reconciler(source, target, MemoryStateStore()).evaluate(_policy())
    assert evaluation.decision.action is Action.HOLD
    assert source.asked == [] and target.scaled == []


def test_busy_target_holds_without_starting_a_cooldown() -> None:
    target = FakeTarget(scale_error=TargetBusy("active deployment"))
    state = MemoryStateStore()
    evaluation = _reconciler(FakeSource({"sum(load)": 80.0}), target, state).evaluate(_policy())
    assert evaluation.decision.action is Action.HOLD and evaluation.ok
    assert any("active deployment" in r for r in evaluation.decision.reasons)
    assert state.load("web", AsgTarget(asg="web").key).last_scaled_at is None


def test_the_scale_call_carries_the_count_the_decision_was_made_on() -> None:
    target = FakeTarget(status_value=TargetStatus(count=4))
    _reconciler(FakeSource({"sum(load)": 80.0}), target, MemoryStateStore()).evaluate(_policy())
    assert [count for count, _, _ in target.scaled] == [8]
    assert target.expected == [4]  # the target refuses if its count moved from 4 meanwhile


@pytest.mark.parametrize(
    "error", [TargetError("ValidationError"), TargetError("boom")], ids=["validation", "other"]
)
def test_failed_scale_holds_and_reports_a_scale_error(error: TargetError) -> None:
    target = FakeTarget(scale_error=error)
    state = MemoryStateStore()
    evaluation = _reconciler(FakeSource({"sum(load)": 80.0}), target, state).evaluate(_policy())
    assert evaluation.decision.action is Action.HOLD
    assert evaluation.error_kind == "scale"
    assert state.load("web", AsgTarget(asg="web").key).last_scaled_at is None


def test_fixed_only_policy_needs_no_query() -> None:
    policy = _policy(checks=(Check(name="floor", strategy=Strategy.FIXED, count=6),))
    source, target = FakeSource(), FakeTarget()
    evaluation = _reconciler(source, target, MemoryStateStore()).evaluate(policy)
    assert evaluation.decision.desired == 6 and source.asked == []


def test_once_prometheus_is_unreachable_the_other_checks_are_not_sent() -> None:
    down = SourceUnavailable("connection refused")
    source = FakeSource({"sum(load)": down, "sum(queue)": 3.0})
    checks = (
        Check(name="load", strategy=Strategy.PER_INSTANCE, query="sum(load)", target=10.0),
        Check(name="queue", strategy=Strategy.PER_INSTANCE, query="sum(queue)", target=10.0),
    )
    evaluation = _reconciler(source, FakeTarget(), MemoryStateStore()).evaluate(
        _policy(checks=checks)
    )
    assert source.asked == ["sum(load)"]
    assert [c.error for c in evaluation.decision.checks] == [
        "connection refused",
        "Prometheus unreachable: connection refused",
    ]
    assert evaluation.error_kind == "source"


# --- decisions that cannot be recorded -------------------------------------------------------

KEY = AsgTarget(asg="web").key


class UnwritableStore(MemoryStateStore):
    """A durable store whose writes fail while `broken` is set (locked, full, read-only)."""

    generation = 0

    def __init__(self) -> None:
        super().__init__()
        self.broken: str | None = None

    def save(self, policy: str, target_key: str, memory: Memory) -> None:
        if self.broken:
            raise StateError(f"state database s.db: {self.broken}")
        super().save(policy, target_key, memory)


def _unwritable() -> tuple[UnwritableStore, LayeredStateStore]:
    durable = UnwritableStore()
    durable.broken = "database is locked"
    return durable, LayeredStateStore(durable, retry_after=0.0)


def test_a_scale_up_is_held_while_it_cannot_be_recorded() -> None:
    # Nothing is done that cannot be recorded: before December 5, 2026 a scale-up went ahead
    # and was kept in memory only, lost if the process then stopped before it could write.
    source = FakeSource({"sum(load)": 80.0})
    target = FakeTarget(status_value=TargetStatus(count=2))
    _durable, state = _unwritable()
    evaluation = _reconciler(source, target, state).evaluate(_policy())
    assert (evaluation.decision.action, evaluation.decision.desired) == (Action.HOLD, 8)
    assert target.scaled == []
    assert evaluation.error_kind == "state"
    assert evaluation.decision.reasons[-1] == (
        "scale-up held: it could not be recorded first "
        "(state not durable: state database s.db: database is locked)"
    )
    assert state.load("web", KEY).last_scaled_at is None  # no cooldown without a scale-up


def test_the_cooldown_of_a_scale_up_that_could_not_be_written_is_still_honoured() -> None:
    # With --scale-up-unrecorded. Observed: 2 -> 6, then 9 inside a 300 s cooldown, because
    # the cooldown it could not write was forgotten. (A count-relative check: a rising
    # per-instance one may skip it.)
    check = Check(name="load", strategy=Strategy.TARGET_VALUE, query="sum(load)", target=20.0)
    policy = _policy(
        checks=(check,),
        cooldown=Cooldown(up=timedelta(seconds=300), down=timedelta(seconds=300)),
    )
    source = FakeSource({"sum(load)": 60.0})
    target = FakeTarget(status_value=TargetStatus(count=2))
    _durable, state = _unwritable()

    first = _reconciler(source, target, state, scale_up_unrecorded=True).evaluate(policy)
    assert first.scaled and first.decision.action is Action.UP  # adding capacity still happens
    assert first.error_kind == "state"
    assert "kept in memory only" in first.decision.reasons[-1]

    target.status_value = TargetStatus(count=6)
    source.values["sum(load)"] = 90.0
    later = T0 + timedelta(seconds=60)
    second = _reconciler(source, target, state, now=later, scale_up_unrecorded=True).evaluate(
        policy
    )
    assert second.decision.action is Action.HOLD
    assert "cooldown up: 4 min left → hold" in second.decision.reasons
    assert [s[0] for s in target.scaled] == [6]


def test_scale_in_is_held_while_it_cannot_be_recorded() -> None:
    source = FakeSource({"sum(load)": 20.0})
    target = FakeTarget(status_value=TargetStatus(count=6))
    _durable, state = _unwritable()
    evaluation = _reconciler(source, target, state).evaluate(_policy())
    assert (evaluation.decision.action, evaluation.decision.desired) == (Action.HOLD, 2)
    assert target.scaled == []
    assert evaluation.error_kind == "state"
    assert evaluation.decision.reasons[-1] == (
        "scale-in held: it could not be recorded first "
        "(state not durable: state database s.db: database is locked)"
    )
    assert state.load("web", KEY).last_scaled_at is None  # no cooldown without a scale-in


def test_scale_in_happens_once_the_record_can_be_written_again() -> None:
    source = FakeSource({"sum(load)": 20.0})
    target = FakeTarget(status_value=TargetStatus(count=6))
    durable, state = _unwritable()
    _reconciler(source, target, state).evaluate(_policy())
    durable.broken = None
    evaluation = _reconciler(source, target, state, now=T0 + timedelta(seconds=1)).evaluate(
        _policy()
    )
    assert evaluation.ok and evaluation.scaled
    assert [s[0] for s in target.scaled] == [2]
    assert durable.load("web", KEY).last_scaled_at == T0 + timedelta(seconds=1)


def test_a_scale_in_is_durable_before_the_scale_call() -> None:
    state = MemoryStateStore()
    seen: list[datetime | None] = []

    class Recording(FakeTarget):
        def scale(
            self,
            count: int,
            *,
            reason: str,
            meta: Mapping[str, str],
            expected: int | None = None,
            deadline: float | None = None,
        ) -> None:
            seen.append(state.load("web", KEY).last_scaled_at)
            super().scale(count, reason=reason, meta=meta, expected=expected, deadline=deadline)

    target = Recording(status_value=TargetStatus(count=6))
    _reconciler(FakeSource({"sum(load)": 20.0}), target, state).evaluate(_policy())
    assert seen == [T0]


def test_a_refused_scale_in_starts_no_cooldown() -> None:
    target = FakeTarget(
        status_value=TargetStatus(count=6), scale_error=TargetBusy("active deployment")
    )
    state = MemoryStateStore()
    evaluation = _reconciler(FakeSource({"sum(load)": 20.0}), target, state).evaluate(_policy())
    assert evaluation.decision.action is Action.HOLD
    assert state.load("web", KEY).last_scaled_at is None


def test_an_evaluation_that_changes_nothing_still_says_it_was_not_recorded() -> None:
    _durable, state = _unwritable()
    source, target = FakeSource({"sum(load)": 40.0}), FakeTarget(status_value=TargetStatus(count=4))
    evaluation = _reconciler(source, target, state).evaluate(_policy())
    assert evaluation.decision.action is Action.NONE
    assert (evaluation.error_kind, evaluation.ok) == ("state", False)
    assert evaluation.decision.reasons[-1] == (
        "state not durable (state database s.db: database is locked): this decision is kept "
        "in memory only, and every change is held until it can be recorded"
    )


def test_a_replica_that_lost_the_lease_neither_scales_nor_keeps_a_cooldown() -> None:
    state = MemoryStateStore()
    target = FakeTarget(status_value=TargetStatus(count=2))

    def fence(_begun: float) -> None:
        raise NotLeader("lease epoch 3 is no longer current (expired or taken over)")

    reconciler = Reconciler(
        source=FakeSource({"sum(load)": 60.0}),
        targets=lambda _ref: target,
        state=state,
        clock=lambda: T0,
        fence=fence,
    )
    evaluation = reconciler.evaluate(_policy())
    assert target.scaled == []
    assert (evaluation.decision.action, evaluation.error_kind) == (Action.HOLD, "lease")
    assert evaluation.decision.reasons[-1] == (
        "not scaled: lease epoch 3 is no longer current (expired or taken over)"
    )
    assert state.load("web", KEY).last_scaled_at is None  # the record made first is undone


def test_the_fence_is_given_the_instant_the_evaluation_began() -> None:
    # On the lease's clock (it keeps counting while the process is stopped): the fence
    # refuses a decision made before a lapse of the lease.
    target = FakeTarget(status_value=TargetStatus(count=2))
    given: list[float] = []

    def fence(begun: float) -> float:
        given.append(begun)
        return begun + 10

    reconciler = Reconciler(
        source=FakeSource({"sum(load)": 60.0}),
        targets=lambda _ref: target,
        state=MemoryStateStore(),
        clock=lambda: T0,
        fence=fence,
    )
    before = lease_clock()
    evaluation = reconciler.evaluate(_policy())
    assert evaluation.scaled and target.scaled
    (begun,) = given
    assert before <= begun <= lease_clock()


@pytest.mark.parametrize(("load", "action"), [(60.0, "up"), (20.0, "none")], ids=["scale", "hold"])
def test_what_an_evaluation_decided_before_its_lease_lapsed_is_neither_applied_nor_written(
    load: float, action: str
) -> None:
    # Paused past the lease, then leading again (a new epoch, after another leader acted):
    # its memory and decision are from before, and writing them under the new epoch
    # overwrote the other leader's recommendations and cooldown.
    state = MemoryStateStore()
    target = FakeTarget(status_value=TargetStatus(count=2))
    told: list[float] = []

    def tenure(begun: float) -> None:
        told.append(begun)
        raise NotLeader("the leader lease lapsed while this evaluation ran")

    reconciler = Reconciler(
        source=FakeSource({"sum(load)": load}),
        targets=lambda _ref: target,
        state=state,
        clock=lambda: T0,
        fence=lambda _begun: 1e12,
        tenure=tenure,
    )
    evaluation = reconciler.evaluate(_policy())
    assert target.scaled == [] and not evaluation.scaled
    assert evaluation.error_kind == "lease"
    assert any("lease lapsed while this evaluation ran" in r for r in evaluation.decision.reasons)
    assert state.history(policy="web") == []  # no decision recorded
    assert state.load("web", KEY) == Memory()  # no memory kept
    assert told and len(set(told)) == 1  # one instant: when the evaluation began
    # A scale it decided is held ("not scaled: ..."); a decision to stay is not recorded.
    assert evaluation.decision.action.value == ("hold" if action == "up" else "none")


LAST = "SetDesiredCapacity on Auto Scaling Group 'web' (eu-west-3)"


@pytest.mark.parametrize(
    ("error", "then", "kept"),
    [
        pytest.param(
            TargetDeadline(
                f"{LAST} was not sent again after 3 attempts (last: HTTP 503)", attempts=3
            ),
            "retried",
            False,
            id="refused-then-not-retried",
        ),
        pytest.param(TargetDeadline(f"{LAST} was not sent"), "sent", False, id="never-sent"),
        pytest.param(
            TargetDeadline(f"{LAST} timed out", attempts=1, maybe_applied=True),
            "retried",
            True,
            id="no-answer-may-land",
        ),
    ],
)
def test_a_scale_call_cut_at_the_lease_deadline_holds_and_says_why(
    error: TargetDeadline, then: str, kept: bool
) -> None:
    state = MemoryStateStore()
    target = FakeTarget(status_value=TargetStatus(count=2), scale_error=error)
    reconciler = Reconciler(
        source=FakeSource({"sum(load)": 60.0}),
        targets=lambda _ref: target,
        state=state,
        clock=lambda: T0,
        fence=lambda _begun: 1234.5,  # where the lease's validity ends
    )
    evaluation = reconciler.evaluate(_policy())
    assert target.deadlines == [1234.5], "the scale call is bounded by the lease"
    assert (evaluation.decision.action, evaluation.error_kind) == (Action.HOLD, "scale")
    assert not evaluation.scaled and evaluation.error == str(error)
    reason = (
        "scale to 6 not applied: the leader lease ends before the scale call could be "
        f"{then} ({error})"
    )
    assert evaluation.decision.reasons[-1] == reason + ("; its cooldown is kept" if kept else "")
    # As for any failed call, the action recorded first is undone, unless it may land.
    assert state.load("web", KEY).last_scaled_at == (T0 if kept else None)


def test_without_a_fence_the_scale_call_has_no_deadline_but_its_own() -> None:
    target = FakeTarget(status_value=TargetStatus(count=2))
    _reconciler(FakeSource({"sum(load)": 60.0}), target, MemoryStateStore()).evaluate(_policy())
    assert target.deadlines == [None]


def test_a_scale_up_is_recorded_before_the_call_so_a_crash_after_it_keeps_the_cooldown() -> None:
    state = MemoryStateStore()
    seen: list[datetime | None] = []

    class Recording(FakeTarget):
        def scale(
            self,
            count: int,
            *,
            reason: str,
            meta: Mapping[str, str],
            expected: int | None = None,
            deadline: float | None = None,
        ) -> None:
            seen.append(state.load("web", KEY).last_scaled_at)
            super().scale(count, reason=reason, meta=meta, expected=expected, deadline=deadline)

    target = Recording(status_value=TargetStatus(count=2))
    _reconciler(FakeSource({"sum(load)": 60.0}), target, state).evaluate(_policy())
    assert seen == [T0]


# --- grouped queries (templates) and checks carried over as unsupported ------------------


@dataclass
class GroupedSource(FakeSource):
    """A source answering grouped queries from `series`, counting the calls."""

    series: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)
    grouped: list[tuple[str, float]] = field(default_factory=list)

    def query_series(self, promql: str, *, reuse: float = 0.0) -> SeriesSet:
        self.grouped.append((promql, reuse))
        return SeriesSet(query=promql, series=self.series.get(promql, []))


GROUPED = "sum by (job) (rate(requests_total[2m]))"


def _grouped_policy(job: str, **overrides: object) -> Policy:
    check = Check(
        name="rps",
        strategy=Strategy.PER_INSTANCE,
        query=GROUPED,
        target=10.0,
        select=(("job", job),),
    )
    return _policy(name=job, target=AsgTarget(asg=job), checks=(check,), **overrides)


def test_a_grouped_check_reads_its_own_series_reusable_for_one_interval() -> None:
    source = GroupedSource(series={GROUPED: [({"job": "web"}, 80.0), ({"job": "api"}, 5.0)]})
    target, state = FakeTarget(), MemoryStateStore()
    evaluation = _reconciler(source, target, state).evaluate(
        _grouped_policy("web", interval=timedelta(seconds=10))
    )
    assert evaluation.decision.action is Action.UP
    assert evaluation.decision.checks[0].value == 80.0
    assert source.grouped == [(GROUPED, 10.0)]
    assert source.asked == []  # no single-series query


def test_a_target_missing_from_the_grouped_result_holds_and_never_scales_in() -> None:
    source = GroupedSource(series={GROUPED: [({"job": "api"}, 0.0)]})
    target = FakeTarget(status_value=TargetStatus(count=6))
    evaluation = _reconciler(source, target, MemoryStateStore()).evaluate(_grouped_policy("web"))
    assert evaluation.decision.action is Action.HOLD
    assert evaluation.decision.desired == 6
    assert "no series with job='web'" in (evaluation.decision.checks[0].error or "")
    assert target.scaled == []


def test_a_target_matched_by_several_series_fails_as_ambiguous() -> None:
    source = GroupedSource(
        series={GROUPED: [({"job": "web", "i": "1"}, 1.0), ({"job": "web", "i": "2"}, 1.0)]}
    )
    target = FakeTarget(status_value=TargetStatus(count=6))
    evaluation = _reconciler(source, target, MemoryStateStore()).evaluate(_grouped_policy("web"))
    assert evaluation.decision.action is Action.HOLD
    assert "ambiguous" in (evaluation.decision.checks[0].error or "")
    assert target.scaled == []


@dataclass
class DecodingSource(GroupedSource):
    """A source answering every grouped query with `answer` (a `data.result` of
    Prometheus, its series already paired or not) decoded as `PrometheusSource` does."""

    answer: list[object] = field(default_factory=list)

    def query_series(self, promql: str, *, reuse: float = 0.0) -> SeriesSet:
        return series_set(promql, "vector", self.answer)


def test_a_target_whose_series_is_a_native_histogram_holds_the_others_scale() -> None:
    # Before, one histogram series in the grouped answer failed it for every target.
    answer: list[object] = [
        ({"job": "web"}, 80.0),
        {"metric": {"job": "api"}, "histogram": [1, {"count": "3", "sum": "1", "buckets": []}]},
    ]
    source = DecodingSource(answer=answer)
    target = FakeTarget(status_value=TargetStatus(count=6))
    api = _reconciler(source, target, MemoryStateStore()).evaluate(_grouped_policy("api"))
    assert (api.decision.action, api.decision.desired) == (Action.HOLD, 6)
    assert "is unusable: a native histogram, not a number" in (api.decision.checks[0].error or "")
    assert target.scaled == []
    web = _reconciler(source, target, MemoryStateStore()).evaluate(_grouped_policy("web"))
    assert web.decision.action is Action.UP


def test_an_unsupported_check_fails_every_time_without_a_query_and_blocks_scale_in() -> None:
    unsupported = Check(
        name="cpu",
        strategy=Strategy.PASS_THROUGH,
        query="avg_cpu",
        unsupported="unsupported: the Nomad APM is not read here",
    )
    load = Check(name="load", strategy=Strategy.PER_INSTANCE, query="sum(load)", target=10.0)
    source = FakeSource({"sum(load)": 10.0})
    target = FakeTarget(status_value=TargetStatus(count=4))
    evaluation = _reconciler(source, target, MemoryStateStore()).evaluate(
        _policy(checks=(load, unsupported))
    )
    assert source.asked == ["sum(load)"]
    assert evaluation.decision.action is Action.NONE  # 1 wanted, but scale-in is blocked
    assert evaluation.decision.desired == 4
    failed = evaluation.decision.checks[1]
    assert failed.error == "unsupported: the Nomad APM is not read here"
    assert any("scale-down blocked" in r for r in evaluation.decision.reasons)


# --- the preview of a target that cannot be read (plan) -----------------------------------


def _two_checks() -> tuple[Check, ...]:
    return (
        Check(name="load", strategy=Strategy.PER_INSTANCE, query="sum(load)", target=10.0),
        Check(name="p95", strategy=Strategy.TARGET_VALUE, query="p95", target=0.25),
        Check(name="floor", strategy=Strategy.FIXED, count=3),
    )


def test_a_preview_runs_every_check_when_the_target_cannot_be_read() -> None:
    source = FakeSource({"sum(load)": 73.0, "p95": 0.5})
    target = FakeTarget(status_value=TargetError("AccessDenied: not authorized"))
    evaluation = _reconciler(source, target, MemoryStateStore()).evaluate(
        _policy(checks=_two_checks()), dry_run=True, apply=False
    )
    d = evaluation.decision
    assert (d.action, d.current, d.desired) == (Action.HOLD, None, None)
    assert evaluation.error_kind == "target" and "AccessDenied" in (evaluation.error or "")
    assert d.reasons[0] == evaluation.error
    assert sorted(source.asked) == ["p95", "sum(load)"]
    load, p95, floor = d.checks
    assert (load.value, load.desired, load.error) == (73.0, 8, None)
    assert (p95.value, p95.desired) == (0.5, None)
    assert "needs the current count, which is unknown" in (p95.error or "")
    assert (floor.desired, floor.error) == (3, None)
    assert "the checks ask for at most 8 (8 within bounds 1..20)" in d.reasons[-1]
    assert target.scaled == []


def test_the_service_still_queries_nothing_for_a_target_it_cannot_read() -> None:
    source = FakeSource({"sum(load)": 73.0, "p95": 0.5})
    target = FakeTarget(status_value=TargetError("AccessDenied"))
    state = MemoryStateStore()
    evaluation = _reconciler(source, target, state).evaluate(_policy(checks=_two_checks()))
    assert evaluation.decision.action is Action.HOLD
    assert evaluation.decision.current is None and evaluation.decision.desired is None
    assert source.asked == [] and target.scaled == []
    assert all(c.desired is None for c in evaluation.decision.checks)


def test_a_preview_shows_the_checks_of_a_target_that_is_not_ready() -> None:
    source = FakeSource({"sum(load)": 73.0})
    target = FakeTarget(status_value=TargetStatus(count=4, ready=False, not_ready_reason="busy"))
    preview = _reconciler(source, target, MemoryStateStore()).evaluate(
        _policy(), dry_run=True, apply=False
    )
    assert preview.decision.action is Action.HOLD and preview.decision.desired == 4
    assert preview.decision.checks[0].value == 73.0
    service = _reconciler(FakeSource(), target, MemoryStateStore()).evaluate(_policy())
    assert service.decision.checks[0].value is None  # the service spares Prometheus


def test_a_decision_the_database_refuses_is_never_reported_as_recorded() -> None:
    # The database breaks between the evaluation's start and its record: the first
    # decision it refuses must say so (a log line without it claims a durable record),
    # and the version kept to write later says so too.
    class BreaksAtTheRecord(UnwritableStore):
        def record(self, decision: Decision) -> None:
            self.broken = "database is locked"
            raise StateError(f"state database s.db: {self.broken}")

    durable = BreaksAtTheRecord()
    state = LayeredStateStore(durable, retry_after=60.0)
    source, target = FakeSource({"sum(load)": 60.0}), FakeTarget(status_value=TargetStatus(count=2))
    evaluation = _reconciler(source, target, state).evaluate(_policy())
    assert evaluation.scaled and [s[0] for s in target.scaled] == [6]
    assert (evaluation.error_kind, evaluation.ok) == ("state", False)
    said = (
        "state not durable (state database s.db: database is locked): this decision is kept "
        "in memory only, and every change is held until it can be recorded"
    )
    assert evaluation.decision.reasons[-1] == said
    assert [d.reasons[-1] for d in state.history()] == [said]
    assert durable.history() == []


def test_a_decision_is_in_the_history_before_the_evaluation_returns() -> None:
    durable = UnwritableStore()
    state = LayeredStateStore(durable)
    source, target = FakeSource({"sum(load)": 60.0}), FakeTarget(status_value=TargetStatus(count=2))
    evaluation = _reconciler(source, target, state).evaluate(_policy())
    assert evaluation.ok and evaluation.scaled
    assert durable.history() == [evaluation.decision]
    assert durable.load("web", KEY).last_scaled_at == T0


def test_a_forecasts_reason_is_scrubbed_like_the_checks_error() -> None:
    """A forecast without history says why, quoting the range query's error, which may
    quote the request back: it is masked like every other text of an evaluation."""
    token = "prom-token-5f0c2b1e-history"
    redact.register(token)
    reading = ForecastReading(
        value=None, lead=timedelta(minutes=3), reason=f"history unavailable: echoed {token}"
    )
    check = CheckResult(name="rps", query="q", value=5.0, desired=1, error=None, forecast=reading)
    decision = Decision(
        policy="web",
        target="aws-asg:web",
        time=datetime(2026, 1, 1, tzinfo=UTC),
        current=1,
        desired=1,
        action=Action.NONE,
        dry_run=False,
        reasons=(),
        checks=(check,),
    )
    (shown,) = scrubbed(Evaluation(decision=decision)).decision.checks
    assert shown.forecast is not None
    assert shown.forecast.reason == "history unavailable: echoed ***"


def test_scrubbing_keeps_every_field_of_an_evaluation() -> None:
    """`scrubbed` hands back the evaluation itself when there is nothing to mask, and
    otherwise a copy with every other field, present and future, unchanged."""
    token = "prom-token-9a1d-every-field"
    redact.register(token)
    decision = Decision(
        policy="web",
        target="aws-asg:web",
        time=datetime(2026, 1, 1, tzinfo=UTC),
        current=1,
        desired=2,
        action=Action.UP,
        dry_run=False,
        reasons=("load: 9 / 4 per instance → 3", "limit up +1: 3 capped to 2"),
        checks=(CheckResult(name="rps", query="q", value=9.0, desired=3, error=None),),
    )
    evaluation = Evaluation(
        decision=decision,
        error="scale failed",
        error_kind="scale",
        scaled=True,
        status=TargetStatus(count=1),
        duration=0.5,
        query_seconds=(("rps", 0.01),),
    )
    assert set(Evaluation.__dataclass_fields__) == set(vars(evaluation))  # all set above
    assert scrubbed(evaluation) is evaluation
    leaky = replace(evaluation, decision=replace(decision, reasons=(f"echo {token}",)))
    assert scrubbed(leaky) == replace(leaky, decision=replace(decision, reasons=("echo ***",)))


@pytest.mark.parametrize("log_unchanged", [True, False], ids=["all", "changes"])
def test_log_decisions_changes_leaves_out_only_the_plain_none_lines(
    caplog: pytest.LogCaptureFixture, log_unchanged: bool
) -> None:
    """`--log-decisions changes`: no line for a decision to stay, without any error; every
    scale, hold and failure is logged, and every decision is recorded either way."""
    source, target, state = FakeSource({"sum(load)": 40.0}), FakeTarget(), MemoryStateStore()

    def reconciler(now: datetime) -> Reconciler:
        return Reconciler(
            source=source,
            targets=lambda _ref: target,
            state=state,
            clock=lambda: now,
            log_unchanged=log_unchanged,
        )

    steps: list[tuple[float | Exception, Action]] = [
        (40.0, Action.NONE),  # 4 instances carry 40: stay
        (80.0, Action.UP),
        (80.0, Action.HOLD),  # the fake target still reads 4, inside the cooldown up
        (QueryError("no series"), Action.HOLD),  # a failed check
    ]
    with caplog.at_level("INFO", logger="autoscaler.decisions"):
        for i, (value, action) in enumerate(steps):
            source.values["sum(load)"] = value
            assert (
                reconciler(T0 + timedelta(seconds=20 * i)).evaluate(_policy()).decision.action
                is action
            )
    logged = [r.action for r in caplog.records if r.name == "autoscaler.decisions"]  # type: ignore[attr-defined]
    expected = ["none", "up", "hold", "hold"] if log_unchanged else ["up", "hold", "hold"]
    assert logged == expected
    assert len(state.history()) == 4


def test_prepare_builds_the_enabled_policies_targets_and_survives_one_that_cannot_be_built() -> (
    None
):
    built: list[str] = []

    def targets(ref: TargetRef) -> ScalingTarget:
        assert isinstance(ref, AsgTarget)
        if ref.asg == "broken":
            raise TargetError("no AWS region: set target.region or AWS_REGION")
        built.append(ref.asg)
        return FakeTarget()

    reconciler = Reconciler(source=FakeSource({}), targets=targets, state=MemoryStateStore())
    reconciler.prepare(
        [
            _policy(name="a", target=AsgTarget(asg="a")),
            _policy(name="off", target=AsgTarget(asg="off"), enabled=False),
            _policy(name="broken", target=AsgTarget(asg="broken")),
            _policy(name="b", target=AsgTarget(asg="b")),
        ]
    )

    assert built == ["a", "b"]


def test_a_last_action_recorded_far_in_the_future_is_counted_from_now_and_corrected() -> None:
    # Written while a clock was 2 h ahead, then stepped back: the stores keep the latest
    # time, so the cooldown held every change for 2 h (nothing counted down meanwhile).
    source, target, state = FakeSource({"sum(load)": 80.0}), FakeTarget(), MemoryStateStore()
    key = AsgTarget(asg="web").key
    state.save("web", key, Memory(last_scaled_at=T0 + timedelta(hours=2)))
    held = _reconciler(source, target, state).evaluate(_policy())
    assert held.decision.action is Action.HOLD
    assert "cooldown up: 1 min left" in held.decision.reasons[-1]
    assert state.load("web", key).last_scaled_at == T0  # corrected in the state
    later = _reconciler(source, target, state, now=T0 + timedelta(seconds=61)).evaluate(_policy())
    assert later.decision.action is Action.UP and [s[0] for s in target.scaled] == [8]


def test_a_last_action_a_little_in_the_future_still_counts_whole() -> None:
    source, target, state = FakeSource({"sum(load)": 80.0}), FakeTarget(), MemoryStateStore()
    key = AsgTarget(asg="web").key
    state.save("web", key, Memory(last_scaled_at=T0 + timedelta(seconds=10)))
    held = _reconciler(source, target, state).evaluate(_policy())
    assert "cooldown up: 1 min 10 s left" in held.decision.reasons[-1]
    assert state.load("web", key).last_scaled_at == T0 + timedelta(seconds=10)
