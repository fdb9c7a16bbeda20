"""The scheduler: own interval per policy, no overlap with itself, slow ones delay nobody,
triggers run a fresh evaluation, and stop() waits for the evaluations in flight."""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from autoscaler.core.model import (
    Action,
    AsgTarget,
    Check,
    Decision,
    Memory,
    Policy,
    Source,
    Strategy,
)
from autoscaler.core.ports import MetricSource, StateStore
from autoscaler.engine.evaluation import Evaluation
from autoscaler.engine.reconciler import Reconciler
from autoscaler.errors import EvaluationFailed, PolicyNotFound, ServiceBusy, ShuttingDown
from autoscaler.service.controller import Controller
from autoscaler.service.notify import Notifier
from autoscaler.service.registry import PolicyRegistry
from autoscaler.service.scheduler import LANE_STUCK, TRIGGER_GAP, Scheduler, next_tick
from autoscaler.service.telemetry import Telemetry
from tests.support.controllers import StubReconciler
from tests.support.net import wait_until


def _policy(name: str, interval: float = 0.05, **kwargs: object) -> Policy:
    return Policy(
        name=name,
        target=AsgTarget(asg=name),
        min=1,
        max=5,
        checks=(Check(name="c", strategy=Strategy.FIXED, count=2),),
        interval=timedelta(seconds=interval),
        **kwargs,  # type: ignore[arg-type]
    )


def _evaluation(policy: Policy) -> Evaluation:
    decision = Decision(
        policy=policy.name,
        target=str(policy.target),
        time=datetime.now(UTC),
        current=2,
        desired=2,
        action=Action.NONE,
        dry_run=False,
        reasons=("steady",),
    )
    return Evaluation(decision=decision)


class FakeTime:
    """A monotonic clock the test moves by hand: scheduling tests never sleep."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class _Recorder:
    """An evaluate function that records calls, their (fake) start times and concurrency.

    `hold[name]`, when set, is an Event the evaluation of `name` waits for, so tests with
    real threads control how long an evaluation is in flight without sleeping.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.hold: dict[str, threading.Event] = {}
        self.during: dict[str, Callable[[], None]] = {}
        self.calls: Counter[str] = Counter()
        self.started: list[tuple[str, float]] = []
        self.running: Counter[str] = Counter()
        self.max_running: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.fresh: list[tuple[str, float | None]] = []

    def __call__(self, policy: Policy, fresh_since: float | None = None) -> Evaluation:
        with self.lock:
            self.fresh.append((policy.name, fresh_since))
            self.calls[policy.name] += 1
            self.started.append((policy.name, self.clock()))
            self.running[policy.name] += 1
            self.max_running[policy.name] = max(
                self.max_running[policy.name], self.running[policy.name]
            )
        during = self.during.pop(policy.name, None)
        if during is not None:
            during()
        if policy.name in self.hold:
            self.hold[policy.name].wait(5)
        with self.lock:
            self.running[policy.name] -= 1
        return _evaluation(policy)


def _stepped(
    evaluate: Callable[[Policy, float | None], Evaluation],
    policies: list[Policy],
    clock: FakeTime,
    **kwargs: Any,
) -> Scheduler:
    scheduler = Scheduler(evaluate, monotonic=clock, rng=random.Random(7), **kwargs)
    scheduler.set_policies(policies)
    return scheduler


def _advance(scheduler: Scheduler, clock: FakeTime, seconds: float, step: float = 0.5) -> None:
    """Move the fake clock forward in small steps, running whatever falls due."""
    for _ in range(round(seconds / step)):
        clock.advance(step)
        scheduler.run_due()


@pytest.fixture
def running() -> Iterator[Callable[..., Scheduler]]:
    """`running(evaluate, policies, **kwargs)`: a scheduler in a thread, stopped after."""
    started: list[tuple[Scheduler, threading.Thread]] = []

    def start(evaluate: _Recorder, policies: list[Policy], **kwargs: object) -> Scheduler:
        scheduler = Scheduler(evaluate, **kwargs)  # type: ignore[arg-type]
        scheduler.set_policies(policies)
        thread = threading.Thread(target=scheduler.run, daemon=True)
        thread.start()
        started.append((scheduler, thread))
        return scheduler

    yield start
    for scheduler, thread in started:
        scheduler.stop()
        thread.join(5)


