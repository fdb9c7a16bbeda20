"""What the controller's reloads and discovery changes record in the metrics: a discovery
change reads no policy file, so it is no reload of them; a problem is one error, however
many changes find it again; a failing discovery source is no invalid policy."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest

from autoscaler.adapters.state import MemoryStateStore
from autoscaler.core.ports import MetricSource
from autoscaler.engine.evaluation import Evaluation
from autoscaler.engine.reconciler import Reconciler
from autoscaler.errors import EvaluationCancelled, Problem, ServiceError
from autoscaler.policy.loader import FileLoad, load_file
from autoscaler.policy.templates import Template
from autoscaler.service.controller import Controller
from autoscaler.service.notify import Notifier
from autoscaler.service.registry import DISCOVERED, PolicyRegistry
from autoscaler.service.telemetry import Telemetry
from tests.support.controllers import StubReconciler

POLICY = (
    "name: {name}\ntarget: {{type: aws-asg, asg: {name}}}\nmin: 1\nmax: 5\ninterval: 1h\n"
    "checks:\n  - {{name: c, strategy: fixed, count: 2}}\n"
)


@dataclass
class _Discover:
    """Stands for `Discovery`: the targets found and the failing sources the test sets."""

    found: list[FileLoad] = field(default_factory=list)
    failing: list[Problem] = field(default_factory=list)

    def __call__(self, templates: Sequence[Template]) -> tuple[list[FileLoad], list[Problem]]:
        return list(self.found), list(self.failing)


def _controller(tmp_path: Path, discover: _Discover) -> Controller:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "web.yaml").write_text(POLICY.format(name="web"))
    return Controller(
        registry=PolicyRegistry([str(policies)], discover=discover),
        reconciler=cast(Reconciler, StubReconciler()),
        state=MemoryStateStore(),
        source=cast(MetricSource, object()),
        telemetry=Telemetry(),
        notifier=Notifier([]),
    )


def _discovered(tmp_path: Path, name: str) -> FileLoad:
    """A target discovery found, with its policy: a pseudo-file, as `Discovery` gives."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(POLICY.format(name=name))
    return FileLoad(f"{DISCOVERED}nomad/default/{name}/web@t.yaml", load_file(path).policies, [])


def _value(controller: Controller, name: str, **labels: str) -> float | None:
    return controller.telemetry.registry.get_sample_value(name, labels)


def test_a_discovery_change_is_no_reload_of_the_policy_files(tmp_path: Path) -> None:
    discover = _Discover()
    controller = _controller(tmp_path, discover)
    controller.reload()
    read_at = _value(controller, "autoscaler_last_reload_timestamp_seconds")
    assert _value(controller, "autoscaler_reloads_total", result="success") == 1

    discover.found = [_discovered(tmp_path, "api")]
    controller.rediscover()
    assert _value(controller, "autoscaler_policies_loaded") == 2  # the change is applied
    assert _value(controller, "autoscaler_reloads_total", result="success") == 1
    assert _value(controller, "autoscaler_last_reload_timestamp_seconds") == read_at


def test_a_discovery_change_does_not_count_the_problems_again(tmp_path: Path) -> None:
    discover = _Discover()
    controller = _controller(tmp_path, discover)
    (tmp_path / "policies" / "broken.yaml").write_text("name: broken\n")
    controller.reload()
    problems = len(controller.registry.problems())
    assert problems and _value(controller, "autoscaler_errors_total", kind="policy") == problems

    for target in ("api", "db"):
        discover.found.append(_discovered(tmp_path, target))
        controller.rediscover()
    controller.reload()  # another file saved: the broken one is read again, unchanged
    assert _value(controller, "autoscaler_errors_total", kind="policy") == problems
    assert _value(controller, "autoscaler_policy_load_errors") == problems


