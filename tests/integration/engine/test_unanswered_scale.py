"""A scale call that was sent and never answered may have landed: its cooldown stays.

Without `--ha` there is no lease deadline: the adapter retries within its own deadline,
then gives up. When its last request was a write that got no answer (a read timeout, a
dropped connection), the target may have applied it, and the target's own record of it
may not show yet (an ASG activity not yet listed): withdrawing the cooldown recorded
before the call would let the next evaluation scale again on top of it. A write the
target refused (an HTTP error) changed nothing, and its cooldown is withdrawn as before.
The real adapters talk to moto behind the fault-injecting AWS proxy and to the Nomad API
stand-in over real HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from autoscaler.adapters.state import MemoryStateStore
from autoscaler.adapters.targets.aws_asg import AsgScaler
from autoscaler.adapters.targets.nomad import NomadScaler
from autoscaler.adapters.targets.nomad_settings import NomadSettings
from autoscaler.core.model import (
    Action,
    AsgTarget,
    NomadTarget,
    Policy,
)
from autoscaler.core.ports import ScalingTarget
from autoscaler.engine.evaluation import Evaluation
from autoscaler.engine.reconciler import Reconciler
from tests.integration.engine.test_lease_deadline import Load, _policy
from tests.support.aws import AwsProxy
from tests.support.nomad_api import NomadApiStandIn

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
KEPT = "it may have landed (no answer came): its cooldown is kept"


def _evaluate(
    policy: Policy, target: ScalingTarget, state: MemoryStateStore
) -> tuple[Evaluation, datetime | None]:
    reconciler = Reconciler(
        source=Load(), targets=lambda _ref: target, state=state, clock=lambda: T0
    )
    evaluation = reconciler.evaluate(policy)
    assert (evaluation.decision.action, evaluation.error_kind) == (Action.HOLD, "scale")
    assert not evaluation.scaled
    return evaluation, state.load(policy.name, policy.target.key).last_scaled_at


@pytest.fixture
def asg_scaler(aws_proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], AsgScaler]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_proxy.url)
    return lambda name: AsgScaler(AsgTarget(asg=name), deadline=1.0)


def test_an_asg_scale_that_got_no_answer_keeps_its_cooldown(
    aws_proxy: AwsProxy, asg: str, asg_scaler: Callable[[str], AsgScaler]
) -> None:
    aws_proxy.fail_next("SetDesiredCapacity", 503, "ServiceUnavailable", times=100, delay=2.5)
    evaluation, last = _evaluate(_policy(AsgTarget(asg=asg)), asg_scaler(asg), MemoryStateStore())
    assert evaluation.decision.reasons[-1].endswith(KEPT), evaluation.decision.reasons
    assert "timeout" in evaluation.decision.reasons[-1].lower()
    assert last == T0


def test_an_asg_scale_refused_is_withdrawn(
    aws_proxy: AwsProxy, asg: str, asg_scaler: Callable[[str], AsgScaler]
) -> None:
    aws_proxy.fail_next("SetDesiredCapacity", 503, "ServiceUnavailable", times=100)
    evaluation, last = _evaluate(_policy(AsgTarget(asg=asg)), asg_scaler(asg), MemoryStateStore())
    assert "ServiceUnavailable" in evaluation.decision.reasons[-1]
    assert not evaluation.decision.reasons[-1].endswith(KEPT)
    assert last is None


@pytest.fixture
def nomad_scaler(nomad_api: NomadApiStandIn) -> NomadScaler:
    nomad_api.register_job("chat", groups={"web": 2})
    # Attempts of 0.5 s in 3 s (not 0.3 in 1): the status reads and the retry that gets an
    # answer must fit on a loaded machine; the unanswered POSTs are 4 times as late.
    settings = NomadSettings(address=nomad_api.address, timeout=0.5, deadline=3.0)
    return NomadScaler(NomadTarget(job="chat", group="web"), settings)


def test_a_nomad_scale_that_got_no_answer_keeps_its_cooldown(
    nomad_api: NomadApiStandIn, nomad_scaler: NomadScaler
) -> None:
    nomad_api.fail_requests_of("chat", 500, "rpc error: timeout", methods=["POST"], delay=2.0)
    policy = _policy(NomadTarget(job="chat", group="web"))
    evaluation, last = _evaluate(policy, nomad_scaler, MemoryStateStore())
    assert evaluation.decision.reasons[-1].endswith(KEPT), evaluation.decision.reasons
    assert nomad_api.requests_to("POST", "/scale"), "the scale request was sent"
    assert last == T0


def test_a_nomad_scale_refused_is_withdrawn(
    nomad_api: NomadApiStandIn, nomad_scaler: NomadScaler
) -> None:
    nomad_api.fail_requests_of("chat", 500, "rpc error: no leader", methods=["POST"])
    policy = _policy(NomadTarget(job="chat", group="web"))
    evaluation, last = _evaluate(policy, nomad_scaler, MemoryStateStore())
    assert "rpc error: no leader" in evaluation.decision.reasons[-1]
    assert not evaluation.decision.reasons[-1].endswith(KEPT)
    assert last is None


def test_a_nomad_scale_whose_retry_is_refused_after_an_unanswered_attempt_keeps_its_cooldown(
    nomad_api: NomadApiStandIn, nomad_scaler: NomadScaler
) -> None:
    # The first POST times out (it may have landed and started a deployment); the retry is
    # refused because of that deployment. Judged by the last attempt alone, the change was
    # "busy, not scaled" and its cooldown withdrawn.
    nomad_api.fail_requests_of(
        "chat",
        400,
        "job scaling blocked due to active deployment",
        methods=["POST"],
        first_delay=2.0,
    )
    policy = _policy(NomadTarget(job="chat", group="web"))
    evaluation, last = _evaluate(policy, nomad_scaler, MemoryStateStore())
    assert len(nomad_api.requests_to("POST", "/scale")) >= 2, "retried after the timeout"
    assert evaluation.decision.reasons[-1].endswith(KEPT), evaluation.decision.reasons
    assert "an earlier attempt got no answer in time" in evaluation.decision.reasons[-1]
    assert last == T0