def test_each_policy_runs_on_its_own_interval() -> None:
    clock = FakeTime()
    recorder = _Recorder(clock)
    scheduler = _stepped(recorder, [_policy("fast", 20), _policy("slow", 600)], clock)
    assert scheduler.run_due() == 2  # new policies are due at once
    _advance(scheduler, clock, 300)
    assert 14 <= recorder.calls["fast"] <= 18  # 1 + 300 s / 20 s, give or take the jitter
    assert recorder.calls["slow"] == 1


def test_jitter_spreads_runs_within_ten_percent_of_the_interval() -> None:
    clock = FakeTime()
    recorder = _Recorder(clock)
    scheduler = _stepped(recorder, [_policy("web", 100)], clock)
    scheduler.run_due()
    _advance(scheduler, clock, 3000, step=0.1)
    starts = [at for name, at in recorder.started if name == "web"]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) >= 25
    assert all(89.9 <= gap <= 110.2 for gap in gaps), gaps
    assert max(gaps) - min(gaps) > 5  # spread, not a fixed beat


def test_the_next_run_is_shown_in_scheduling_time() -> None:
    clock = FakeTime()
    scheduler = _stepped(_Recorder(clock), [_policy("web", 60)], clock, jitter=0.0)
    scheduler.run_due()
    clock.advance(15)
    view = scheduler.view("web")
    assert view is not None and not view.running
    assert view.next_in == pytest.approx(45)


def test_a_closed_gate_dispatches_nothing_and_due_policies_run_once_it_opens() -> None:
    clock = FakeTime()
    recorder = _Recorder(clock)
    leading = [False]
    scheduler = _stepped(recorder, [_policy("web", 10)], clock, gate=lambda: leading[0])
    _advance(scheduler, clock, 60)
    assert recorder.calls["web"] == 0  # a standby evaluates nothing
    leading[0] = True
    assert scheduler.run_due() == 1  # the new leader runs what is due at once
    leading[0] = False
    _advance(scheduler, clock, 60)
    assert recorder.calls["web"] == 1


def test_a_policy_never_overlaps_with_itself(running: Callable[..., Scheduler]) -> None:
    recorder = _Recorder()
    recorder.hold["web"] = threading.Event()
    scheduler = running(recorder, [_policy("web", 3600)], workers=4)
    wait_until(lambda: recorder.running["web"] == 1, timeout=5, what="the first run")
    futures = [scheduler.trigger("web") for _ in range(10)]
    recorder.hold["web"].set()
    for future in futures:
        assert future is not None
        future.result(timeout=5)
    assert recorder.max_running["web"] == 1
    assert recorder.calls["web"] == 2  # ten triggers during one run: one more run answers all


def test_a_slow_policy_does_not_delay_the_others(running: Callable[..., Scheduler]) -> None:
    recorder = _Recorder()
    recorder.hold["slow"] = threading.Event()
    try:
        running(recorder, [_policy("slow", 0.01), _policy("fast", 0.02)], workers=2)
        wait_until(lambda: recorder.calls["fast"] >= 5, timeout=5, what="fast runs")
        assert recorder.calls["slow"] == 1
    finally:
        recorder.hold["slow"].set()


def test_a_trigger_returns_a_fresh_evaluation() -> None:
    clock = FakeTime()
    recorder = _Recorder(clock)
    scheduler = _stepped(recorder, [_policy("web", 60)], clock)
    triggered: list[Any] = []

    def trigger_in_flight() -> None:
        clock.advance(0.2)
        triggered.append((clock(), scheduler.trigger("web")))

    recorder.during["web"] = trigger_in_flight
    scheduler.run_due()  # the first run; a trigger arrives while it is in flight
    asked, future = triggered[0]
    assert future is not None and future.done()  # answered by a second run, right after
    assert future.result().decision.policy == "web"
    assert recorder.calls["web"] == 2
    assert recorder.started[-1][1] >= asked
    assert recorder.fresh[-1][1] == asked  # its queries must be sent after the trigger
    assert recorder.fresh[0][1] is None  # a scheduled run takes recent answers
    assert scheduler.trigger("unknown") is None


