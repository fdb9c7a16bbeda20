"""The controller answers the API with domain errors, one per reason a request cannot be
served; `tests/unit/api/test_errors.py` pins the status code each one becomes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest

from autoscaler.adapters.state import MemoryStateStore
from autoscaler.api.models import EvaluationOut
from autoscaler.core.model import Action, Decision, Policy
from autoscaler.core.ports import MetricSource
from autoscaler.engine.evaluation import Evaluation
from autoscaler.engine.reconciler import Reconciler
from autoscaler.errors import (
    EvaluationCancelled,
    EvaluationTimeout,
    InvalidRequest,
    PolicyDisabled,
    PolicyNotFound,
)
from autoscaler.service import controller as controller_module
from autoscaler.service.controller import Controller
from autoscaler.service.notify import Notifier
from autoscaler.service.registry import PolicyRegistry
from autoscaler.service.scheduler import Scheduler
from autoscaler.service.telemetry import Telemetry

POLICY = (
    "name: {name}\ntarget: {{type: aws-asg, asg: {name}}}\nmin: 1\nmax: 5\ninterval: 1h\n"
    "enabled: {enabled}\nchecks:\n  - {{name: c, strategy: fixed, count: 2}}\n"
)


class _Reconciler:
    """Holds, and says it was asked (the preview of a disabled policy must still work)."""

    def evaluate(self, policy: Policy, *, dry_run: bool = False, apply: bool = True) -> Evaluation:
        decision = Decision(
            policy=policy.name,
            target=str(policy.target),
            time=datetime(2026, 6, 1, tzinfo=UTC),
            current=2,
            desired=2,
            action=Action.NONE,
            dry_run=dry_run,
            reasons=("previewed",),
        )
        return Evaluation(decision=decision)


class _Scheduler:
    """Stands in for the scheduler: `trigger` answers what the test decides (and `poke`,
    an alert's trigger, whether it gave a future)."""

    def __init__(self, trigger: Callable[[str], Future[Evaluation] | None]) -> None:
        self.trigger = trigger
        self.stopping = False

    def poke(self, name: str) -> bool:
        return self.trigger(name) is not None


def _controller(tmp_path: Path, **enabled: bool) -> Controller:
    for name, on in enabled.items():
        (tmp_path / f"{name}.yaml").write_text(POLICY.format(name=name, enabled=str(on).lower()))
    controller = Controller(
        registry=PolicyRegistry([str(tmp_path)]),
        reconciler=cast(Reconciler, _Reconciler()),
        state=MemoryStateStore(),
        source=cast(MetricSource, object()),
        telemetry=Telemetry(),
        notifier=Notifier([]),
    )
    controller.registry.reload()
    return controller


def _evaluate(controller: Controller, name: str, *, preview: bool) -> EvaluationOut:
    """`Controller.evaluate`, awaited on an event loop of its own (as the API's)."""
    return asyncio.run(controller.evaluate(name, preview=preview))


def _trigger(controller: Controller, trigger: Callable[[str], Future[Evaluation] | None]) -> None:
    controller.scheduler = cast(Scheduler, _Scheduler(trigger))


def test_a_disabled_policy_is_refused_but_can_be_previewed(tmp_path: Path) -> None:
    controller = _controller(tmp_path, idle=False)
    with pytest.raises(PolicyDisabled, match="preview it with"):
        _evaluate(controller, "idle", preview=False)
    preview = _evaluate(controller, "idle", preview=True)
    assert (preview.preview, preview.decision.reasons) == (True, ["previewed"])


def test_an_evaluation_outlasting_the_wait_is_a_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    controller = _controller(tmp_path, web=True)
    _trigger(controller, lambda _name: Future())  # never resolved
    monkeypatch.setattr(controller_module, "EVALUATE_TIMEOUT", 0.01)
    with pytest.raises(EvaluationTimeout, match="'web' is still evaluating; see /v1/decisions"):
        _evaluate(controller, "web", preview=False)


def test_a_cancelled_evaluation_says_so(tmp_path: Path) -> None:
    controller = _controller(tmp_path, web=True)

    def cancelled(_name: str) -> Future[Evaluation]:
        future: Future[Evaluation] = Future()
        future.cancel()
        return future

    _trigger(controller, cancelled)
    with pytest.raises(EvaluationCancelled) as refused:
        _evaluate(controller, "web", preview=False)
    assert refused.value.retry_after is None


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        pytest.param("disable", PolicyDisabled, id="disabled-by-the-reload"),
        pytest.param("remove", PolicyNotFound, id="removed-by-the-reload"),
    ],
)
def test_a_reload_between_lookup_and_trigger_is_reported_as_what_it_did(
    tmp_path: Path, edit: str, error: type[Exception]
) -> None:
    controller = _controller(tmp_path, web=True)

    def reload_first(name: str) -> None:
        path = tmp_path / f"{name}.yaml"
        if edit == "remove":
            path.unlink()
        else:
            path.write_text(POLICY.format(name=name, enabled="false"))
        controller.registry.reload()

    _trigger(controller, reload_first)
    with pytest.raises(error):
        _evaluate(controller, "web", preview=False)


def test_an_alertmanager_payload_of_the_wrong_shape_is_an_invalid_request(
    tmp_path: Path,
) -> None:
    controller = _controller(tmp_path, web=True)
    with pytest.raises(InvalidRequest, match=r"alerts\[0\]\.labels must be an object"):
        controller.alert({"alerts": [{"labels": ["not", "a", "mapping"]}]})


def test_an_unknown_policy_is_not_found(tmp_path: Path) -> None:
    controller = _controller(tmp_path, web=True)
    with pytest.raises(PolicyNotFound, match="no policy named 'nope'"):
        controller.get_policy("nope")
    with pytest.raises(PolicyNotFound):
        _evaluate(controller, "nope", preview=True)


def test_an_alert_status_alertmanager_would_not_send_is_counted_as_other(
    tmp_path: Path,
) -> None:
    # The status went into the metric's label as sent: one series per word a caller sends.
    controller = _controller(tmp_path, web=True)
    statuses = ["firing", "resolved", "x1", "x2", "x3"]
    controller.alert({"alerts": [{"status": s, "labels": {"alertname": "A"}} for s in statuses]})
    registry = controller.telemetry.registry
    counted = {
        s: registry.get_sample_value("autoscaler_alerts_received_total", {"status": s})
        for s in ["firing", "resolved", "other", "x1"]
    }
    assert counted == {"firing": 1.0, "resolved": 1.0, "other": 3.0, "x1": None}


def test_an_alert_name_cannot_forge_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "web.yaml").write_text(
        POLICY.format(name="web", enabled="true") + "triggers: {alerts: [Slow]}\n"
    )
    controller = _controller(tmp_path)
    _trigger(controller, lambda name: Future())
    forged = "x\n2026-12-03 12:00:00,000 ERROR autoscaler.service: forged"
    with caplog.at_level("INFO"):
        controller.alert(
            {"alerts": [{"labels": {"alertname": "Slow"}}, {"labels": {"alertname": forged}}]}
        )
    (line,) = [r.getMessage() for r in caplog.records if "trigger policies" in r.getMessage()]
    assert "\n" not in line and "'x\\n2026" in line
