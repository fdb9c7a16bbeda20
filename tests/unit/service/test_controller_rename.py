"""A policy renamed in one reload (or replaced on its target by another) keeps the memory
that is kept by policy name: its stabilization windows' recommendations, its missing-data
count. The last action is kept by target already, so its cooldown never was lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autoscaler.adapters.state import MemoryStateStore
from autoscaler.core.model import Action, TargetRef
from autoscaler.core.ports import ScalingTarget
from autoscaler.service.controller import Controller
from tests.support.controllers import RecordingTarget, SteadySource, controller_of

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
POLICY = """\
name: {name}
target: {{type: aws-asg, asg: {asg}}}
min: 1
max: 10
interval: 1h
stabilization: {{up: 0s, down: 5m}}
checks:
  - {{name: load, query: 'sum(x)', strategy: per-instance, target: 10}}
"""


def _controller(
    tmp_path: Path, source: SteadySource, target: RecordingTarget, now: list[datetime]
) -> Controller:
    def targets(ref: TargetRef) -> ScalingTarget:
        return target

    return controller_of(tmp_path, MemoryStateStore(), source, targets, lambda: now[0])


def _evaluate(controller: Controller, name: str) -> tuple[Action, str]:
    policy = controller.registry.get(name)
    assert policy is not None
    decision = controller.reconciler.evaluate(policy).decision
    return decision.action, " ".join(decision.reasons)


@pytest.mark.parametrize(
    "asg",
    ["web", "other", "web, region: eu-west-3"],
    ids=["same-target", "other-target", "same-target-region-given"],
)
def test_a_renamed_policy_keeps_its_down_window_on_the_same_target(
    tmp_path: Path, asg: str
) -> None:
    # Kept by name, the recommendations were lost with the old name: the renamed policy
    # scaled 8 -> 2 one minute after the load fell, with no down window behind it.
    source, target, now = SteadySource(value=80.0), RecordingTarget(count=8), [T0]
    (tmp_path / "p.yaml").write_text(POLICY.format(name="web", asg="web"))
    controller = _controller(tmp_path, source, target, now)
    controller.reload()
    assert _evaluate(controller, "web")[0] == Action.NONE  # recommends 8, as it runs
    (tmp_path / "p.yaml").write_text(POLICY.format(name="web-renamed", asg=asg))
    out = controller.reload()
    assert (out.added, out.removed) == (["web-renamed"], ["web"])
    now[0], source.value = T0 + timedelta(minutes=1), 20.0
    action, reasons = _evaluate(controller, "web-renamed")
    if asg.startswith("web"):  # the same target (a region given on one side only is one
        # target, as `same_target` says): the 8 of a minute ago holds it, as before
        assert action == Action.NONE and target.count == 8
        assert "stabilization down 5m: highest recommendation 8" in reasons
    else:  # another target has no history of its own to inherit: it starts one, holding
        # a scale-in until a whole window has passed (as a new policy does)
        assert action == Action.NONE and target.count == 8
        assert "a first evaluation (no earlier recommendation)" in reasons


def test_namesakes_in_two_regions_renamed_together_each_keep_their_memory(
    tmp_path: Path,
) -> None:
    # Two targets (one name, two regions): the removed policies were kept one per identity,
    # so only the last found its successor and the other's down window was lost.
    source, target, now = SteadySource(value=80.0), RecordingTarget(count=8), [T0]
    one = POLICY.replace(
        "{{type: aws-asg, asg: {asg}}}", "{{type: aws-asg, asg: {asg}, region: {region}}}"
    )
    for region in ("eu-west-3", "us-east-1"):
        (tmp_path / f"{region}.yaml").write_text(one.format(name=region, asg="web", region=region))
    controller = _controller(tmp_path, source, target, now)
    controller.reload()
    for region in ("eu-west-3", "us-east-1"):
        _evaluate(controller, region)
    for region in ("eu-west-3", "us-east-1"):
        text = one.format(name=f"{region}-v2", asg="web", region=region)
        (tmp_path / f"{region}.yaml").write_text(text)
    controller.reload()
    for region in ("eu-west-3", "us-east-1"):
        policy = controller.registry.get(f"{region}-v2")
        assert policy is not None
        memory = controller.state.load(policy.name, policy.target.key)
        assert [r.count for r in memory.recommendations] == [8], region


def test_a_successor_inherits_what_its_predecessors_last_run_recorded_after_the_reload(
    tmp_path: Path,
) -> None:
    # The memory was copied at the reload; the old policy's run still in flight then
    # recorded its recommendation under the old name, and the successor (which the
    # scheduler starts only after that run) never saw it.
    source, target, now = SteadySource(value=80.0), RecordingTarget(count=8), [T0]
    (tmp_path / "p.yaml").write_text(POLICY.format(name="web", asg="web"))
    controller = _controller(tmp_path, source, target, now)
    controller.reload()
    old = controller.registry.get("web")
    assert old is not None
    (tmp_path / "p.yaml").write_text(POLICY.format(name="web-renamed", asg="web"))
    controller.reload()
    controller.reconciler.evaluate(old)  # the old run, finishing after the reload: 8
    now[0], source.value = T0 + timedelta(minutes=1), 20.0
    renamed = controller.registry.get("web-renamed")
    assert renamed is not None
    decision = controller._evaluate(renamed, None).decision  # its first run
    assert decision.action == Action.NONE and target.count == 8
    assert "stabilization down 5m: highest recommendation 8" in " ".join(decision.reasons)