def _saturated(clock: FakeTime, recorder: _Recorder, count: int = 200, **kwargs: Any) -> Scheduler:
    """`count` policies that all ran once and are now all overdue: a loop that cannot keep up."""
    scheduler = _stepped(recorder, [_policy(f"p{i}", 10) for i in range(count)], clock, **kwargs)
    assert scheduler.run_due() == count
    clock.advance(30)  # every policy is 20 s late or more
    return scheduler


def test_a_triggered_run_jumps_a_saturated_queue() -> None:
    clock = FakeTime()
    recorder = _Recorder(clock)
    scheduler = _saturated(clock, recorder)
    ran_before = len(recorder.started)
    future = scheduler.trigger("p150")
    assert future is not None
    scheduler.run_due()
    order = [name for name, _ in recorder.started[ran_before:]]
    assert order[0] == "p150"  # next, ahead of 199 overdue scheduled runs
    assert future.result(timeout=0).decision.policy == "p150"
    assert sorted(order[1:]) == sorted(f"p{i}" for i in range(200) if i != 150)
    assert order.count("p150") == 1  # the trigger replaced its scheduled run


def test_triggers_run_in_the_order_they_came_then_the_backlog_by_due_time() -> None:
    clock = FakeTime()
    recorder = _Recorder(clock)
    scheduler = _saturated(clock, recorder, count=50)
    ran_before = len(recorder.started)
    scheduler.trigger("p40")
    clock.advance(0.01)
    scheduler.trigger("p3")
    scheduler.set_policies(
        [_policy(f"p{i}", 10, description="edited" if i == 40 else "") for i in range(50)]
    )  # a reload that changes a triggered policy keeps it ahead
    scheduler.run_due()
    order = [name for name, _ in recorder.started[ran_before:]]
    assert order[:2] == ["p40", "p3"]
    assert len(order) == 50


def test_a_trigger_during_a_run_is_answered_next_even_when_the_queue_is_saturated() -> None:
    clock = FakeTime()
    recorder = _Recorder(clock)
    scheduler = _saturated(clock, recorder, count=50, jitter=0.0)  # p0 is the first overdue
    futures: list[Any] = []
    # While p0 (the first overdue run) is in flight, an alert triggers p0 again and p30.
    recorder.during["p0"] = lambda: futures.extend(
        [scheduler.trigger("p0"), scheduler.trigger("p30")]
    )
    ran_before = len(recorder.started)
    scheduler.run_due()
    order = [name for name, _ in recorder.started[ran_before:]]
    assert order[:3] == ["p0", "p30", "p0"]  # both triggers, ahead of 48 overdue runs
    assert all(f is not None and f.done() for f in futures)


def test_a_storm_of_triggers_does_not_starve_the_scheduled_runs() -> None:
    """Two alerts notified again and again (a storm: notifications during every run, one
    worker here) reran their policies ahead of every scheduled run for as long as it
    lasted: with as many stormed policies as workers, nothing else ran. A policy jumps the
    queue for a trigger, but not twice in a row: after a run that jumped, its next fresh
    run waits its turn by due time (more triggers meanwhile keep its place)."""
    clock = FakeTime()
    recorder = _Recorder(clock)
    storm = {"left": 0}
    scheduler: Scheduler | None = None

    def evaluate(policy: Policy, fresh_since: float | None) -> Evaluation:
        evaluation = recorder(policy, fresh_since)
        clock.advance(0.01)
        if storm["left"] and scheduler is not None:
            storm["left"] -= 1
            assert scheduler.trigger("p10") is not None
            assert scheduler.trigger("p20") is not None
        return evaluation

    scheduler = _stepped(evaluate, [_policy(f"p{i}", 10) for i in range(50)], clock, jitter=0.0)
    assert scheduler.run_due() == 50
    clock.advance(30)  # every policy is 20 s late or more: a loop that cannot keep up
    storm["left"] = 300
    ran_before = len(recorder.started)
    futures = [scheduler.trigger("p10"), scheduler.trigger("p20")]
    scheduler.run_due()
    order = [name for name, _ in recorder.started[ran_before:]]
    assert order[:2] == ["p10", "p20"]  # the alerts are answered first
    backlog = sorted(f"p{i}" for i in range(50) if i not in (10, 20))
    assert sorted(order[2:50]) == backlog  # then the overdue runs, though the storm goes on
    assert all(f is not None and f.done() for f in futures)
    assert order.count("p10") == 1  # what came during its run waits for TRIGGER_GAP
    clock.advance(TRIGGER_GAP)
    scheduler.run_due()
    order = [name for name, _ in recorder.started[ran_before:]]
    assert order.count("p10") == order.count("p20") == 2  # one run for all of them


