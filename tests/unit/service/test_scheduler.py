"""The scheduler: own interval per policy, no overlap with itself, slow ones delay nobody,
triggers run a fresh evaluation, and stop() waits for the evaluations in flight."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from autoscaler.api.http import ApiError
from autoscaler.core.model import Action, AsgTarget, Check, Decision, Memory, Policy, Strategy
from autoscaler.core.ports import MetricSource, StateStore
from autoscaler.engine.reconciler import Evaluation, Reconciler
from autoscaler.service.controller import Controller
from autoscaler.service.notify import Notifier
from autoscaler.service.registry import PolicyRegistry
from autoscaler.service.scheduler import Scheduler
from autoscaler.service.telemetry import Telemetry
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


class _Recorder:
    """An evaluate function that records calls and concurrency, optionally slowly."""

    def __init__(self, delays: dict[str, float] | None = None) -> None:
        self.delays = delays or {}
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
            self.started.append((policy.name, time.monotonic()))
            self.running[policy.name] += 1
            self.max_running[policy.name] = max(
                self.max_running[policy.name], self.running[policy.name]
            )
        time.sleep(self.delays.get(policy.name, 0.0))
        with self.lock:
            self.running[policy.name] -= 1
        return _evaluation(policy)


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


def test_each_policy_runs_on_its_own_interval(running: Callable[..., Scheduler]) -> None:
    recorder = _Recorder()
    running(recorder, [_policy("fast", 0.02), _policy("slow", 10)])
    wait_until(lambda: recorder.calls["fast"] >= 5, timeout=5, what="fast runs")
    assert recorder.calls["slow"] == 1


def test_a_policy_never_overlaps_with_itself(running: Callable[..., Scheduler]) -> None:
    recorder = _Recorder(delays={"web": 0.05})
    scheduler = running(recorder, [_policy("web", 0.001)], workers=4)
    for _ in range(10):
        scheduler.trigger("web")
    wait_until(lambda: recorder.calls["web"] >= 5, timeout=5, what="runs")
    assert recorder.max_running["web"] == 1


def test_a_slow_policy_does_not_delay_the_others(running: Callable[..., Scheduler]) -> None:
    recorder = _Recorder(delays={"slow": 1.0})
    running(recorder, [_policy("slow", 0.01), _policy("fast", 0.02)], workers=2)
    wait_until(lambda: recorder.calls["fast"] >= 5, timeout=0.9, what="fast runs")
    assert recorder.calls["slow"] == 1


def test_a_trigger_returns_a_fresh_evaluation(running: Callable[..., Scheduler]) -> None:
    recorder = _Recorder(delays={"web": 0.2})
    scheduler = running(recorder, [_policy("web", 60)])
    wait_until(lambda: recorder.calls["web"] == 1, timeout=5, what="the first run")
    asked = time.monotonic()
    future = scheduler.trigger("web")  # while the first run is still in flight
    assert future is not None
    evaluation = future.result(timeout=5)
    assert evaluation.decision.policy == "web"
    assert recorder.calls["web"] == 2
    assert recorder.started[-1][1] >= asked
    fresh_since = recorder.fresh[-1][1]
    assert fresh_since is not None
    assert fresh_since >= asked  # its queries must be sent after the trigger
    assert recorder.fresh[0][1] is None  # a scheduled run takes recent answers
    assert scheduler.trigger("unknown") is None


def test_disabled_and_removed_policies_are_not_scheduled(
    running: Callable[..., Scheduler],
) -> None:
    recorder = _Recorder()
    scheduler = running(recorder, [_policy("a", 0.02), _policy("off", 0.02, enabled=False)])
    wait_until(lambda: recorder.calls["a"] >= 2, timeout=5, what="runs of a")
    scheduler.set_policies([_policy("b", 0.02)])
    seen = recorder.calls["a"]
    wait_until(lambda: recorder.calls["b"] >= 3, timeout=5, what="runs of b")
    assert recorder.calls["a"] <= seen + 1  # at most the one in flight
    assert recorder.calls["off"] == 0
    assert scheduler.view("a") is None


def test_stop_waits_for_evaluations_in_flight() -> None:
    recorder = _Recorder(delays={"web": 0.3})
    scheduler = Scheduler(recorder)
    scheduler.set_policies([_policy("web", 60)])
    thread = threading.Thread(target=scheduler.run)
    thread.start()
    wait_until(lambda: recorder.running["web"] == 1, timeout=5, what="an evaluation in flight")
    scheduler.stop()
    thread.join(5)
    assert recorder.running["web"] == 0
    assert scheduler.trigger("web") is None


def test_a_crash_is_reported_and_the_policy_keeps_its_schedule(
    running: Callable[..., Scheduler],
) -> None:
    results: list[Evaluation | None] = []
    calls = Counter[str]()

    def crashing(policy: Policy, _fresh_since: float | None) -> Evaluation:
        calls[policy.name] += 1
        raise RuntimeError("bug")

    running(crashing, [_policy("web", 0.02)], on_result=lambda _p, e: results.append(e))
    wait_until(lambda: calls["web"] >= 3, timeout=5, what="runs after a crash")
    assert results[0] is None


@pytest.mark.parametrize("removal", ["disabled", "file deleted"])
def test_a_policy_removed_and_re_added_while_running_does_not_overlap(
    running: Callable[..., Scheduler], removal: str
) -> None:
    release = threading.Event()
    lock = threading.Lock()
    active = Counter[str]()
    most = Counter[str]()
    seen: list[Policy] = []

    def slow_first(policy: Policy, _fresh_since: float | None) -> Evaluation:
        with lock:
            seen.append(policy)
            active[policy.name] += 1
            most[policy.name] = max(most[policy.name], active[policy.name])
            first = len(seen) == 1
        if first:
            release.wait(5)
        with lock:
            active[policy.name] -= 1
        return _evaluation(policy)

    scheduler = running(slow_first, [_policy("web", 60)], workers=4)
    wait_until(lambda: len(seen) == 1, timeout=5, what="the first, slow run")
    # enabled: true -> false -> true (or the file deleted and restored) within that run
    scheduler.set_policies([_policy("web", 60, enabled=False)] if removal == "disabled" else [])
    assert scheduler.trigger("web") is None  # not scheduled while removed
    scheduler.set_policies([_policy("web", 60, description="back")])
    time.sleep(0.3)
    assert len(seen) == 1, "re-added policy started while its previous run was in flight"
    view = scheduler.view("web")
    assert view is not None
    assert view.running  # the old run is still in flight
    release.set()
    wait_until(lambda: len(seen) == 2, timeout=2, what="the re-added policy's run")
    assert seen[1].description == "back"
    assert most["web"] == 1


def test_a_crash_replaces_the_last_evaluation_shown(running: Callable[..., Scheduler]) -> None:
    crash = threading.Event()

    def flaky(policy: Policy, _fresh_since: float | None) -> Evaluation:
        if crash.is_set():
            raise RuntimeError("bug")
        return _evaluation(policy)

    def last() -> Evaluation | None:
        view = scheduler.view("web")
        return view.last if view else None

    scheduler = running(flaky, [_policy("web", 0.02)], dry_run=True)
    wait_until(lambda: last() is not None, timeout=5, what="a first evaluation")
    crash.set()
    wait_until(lambda: (e := last()) is not None and e.error_kind == "crash", timeout=5)
    crashed = last()
    assert crashed is not None
    assert crashed.error == "evaluation crashed: RuntimeError: bug"
    assert crashed.decision.action is Action.HOLD
    assert crashed.decision.reasons == ("evaluation crashed: RuntimeError: bug",)
    assert crashed.decision.dry_run is True
    assert (crashed.decision.current, crashed.decision.desired) == (None, None)
    future = scheduler.trigger("web")
    assert future is not None
    with pytest.raises(RuntimeError, match="bug"):  # a trigger still sees the crash itself
        future.result(timeout=5)


# --- the controller: what the API shows of a crash, and why a trigger was refused -----------


class _CrashingReconciler:
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
        with pytest.raises(ApiError) as failed:
            controller.evaluate("web", preview=False)
        assert failed.value.status == 500
    finally:
        controller.scheduler.stop()
        thread.join(5)


def test_a_refused_trigger_says_why(tmp_path: Path) -> None:
    controller = _controller(tmp_path)
    controller.registry.reload()  # a reload between swapping the registry and the scheduler
    with pytest.raises(ApiError) as mid_swap:
        controller.evaluate("web", preview=False)
    assert mid_swap.value.status == 503
    assert "try again" in mid_swap.value.detail
    assert mid_swap.value.headers == {"Retry-After": "1"}
    with pytest.raises(ApiError) as unknown:
        controller.evaluate("nope", preview=False)
    assert unknown.value.status == 404
    controller.scheduler.set_policies(controller.registry.policies())
    controller.scheduler.stop()
    with pytest.raises(ApiError) as stopping:
        controller.evaluate("web", preview=False)
    assert (stopping.value.status, stopping.value.detail) == (503, "the service is shutting down")
    assert "Retry-After" not in stopping.value.headers
