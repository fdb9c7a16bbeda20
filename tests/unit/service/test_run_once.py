"""`run --once`: one pass over every policy, with the service's side channels (a POST per
scaling action) and its way of stopping (the policy in flight finishes, the rest is skipped)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import cast

import pytest

from autoscaler.adapters.state import MemoryStateStore
from autoscaler.config.connections import Settings
from autoscaler.core.model import TargetRef, TargetStatus
from autoscaler.core.ports import ScalingTarget
from autoscaler.service.run import EXIT_NOT_EVALUATED, EXIT_OK, run_once
from tests.support.service import WebhookReceiver

POLICY = (
    "name: {name}\ntarget: {{type: aws-asg, asg: {name}}}\nmin: 1\nmax: 5\ninterval: 1m\n"
    "checks:\n  - {{name: c, strategy: fixed, count: 3}}\n"
)


@dataclass
class _Target:
    """A group at 2 that records each scale call (and runs `on_scale` then)."""

    scaled: list[int] = field(default_factory=list)
    on_scale: Callable[[], None] = lambda: None

    def status(self) -> TargetStatus:
        return TargetStatus(count=2)

    def scale(
        self,
        count: int,
        *,
        reason: str,
        meta: Mapping[str, str],
        expected: int | None = None,
        deadline: float | None = None,
    ) -> None:
        self.scaled.append(count)
        self.on_scale()


class _NoQueries:
    """The metric source: the policies' fixed checks ask it nothing."""

    def query(self, promql: str) -> float:
        raise AssertionError(f"no query expected, got {promql}")

    def ping(self) -> None:
        return None


@dataclass
class _Settings:
    """Stands for `Settings`: every target of the pass is recorded in `targets_read`."""

    targets_read: dict[str, _Target] = field(default_factory=dict)
    on_scale: Callable[[], None] = lambda: None
    nomad_scaling_policies: bool = False

    def source(self) -> _NoQueries:
        return _NoQueries()

    def targets(self, *, watch: bool = False) -> Callable[[TargetRef], ScalingTarget]:
        def build(ref: TargetRef) -> ScalingTarget:
            return self.targets_read.setdefault(str(ref), _Target(on_scale=self.on_scale))

        return build


def _policies(folder: Path, *names: str) -> list[str]:
    for name in names:
        (folder / f"{name}.yaml").write_text(POLICY.format(name=name))
    return [str(folder)]


def test_a_single_pass_posts_each_scaling_action_before_it_exits(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    # Before, --once took --notify-url and never sent anything.
    settings = _Settings()
    code = run_once(
        _policies(tmp_path, "a", "b"),
        cast(Settings, settings),
        MemoryStateStore(),
        dry_run=False,
        notify_urls=[webhook_receiver.url],
    )
    assert code == EXIT_OK
    assert [t.scaled for t in settings.targets_read.values()] == [[3], [3]]
    posted = sorted(body["decision"]["policy"] for body in webhook_receiver.bodies)
    assert posted == ["a", "b"]
    assert all(body["decision"]["action"] == "up" for body in webhook_receiver.bodies)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_lets_the_policy_in_flight_finish_and_skips_the_rest(
    tmp_path: Path, webhook_receiver: WebhookReceiver, sig: signal.Signals
) -> None:
    # Before, SIGTERM ended the process wherever it came (between a recorded scaling
    # action and its scale call, say) and SIGINT raised KeyboardInterrupt, a traceback.
    # Here the handler before the pass only records: without one of its own, the pass
    # would go on to b and c.
    outside: list[int] = []

    def record(signum: int, _frame: FrameType | None) -> None:
        outside.append(signum)

    previous = signal.signal(sig, record)
    try:
        settings = _Settings(on_scale=lambda: os.kill(os.getpid(), sig))
        code = run_once(
            _policies(tmp_path, "a", "b", "c"),
            cast(Settings, settings),
            MemoryStateStore(),
            dry_run=False,
            notify_urls=[webhook_receiver.url],
        )
        assert signal.getsignal(sig) is record  # the handler before the pass is back
    finally:
        signal.signal(sig, previous)
    assert outside == []
    assert code == EXIT_NOT_EVALUATED
    assert list(settings.targets_read) == ["aws-asg:a"]
    assert settings.targets_read["aws-asg:a"].scaled == [3]  # its scale call was made
    assert [body["decision"]["policy"] for body in webhook_receiver.bodies] == ["a"]


def test_a_policy_with_a_warning_is_evaluated_and_its_warning_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A `fallback` block that `on_missing_data: hold` ignores fails nothing: the pass
    scales as without it (exit 0), and the log says the block is ignored."""
    (tmp_path / "web.yaml").write_text(
        POLICY.format(name="web").replace("checks:", "fallback: {after: 3, count: 4}\nchecks:")
    )
    settings = _Settings()
    with caplog.at_level("WARNING", logger="autoscaler"):
        code = run_once(
            [str(tmp_path)], cast(Settings, settings), MemoryStateStore(), dry_run=False
        )
    assert code == EXIT_OK
    assert [t.scaled for t in settings.targets_read.values()] == [[3]]
    said = [r for r in caplog.records if "fallback: warning: ignored" in r.getMessage()]
    assert [(r.levelname, r.getMessage()[:12]) for r in said] == [("WARNING", "policy file ")]


def test_a_policy_whose_evaluation_crashes_holds_and_the_others_are_still_evaluated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A bug in one policy's path (an adapter raising what it should have translated) ended
    # the whole pass before: the policies after it were never evaluated.
    def bug() -> None:
        raise AttributeError("'NoneType' object has no attribute 'get'")

    settings = _Settings()
    settings.targets_read["aws-asg:a"] = _Target(on_scale=bug)  # in its scale call
    with caplog.at_level("ERROR", logger="autoscaler"):
        code = run_once(
            _policies(tmp_path, "a", "b"),
            cast(Settings, settings),
            MemoryStateStore(),
            dry_run=False,
        )
    assert code == EXIT_NOT_EVALUATED
    assert settings.targets_read["aws-asg:b"].scaled == [3]
    assert any("evaluation of policy a crashed" in r.getMessage() for r in caplog.records)