def test_a_storm_of_notifications_evaluates_its_policy_once_per_trigger_gap() -> None:
    """The same alert ten times a second for a minute evaluated its policy back to back
    (each run reading what the one before read, and writing one more decision, which
    pushed every other policy's out of the history): once per TRIGGER_GAP now, the
    last run reading data newer than the last notification."""
    clock = FakeTime()
    recorder = _Recorder(clock)
    scheduler = _stepped(recorder, [_policy("web", 3600)], clock)
    scheduler.run_due()
    ran_before, last = len(recorder.started), 0.0
    for _ in range(600):
        clock.advance(0.1)
        last = clock()
        assert scheduler.trigger("web") is not None
        scheduler.run_due()
    clock.advance(TRIGGER_GAP)
    scheduler.run_due()
    starts = [at for name, at in recorder.started[ran_before:]]
    assert len(starts) <= 60 / TRIGGER_GAP + 2, len(starts)
    assert all(b - a >= TRIGGER_GAP - 1e-9 for a, b in itertools.pairwise(starts))
    assert recorder.fresh[-1] == ("web", last)  # the last notification is answered


def _write_triggered(folder: Path, count: int) -> None:
    """`count` policy files p0, p1, ... that the alert `Slow` triggers."""
    for i in range(count):
        (folder / f"p{i}.yaml").write_text(
            f"name: p{i}\ntarget: {{type: aws-asg, asg: p{i}}}\nmin: 1\nmax: 5\ninterval: 1h\n"
            "triggers: {alerts: [Slow]}\nchecks:\n  - {name: c, strategy: fixed, count: 2}\n"
        )


def _triggered_controller(folder: Path) -> Controller:
    """A controller of the policy files in `folder`, loaded and scheduled; nothing runs."""
    controller = Controller(
        registry=PolicyRegistry([str(folder)]),
        reconciler=cast(Reconciler, StubReconciler()),
        state=cast(StateStore, _State()),
        source=cast(MetricSource, object()),
        telemetry=Telemetry(),
        notifier=Notifier([]),
    )
    controller.reload()
    return controller


def test_a_storm_of_notifications_on_a_saturated_loop_holds_no_memory_per_notification(
    tmp_path: Path,
) -> None:
    """Each policy an alert named kept a future (1.6 KB) and a queue entry until its run
    started, though nobody waits for an alert's run: a hundred notifications naming 200
    policies, while the loop could not keep up, held 35 MB. They are run once, as before."""
    _write_triggered(tmp_path, 200)
    controller = _triggered_controller(tmp_path)  # scheduled, never run: a loop that
    # cannot keep up
    notification = {"alerts": [{"status": "firing", "labels": {"alertname": "Slow"}}]}
    assert len(controller.alert(notification).triggered) == 200
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(100):
            controller.alert(notification)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 1_000_000, held
    assert controller.scheduler.queued() <= 2 * 200
    assert controller.scheduler.run_due() == 200  # each policy once for all of them


class _Standby:
    """A leadership that never leads (`--ha`, another replica holds the lease)."""

    clock = staticmethod(lambda: datetime.now(UTC))

    def may_dispatch(self) -> bool:
        return False

    def acting(self) -> bool:
        return False


