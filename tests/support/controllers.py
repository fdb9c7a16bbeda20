"""A `Controller` in process for the unit tests of the service, with a metric source and
scaling targets that stand in for the real ones: what the tests that rename and remove
policies share, so that a change to the controller's wiring is made in one place."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from autoscaler.core.model import TargetRef, TargetStatus
from autoscaler.core.ports import ScalingTarget, StateStore
from autoscaler.core.series import SeriesSet
from autoscaler.engine.reconciler import Reconciler
from autoscaler.service.controller import Controller
from autoscaler.service.notify import Notifier
from autoscaler.service.registry import PolicyRegistry
from autoscaler.service.telemetry import Telemetry


@dataclass
class SteadySource:
    """Every query answers `value` (the test may change it between evaluations)."""

    value: float = 90.0

    def query(self, promql: str) -> float:
        return self.value

    def query_series(self, promql: str, *, reuse: float = 0.0) -> SeriesSet:
        raise NotImplementedError

    def ping(self) -> None:
        return None


@dataclass
class RecordingTarget:
    """A group at `count` that takes every scale and records its count in `scaled`."""

    count: int = 2
    scaled: list[int] = field(default_factory=list)

    def status(self) -> TargetStatus:
        return TargetStatus(count=self.count)

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
        self.count = count


class StubReconciler:
    """Stands for `Reconciler` where a test gives the controller an evaluation of its own
    (a subclass's `evaluate`): it prepares and retains nothing at the reloads."""

    def prepare(self, policies: object) -> None:
        pass

    def retain(self, policies: object) -> None:
        pass


def controller_of(
    folder: Path,
    state: StateStore,
    source: SteadySource,
    targets: Callable[[TargetRef], ScalingTarget],
    clock: Callable[[], datetime],
    *,
    notifier: Notifier | None = None,
    dry_run: bool = False,
) -> Controller:
    """A controller of the policy files in `folder`, its reconciler and itself reading
    `source` and keeping `state`, on the test's `clock`; no notices unless `notifier`."""
    return Controller(
        registry=PolicyRegistry([str(folder)]),
        reconciler=Reconciler(source=source, targets=targets, state=state, clock=clock),
        state=state,
        source=source,
        telemetry=Telemetry(),
        notifier=notifier if notifier is not None else Notifier([]),
        dry_run=dry_run,
        clock=clock,
    )