def test_a_failing_discovery_source_is_no_invalid_policy(tmp_path: Path) -> None:
    # `autoscaler_discovery_up` says it: `AutoscalerPolicyFilesInvalid` must not fire for it.
    discover = _Discover(failing=[Problem("<discovery: Nomad jobs>", 1, "(source)", "failing")])
    controller = _controller(tmp_path, discover)
    controller.reload()
    controller.rediscover()
    assert _value(controller, "autoscaler_policy_load_errors") == 0
    assert _value(controller, "autoscaler_errors_total", kind="policy") is None
    assert _value(controller, "autoscaler_reloads_total", result="failure") is None
    assert _value(controller, "autoscaler_reloads_total", result="success") == 1
    # The API still shows why: it is a problem of the running service, just not a policy's.
    assert [e.file for e in controller.list_policies().load_errors] == ["<discovery: Nomad jobs>"]


def test_a_reload_of_an_unreadable_folder_is_a_service_error_that_keeps_the_policies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `POST /v1/reload` got a plain-text 500 (a PermissionError no layer turned into an
    # answer); SIGHUP and the file poll catch it, the API did not.
    controller = _controller(tmp_path, _Discover())
    controller.reload()

    def denied(self: Path) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "iterdir", denied)
    with pytest.raises(ServiceError, match=r"cannot read the policy files: .*Permission denied"):
        controller.reload()
    assert [p.name for p in controller.registry.policies()] == ["web"]


def test_readiness_tells_a_failing_discovery_source_from_a_broken_file(tmp_path: Path) -> None:
    # With nothing loaded yet, /readyz counted Nomad being down as "problems in the policy
    # files": someone would look for a broken file that is not there.
    failing = Problem("<discovery: nomad jobs>", 1, "(source)", "failing since ...: refused")
    controller = _controller(tmp_path, _Discover(failing=[failing]))
    (tmp_path / "policies" / "web.yaml").write_text("name: [broken\n")
    controller.reload()
    reason = controller.readiness()
    assert reason is not None
    assert reason.endswith(
        "; 1 problem(s) in the policy files; 1 discovery source(s) failing, see /v1/policies"
    )


@pytest.mark.parametrize("source", ["api", "alert"])
def test_a_trigger_a_reload_overtakes_leaves_no_series_of_the_removed_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """A trigger lands; before it is counted, a reload removes its policy (and the policy's
    series). The count must not make the series again: nothing would ever remove it."""
    controller = _controller(tmp_path, _Discover())
    (tmp_path / "policies" / "web.yaml").write_text(
        POLICY.format(name="web") + "triggers: {alerts: [WebSlow]}\n"
    )
    controller.reload()
    trigger, poke = controller.scheduler.trigger, controller.scheduler.poke

    def overtake() -> None:  # ... and a reload removes the policy before it is counted
        (tmp_path / "policies" / "web.yaml").unlink()
        controller.reload()

    def overtaken(name: str) -> Future[Evaluation] | None:
        future = trigger(name)  # scheduled: the trigger is taken ...
        overtake()
        return future

    def overtaken_poke(name: str) -> bool:  # an alert's trigger, which keeps no future
        poked = poke(name)
        overtake()
        return poked

    if source == "api":  # the API's trigger (which pokes, then keeps a future) ...
        monkeypatch.setattr(controller.scheduler, "trigger", overtaken)
    else:  # ... or an alert's poke
        monkeypatch.setattr(controller.scheduler, "poke", overtaken_poke)
    if source == "api":
        with pytest.raises(EvaluationCancelled):  # the reload cancelled what it waited for
            asyncio.run(controller.evaluate("web", preview=False))
    else:
        alert = {"status": "firing", "labels": {"alertname": "WebSlow"}}
        assert controller.alert({"alerts": [alert]}).triggered == ["web"]
    assert controller.registry.get("web") is None
    series = {"policy": "web", "source": source}
    assert _value(controller, "autoscaler_triggered_evaluations_total", **series) is None


def test_a_trigger_of_a_policy_still_loaded_counts(tmp_path: Path) -> None:
    controller = _controller(tmp_path, _Discover())
    controller.reload()
    controller.telemetry.triggered_by("web", "api")
    series = {"policy": "web", "source": "api"}
    assert _value(controller, "autoscaler_triggered_evaluations_total", **series) == 1