def test_a_standby_counts_a_notification_and_triggers_nothing(tmp_path: Path) -> None:
    """As the README says: send alerts to every replica, the leader's copy acts; a
    standby's would otherwise run once it leads, long after the notification."""
    _write_triggered(tmp_path, 3)
    controller = Controller(
        registry=PolicyRegistry([str(tmp_path)]),
        reconciler=cast(Reconciler, StubReconciler()),
        state=cast(StateStore, _State()),
        source=cast(MetricSource, object()),
        telemetry=Telemetry(),
        notifier=Notifier([]),
        leadership=cast(Any, _Standby()),
    )
    controller.reload()
    queued = controller.scheduler.queued()
    answer = controller.alert({"alerts": [{"status": "firing", "labels": {"alertname": "Slow"}}]})
    assert (answer.received, answer.triggered) == (1, [])
    assert controller.scheduler.queued() == queued
    registry = controller.telemetry.registry
    assert registry.get_sample_value("autoscaler_alerts_received_total", {"status": "firing"})


def test_the_log_line_of_an_alert_names_a_hundred_policies_at_most(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An alert naming a template's thousands of policies wrote one line of hundreds of kB
    (log shippers split or cut such lines); the answer still lists every one."""
    _write_triggered(tmp_path, 250)
    controller = _triggered_controller(tmp_path)
    with caplog.at_level("INFO", logger="autoscaler.service"):
        answer = controller.alert({"alerts": [{"labels": {"alertname": "Slow"}}]})
    assert len(answer.triggered) == 250
    (line,) = [r.getMessage() for r in caplog.records if "trigger policies" in r.getMessage()]
    assert line.endswith(" and 150 more"), line[-80:]
    assert len(line) < 2000


def test_disabled_and_removed_policies_are_not_scheduled() -> None:
    clock = FakeTime()
    recorder = _Recorder(clock)
    policies = [_policy("a", 10), _policy("off", 10, enabled=False)]
    scheduler = _stepped(recorder, policies, clock)
    _advance(scheduler, clock, 30)
    assert recorder.calls["a"] >= 3
    scheduler.set_policies([_policy("b", 10)])
    seen = recorder.calls["a"]
    _advance(scheduler, clock, 30)
    assert recorder.calls["a"] == seen
    assert recorder.calls["b"] >= 3
    assert recorder.calls["off"] == 0
    assert scheduler.view("a") is None


def test_stop_waits_for_evaluations_in_flight() -> None:
    recorder = _Recorder()
    release = recorder.hold["web"] = threading.Event()
    scheduler = Scheduler(recorder)
    scheduler.set_policies([_policy("web", 60)])
    thread = threading.Thread(target=scheduler.run)
    thread.start()
    wait_until(lambda: recorder.running["web"] == 1, timeout=5, what="an evaluation in flight")
    scheduler.stop()
    thread.join(0.2)
    assert thread.is_alive()  # still waiting for the evaluation in flight
    release.set()
    thread.join(5)
    assert not thread.is_alive()
    assert recorder.running["web"] == 0
    assert scheduler.trigger("web") is None


def test_a_crash_is_reported_and_the_policy_keeps_its_schedule() -> None:
    clock = FakeTime()
    results: list[Evaluation | None] = []
    calls = Counter[str]()

    def crashing(policy: Policy, _fresh_since: float | None) -> Evaluation:
        calls[policy.name] += 1
        raise RuntimeError("bug")

    scheduler = _stepped(
        crashing, [_policy("web", 10)], clock, on_result=lambda _p, e: results.append(e)
    )
    _advance(scheduler, clock, 30)
    assert calls["web"] >= 3
    assert results[0] is None


@pytest.mark.parametrize("removal", ["disabled", "file deleted"])
def test_a_policy_removed_and_re_added_while_running_does_not_overlap(removal: str) -> None:
    clock = FakeTime()
    recorder = _Recorder(clock)
    scheduler = _stepped(recorder, [_policy("web", 60)], clock)
    nested: list[int] = []

    def remove_and_re_add() -> None:
        # enabled: true -> false -> true (or the file deleted and restored) within the run
        scheduler.set_policies([_policy("web", 60, enabled=False)] if removal == "disabled" else [])
        assert scheduler.trigger("web") is None  # not scheduled while removed
        scheduler.set_policies([_policy("web", 60, description="back")])
        view = scheduler.view("web")
        assert view is not None and view.running  # the old run is still in flight
        nested.append(scheduler.run_due())  # would start the re-added policy if it could

    recorder.during["web"] = remove_and_re_add
    scheduler.run_due()
    assert nested == [0], "re-added policy started while its previous run was in flight"
    assert recorder.calls["web"] == 2  # the re-added policy ran as soon as the old run ended
    assert recorder.max_running["web"] == 1


@pytest.mark.parametrize("how", ["renamed", "moved", "region-given"])
def test_a_policy_taking_over_a_target_waits_for_the_run_in_flight_of_the_one_gone_from_it(
    how: str,
) -> None:
    # A reload removes `web` while it runs and puts another policy on its target (a rename,
    # or one moved onto it): the drain waited by name, so the other one started at once and
    # two evaluations could scale the group together.
    clock = FakeTime()
    recorder = _Recorder(clock)
    other = _policy("other", 60)
    scheduler = _stepped(recorder, [_policy("web", 60), other], clock)
    scheduler.run_due()
    # "region-given": the same group, its region named on one side only (one target, as
    # `same_target` says; its key differs, which the block went by).
    region = "eu-west-3" if how == "region-given" else None
    taking_over = replace(
        _policy("other" if how == "moved" else "web-v2", 60),
        target=AsgTarget(asg="web", region=region),
    )
    nested: list[int] = []
    futures: list[object] = []

    def take_over() -> None:
        scheduler.set_policies([taking_over])
        future = scheduler.trigger(taking_over.name)  # an API trigger waits too
        assert future is not None
        futures.append(future)
        nested.append(scheduler.run_due())  # would start it if it could
        view = scheduler.view(taking_over.name)
        assert view is not None and not view.running

    recorder.during["web"] = take_over
    clock.advance(61)
    scheduler.run_due()
    assert nested == [0], "a policy started on a target while another's run was in flight"
    assert [name for name, _ in recorder.started[-2:]] == ["web", taking_over.name]
    (future,) = futures
    assert future.done()  # type: ignore[attr-defined]
    clock.advance(61)
    scheduler.run_due()  # then on its own schedule, as any other
    assert recorder.started[-1][0] == taking_over.name


def test_a_crash_replaces_the_last_evaluation_shown() -> None:
    clock = FakeTime()
    crash = False

    def flaky(policy: Policy, _fresh_since: float | None) -> Evaluation:
        if crash:
            raise RuntimeError("bug")
        return _evaluation(policy)

    scheduler = _stepped(flaky, [_policy("web", 10)], clock, dry_run=True)
    scheduler.run_due()
    view = scheduler.view("web")
    assert view is not None and view.last is not None and view.last.error is None
    crash = True
    _advance(scheduler, clock, 12)
    view = scheduler.view("web")
    assert view is not None
    crashed = view.last
    assert crashed is not None and crashed.error_kind == "crash"
    assert crashed.error == "evaluation crashed: RuntimeError: bug"
    assert crashed.decision.action is Action.HOLD
    assert crashed.decision.reasons == ("evaluation crashed: RuntimeError: bug",)
    assert crashed.decision.dry_run is True
    assert (crashed.decision.current, crashed.decision.desired) == (None, None)
    future = scheduler.trigger("web")
    assert future is not None
    scheduler.run_due()
    with pytest.raises(RuntimeError, match="bug"):  # a trigger still sees the crash itself
        future.result(timeout=0)


# --- the controller: what the API shows of a crash, and why a trigger was refused -----------


class _CrashingReconciler(StubReconciler):
    def evaluate(self, policy: Policy, *, dry_run: bool = False, apply: bool = True) -> Evaluation:
        raise RuntimeError("reconciler bug")


class _State:
    def load(self, policy: str, target_key: str) -> Memory:
        return Memory()

    def history(self, *, policy: str | None = None, limit: int = 100) -> list[Decision]:
        return []


def _controller(tmp_path: Path) -> Controller:
    (tmp_path / "web.yaml").write_text(
        "name: web\ntarget: {type: aws-asg, asg: web}\nmin: 1\nmax: 5\ninterval: 1h\n"
        "checks:\n  - {name: c, strategy: fixed, count: 2}\n"
    )
    return Controller(
        registry=PolicyRegistry([str(tmp_path)]),
        reconciler=cast(Reconciler, _CrashingReconciler()),
        state=cast(StateStore, _State()),
        source=cast(MetricSource, object()),
        telemetry=Telemetry(),
        notifier=Notifier([]),
    )


def test_the_api_shows_a_crashed_evaluation(tmp_path: Path) -> None:
    controller = _controller(tmp_path)
    controller.reload()
    thread = threading.Thread(target=controller.scheduler.run, daemon=True)
    thread.start()
    try:

        def shown() -> Any:
            return controller.get_policy("web")

        wait_until(lambda: shown().last_error_kind == "crash", timeout=5, what="the crash")
        web = shown()
        assert web.last_error == "evaluation crashed: RuntimeError: reconciler bug"
        assert web.last_decision is not None
        assert web.last_decision.action == "hold"
        assert web.last_decision.reasons == [web.last_error]
        with pytest.raises(EvaluationFailed, match="RuntimeError: reconciler bug"):
            asyncio.run(controller.evaluate("web", preview=False))
    finally:
        controller.scheduler.stop()
        thread.join(5)


def test_a_refused_trigger_says_why(tmp_path: Path) -> None:
    controller = _controller(tmp_path)
    controller.registry.reload()  # a reload between swapping the registry and the scheduler
    with pytest.raises(ServiceBusy, match="try again") as mid_swap:
        asyncio.run(controller.evaluate("web", preview=False))
    assert mid_swap.value.retry_after == 1
    with pytest.raises(PolicyNotFound, match="no policy named 'nope'"):
        asyncio.run(controller.evaluate("nope", preview=False))
    controller.scheduler.set_policies(controller.registry.policies())
    controller.scheduler.stop()
    with pytest.raises(ShuttingDown, match=r"^the service is shutting down$") as stopping:
        asyncio.run(controller.evaluate("web", preview=False))
    assert stopping.value.retry_after is None


# --- policies of one template share ticks ---------------------------------------------------


def _templated(name: str, line: int = 3, interval: float = 10.0) -> Policy:
    check = Check(
        name="rps",
        strategy=Strategy.PER_INSTANCE,
        query="sum by (job) (x)",
        target=1.0,
        select=(("job", name),),
    )
    return Policy(
        name=name,
        target=AsgTarget(asg=name),
        min=1,
        max=5,
        checks=(check,),
        interval=timedelta(seconds=interval),
        source=Source(file="policies/web.yaml", line=line),
    )


def test_policies_of_one_template_fall_due_together_on_its_ticks() -> None:
    clock = FakeTime()
    recorder = _Recorder(clock)
    policies = [_templated(f"job{i}") for i in range(20)]
    scheduler = _stepped(recorder, policies, clock, jitter=0.5)
    _advance(scheduler, clock, 95, step=0.25)
    assert set(recorder.calls.values()) == {recorder.calls["job0"]}
    assert recorder.calls["job0"] >= 9
    ticks = Counter(at for _, at in recorder.started)
    assert set(ticks.values()) == {20}  # every tick evaluates every target, nothing between
    # Each run reads no answer older than its own tick (when it fell due): one per tick.
    fresh = Counter(since for _, since in recorder.fresh)
    assert None not in fresh and set(fresh.values()) == {20} and len(fresh) == len(ticks)


def test_different_templates_tick_at_different_phases() -> None:
    one, other = _templated("a", line=3), _templated("b", line=40)
    assert next_tick(one, 1000.0) != next_tick(other, 1000.0)
    assert next_tick(one, 1000.0) - 1000.0 >= 2.5  # at least a quarter interval ahead
    assert next_tick(one, next_tick(one, 1000.0)) == pytest.approx(next_tick(one, 1000.0) + 10)


# --- the lane: runs of a grouped query, one worker at a time ----------------------------------


class _Concurrency(_Recorder):
    """A recorder that also counts how many runs of each kind are in flight at once."""

    def __init__(self, pause: float = 0.002) -> None:
        super().__init__()
        self.pause = pause
        self.now: Counter[str] = Counter()
        self.most: Counter[str] = Counter()

    def __call__(self, policy: Policy, fresh_since: float | None = None) -> Evaluation:
        kind = "grouped" if any(c.select for c in policy.checks) else "own"
        with self.lock:
            self.now[kind] += 1
            self.now["all"] += 1
            for k in (kind, "all"):
                self.most[k] = max(self.most[k], self.now[k])
        try:
            time.sleep(self.pause)  # gives the other workers every chance to overlap
            return super().__call__(policy, fresh_since)
        finally:
            with self.lock:
                self.now[kind] -= 1
                self.now["all"] -= 1


def test_runs_sharing_a_grouped_query_take_one_worker_at_a_time_others_run_beside(
    running: Callable[..., Scheduler],
) -> None:
    recorder = _Concurrency()
    recorder.hold["own"] = threading.Event()
    templated = [_templated(f"job{i}", interval=3600) for i in range(40)]
    try:
        running(recorder, [_policy("own", 3600), *templated], workers=4)
        wait_until(
            lambda: all(recorder.calls[p.name] == 1 for p in templated),
            timeout=10,
            what="every templated run",
        )
        assert recorder.running["own"] == 1  # still held: the lane ran beside it
    finally:
        recorder.hold["own"].set()
    assert recorder.most["grouped"] == 1
    assert recorder.most["all"] == 2


def test_the_lane_gets_help_once_its_oldest_run_waits_past_half_the_interval(
    running: Callable[..., Scheduler],
) -> None:
    recorder = _Concurrency(pause=0)
    recorder.hold["job0"] = threading.Event()  # a scale call that hangs
    templated = [_templated(f"job{i}", interval=0.4) for i in range(5)]  # lag 0.2 s
    try:
        running(recorder, templated, workers=3)
        wait_until(lambda: recorder.running["job0"] == 1, timeout=5, what="the stuck run")
        wait_until(
            lambda: all(recorder.calls[f"job{i}"] >= 1 for i in range(1, 5)),
            timeout=5,
            what="the others, by other workers",
        )
        assert recorder.running["job0"] == 1
    finally:
        recorder.hold["job0"].set()


def test_a_triggered_run_does_not_wait_for_a_busy_lane(
    running: Callable[..., Scheduler],
) -> None:
    recorder = _Concurrency(pause=0)
    recorder.hold["job0"] = threading.Event()
    templated = [_templated(f"job{i}", interval=3600) for i in range(2)]  # lag 5 s
    try:
        scheduler = running(recorder, templated, workers=2)
        wait_until(lambda: recorder.running["job0"] == 1, timeout=5, what="the busy lane")
        time.sleep(0.1)
        assert recorder.calls["job1"] == 0  # due, but waiting for the lane (5 s at most)
        started = time.monotonic()
        future = scheduler.trigger("job1")
        assert future is not None
        future.result(timeout=4)
        assert time.monotonic() - started < 2  # not the 5 s the lane would make it wait
        assert recorder.running["job0"] == 1
    finally:
        recorder.hold["job0"].set()


def test_a_lane_run_stuck_for_a_second_no_longer_holds_the_lane(
    running: Callable[..., Scheduler],
) -> None:
    recorder = _Concurrency(pause=0)
    recorder.hold["job0"] = threading.Event()  # a scale call that hangs
    templated = [_templated(f"job{i}", interval=3600) for i in range(4)]  # lag: 5 s
    try:
        started = time.monotonic()
        running(recorder, templated, workers=2)
        wait_until(
            lambda: all(recorder.calls[f"job{i}"] == 1 for i in range(1, 4)),
            timeout=4,
            what="the others, well before the 5 s lag",
        )
        assert time.monotonic() - started >= LANE_STUCK * 0.9  # not before it was stuck
        assert recorder.running["job0"] == 1
        assert recorder.most["grouped"] == 2  # the stuck one and the one going on
    finally:
        recorder.hold["job0"].set()
