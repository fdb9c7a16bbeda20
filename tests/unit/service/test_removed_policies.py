"""What the service keeps per policy or target shrinks back when policies go away.

Discovery and hot reloads add and remove policies all day: 200 cycles of churn must leave
every per-policy structure at its size before them. The durable memory of a removed policy
is kept for the retention (`service.retention`), so one that comes back soon still has its
cooldown, and is dropped after it, with a log line naming it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autoscaler.adapters.state import LayeredStateStore, SqliteStateStore
from autoscaler.adapters.state.schema import Dropped
from autoscaler.adapters.targets import TargetFactory
from autoscaler.adapters.targets.nomad_settings import NomadSettings
from autoscaler.adapters.targets.nomad_watch import JobWatch
from autoscaler.core.model import Check, NomadTarget, Policy, Strategy, TargetRef
from autoscaler.engine.evaluation import Evaluation
from autoscaler.service import retention
from autoscaler.service.controller import Controller
from autoscaler.service.notify import Notifier
from autoscaler.service.retention import RETENTION
from autoscaler.service.scheduler import Scheduler
from tests.support.controllers import RecordingTarget, SteadySource, controller_of

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CYCLES = 200


@dataclass
class _Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


def _policy(name: str, *, cooldown: str = "10m") -> str:
    return (
        f"name: {name}\ntarget: {{type: aws-asg, asg: {name}}}\nmin: 1\nmax: 10\n"
        f"interval: 1m\ncooldown: {{up: {cooldown}, down: {cooldown}}}\n"
        "anomaly: {window: 30m}\n"
        "checks:\n  - {name: load, query: 'sum(x)', strategy: per-instance, target: 10}\n"
    )


def _controller(
    folder: Path, state: LayeredStateStore, clock: _Clock, *, dry_run: bool = False
) -> tuple[Controller, dict[str, RecordingTarget]]:
    """A controller of the policies in `folder` whose every query answers 90 (with a target
    of 10 per instance, every policy scales up), and the targets it scaled, by key."""
    targets: dict[str, RecordingTarget] = {}

    def target(ref: TargetRef) -> RecordingTarget:
        return targets.setdefault(ref.key, RecordingTarget())

    controller = controller_of(
        folder,
        state,
        SteadySource(value=90.0),
        target,
        clock,
        # A closed port: the dry-run notices fail at once, their dedupe state is what counts.
        notifier=Notifier(["http://127.0.0.1:9/hook"], attempts=1, timeout=0.2),
        dry_run=dry_run,
    )
    return controller, targets


def _sizes(controller: Controller, state: LayeredStateStore) -> dict[str, object]:
    return {
        "histories": len(controller.reconciler.histories),
        "notices": len(controller.notifier._dry_said),
        "state in memory": state.sizes(),
    }


def test_policy_churn_leaves_the_service_memory_at_its_baseline(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    for name in ("web", "api"):
        (folder / f"{name}.yaml").write_text(_policy(name))
    state = LayeredStateStore(SqliteStateStore(tmp_path / "state.db"))
    clock = _Clock()
    controller, _ = _controller(folder, state, clock, dry_run=True)
    controller.reload()
    assert controller.scheduler.run_due() == 2
    baseline = _sizes(controller, state)

    for i in range(CYCLES):
        churned = folder / f"churn-{i}.yaml"
        churned.write_text(_policy(f"churn-{i}"))
        controller.reload()
        controller.scheduler.run_due()
        churned.unlink()
        controller.reload()

    assert _sizes(controller, state) == baseline
    # Stale queue entries are dropped once they are most of the queue (`_compact`).
    assert controller.scheduler.queued() <= 2 * 2 + 64 + 1
    controller.notifier.close(timeout=0)
    state.close()


def test_a_policy_added_back_within_the_retention_keeps_its_cooldown_and_loses_it_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "keep.yaml").write_text(_policy("keep"))
    (folder / "web.yaml").write_text(_policy("web", cooldown="1h"))
    state = LayeredStateStore(SqliteStateStore(tmp_path / "state.db"))
    # The database stamps what it writes with the wall clock: the test's starts there.
    start = datetime.now(UTC).replace(microsecond=0)
    clock = _Clock(start)
    controller, targets = _controller(folder, state, clock)
    controller.reload()
    controller.scheduler.run_due()
    assert targets["aws-asg/-/web"].scaled == [9]  # 90 / 10 per instance

    # Removed (its in-process memory goes at once), tidied a day later: the database keeps
    # it, and back it reads its cooldown there.
    text = (folder / "web.yaml").read_text()
    (folder / "web.yaml").unlink()
    controller.reload()
    assert state.sizes()[0] == 1  # only `keep` is known in memory
    clock.now = start + timedelta(minutes=10)
    controller.retention.tidy(force=True)
    (folder / "web.yaml").write_text(text)
    controller.reload()
    left = controller.get_policy("web").cooldown_remaining
    assert left.last_scaled_at == start
    assert left.down_seconds == pytest.approx(50 * 60)
    targets["aws-asg/-/web"].count = 1  # someone scaled it in: the cooldown still holds
    controller.scheduler.run_due()
    assert targets["aws-asg/-/web"].scaled == [9]
    last = controller.get_policy("web").last_decision
    assert last is not None and any("cooldown" in r for r in last.reasons)

    # Removed for longer than the retention: its memory is dropped, and the log says so.
    (folder / "web.yaml").unlink()
    controller.reload()
    clock.now = start + RETENTION + timedelta(hours=2)
    with caplog.at_level(logging.INFO, logger="autoscaler.state"):
        dropped = controller.retention.tidy(force=True)
    assert dropped is not None
    assert [name for name, _ in dropped.policies] == ["web"]
    assert dropped.targets == 1  # `keep`'s own stays, however old
    assert any("removed policy 'web'" in r.getMessage() for r in caplog.records)
    (folder / "web.yaml").write_text(text)
    controller.reload()
    assert controller.get_policy("web").cooldown_remaining.last_scaled_at is None
    controller.notifier.close(timeout=0)
    state.close()


def test_the_retention_covers_the_longest_window_of_the_policies_loaded(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "slow.yaml").write_text(_policy("slow", cooldown="10d"))
    state = LayeredStateStore(SqliteStateStore(tmp_path / "state.db"))
    controller, _ = _controller(folder, state, _Clock())
    controller.reload()
    assert controller.retention.period == timedelta(days=10)
    (folder / "slow.yaml").unlink()
    controller.reload()
    assert controller.retention.period == timedelta(days=10)  # what it served stays covered
    state.close()


def _fixed(name: str) -> Policy:
    return Policy(
        name=name,
        target=NomadTarget(job=name, group="g"),
        min=1,
        max=5,
        checks=(Check(name="c", strategy=Strategy.FIXED, count=2),),
    )


def test_a_standby_scheduler_keeps_its_queue_bounded_through_churn() -> None:
    def evaluate(policy: Policy, fresh: float | None) -> Evaluation:
        raise AssertionError("a standby evaluates nothing")

    scheduler = Scheduler(evaluate, gate=lambda: False, monotonic=lambda: 100.0)
    base = [_fixed(f"base-{i}") for i in range(10)]
    scheduler.set_policies(base)
    for i in range(CYCLES):
        churned = _fixed(f"churn-{i}")
        scheduler.set_policies([*base, churned])
        scheduler.set_policies(base)
    assert scheduler.queued() <= 2 * len(base) + 64 + 1
    scheduler.set_policies([])
    scheduler.set_policies(base)
    assert scheduler.queued() <= 2 * len(base) + 64 + 1


def test_the_target_factory_keeps_only_the_adapters_and_streams_in_use() -> None:
    factory = TargetFactory(nomad=NomadSettings(address="http://127.0.0.1:9"), watch_nomad=True)
    base = {t.key: t for t in (NomadTarget(job="web", group=g) for g in ("a", "b"))}
    for ref in base.values():
        factory(ref)
    baseline = factory.sizes()
    assert baseline == (2, 1)
    for i in range(CYCLES):
        churned = NomadTarget(job=f"job-{i}", group="g", namespace=f"ns-{i}")
        factory(churned)
        factory.retain({**base, churned.key: churned})
        factory.retain(base)
    assert factory.sizes() == baseline
    factory.close()


def _vouching(watch: JobWatch) -> JobWatch:
    """`watch` hearing its stream without a connection (no thread: `_hear` is fed)."""
    watch._thread = threading.Thread(target=lambda: None)
    watch._hear({"Events": []})
    return watch


def _job_event(job: str) -> dict[str, object]:
    return {"Events": [{"Topic": "Job", "Type": "JobRegistered", "Key": job}]}


def test_a_job_watch_counts_only_the_jobs_still_read() -> None:
    watch = _vouching(JobWatch(address="http://127.0.0.1:9", token=None, namespace="default"))
    assert watch.token("web") is not None
    for i in range(CYCLES):
        assert watch.token(f"job-{i}") is not None
        watch.retain({"web"})
    assert len(watch) == 1


def test_a_job_forgotten_and_asked_about_again_never_matches_its_old_token() -> None:
    watch = _vouching(JobWatch(address="http://127.0.0.1:9", token=None, namespace="default"))
    before = watch.token("web")
    watch.retain(set())
    watch._hear(_job_event("web"))  # not counted: nobody reads it now
    assert watch.token("web") != before  # so a status kept under `before` is read again


def test_a_tidying_says_what_it_dropped_in_plain_words(caplog: pytest.LogCaptureFixture) -> None:
    # It said "the memory of 0 more removed policies and the last action of 1 targets".
    caplog.set_level(logging.INFO, logger="autoscaler.state")
    retention._say(Dropped(targets=1), "7d")
    assert [r.getMessage() for r in caplog.records] == [
        "state: dropped the last action of 1 target no policy scales, older than 7d"
    ]
