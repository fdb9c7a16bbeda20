"""The scheduler: own interval per policy, no overlap with itself, slow ones delay nobody,
triggers run a fresh evaluation, and stop() waits for the evaluations in flight."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from autoscaler.model import Action, AsgTarget, Check, Decision, Policy, Strategy
from autoscaler.reconciler import Evaluation
from autoscaler.scheduler import Scheduler
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
