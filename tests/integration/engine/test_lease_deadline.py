"""A scale call sends no request after the leader lease's validity ends, whatever the target.

The leader here is a real `Leadership` on a real PostgreSQL lease, fencing a real
`Reconciler` that scales through the real adapters: moto behind the fault-injecting AWS
proxy, and the Nomad API stand-in. The lease is taken once and not renewed, so its local
validity ends `VALID` seconds later; the database is told to keep it for a minute (a
renewal the leader has not heard back from), so the decision can still be recorded and
what is asserted is only the scale call's own deadline.

Before, `fence()` passed and the adapter then retried for its own 10 s deadline: requests
reached the target seconds after the lease had lapsed, when another replica could lead.
Now each server's log of arrivals (on `CLOCK_BOOTTIME`, the lease's clock) must end before
the lease does, and the decision must say why the scale was not applied.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from autoscaler.adapters.state import LayeredStateStore
from autoscaler.adapters.state.lease import PostgresLease
from autoscaler.adapters.state.postgres import PostgresStateStore
from autoscaler.adapters.targets.aws_asg import AsgScaler
from autoscaler.adapters.targets.nomad import NomadScaler
from autoscaler.adapters.targets.nomad_settings import NomadSettings
from autoscaler.core.model import (
    Action,
    AsgTarget,
    Check,
    Cooldown,
    NomadTarget,
    Policy,
    Stabilization,
    Strategy,
    TargetRef,
)
from autoscaler.core.ports import ScalingTarget
from autoscaler.core.series import SeriesSet
from autoscaler.engine.evaluation import Evaluation
from autoscaler.engine.reconciler import Reconciler
from autoscaler.service.leadership import Leadership, replicate
from tests.integration.adapters.test_postgres_state import settings
from tests.support.aws import AwsProxy, MotoServer
from tests.support.nomad_api import NomadApiStandIn
from tests.support.postgres import Database

pytestmark = pytest.mark.integration

TTL = 2.6  # the lease's local validity: TTL less 5 %, about 2.5 s
VALID = TTL * 0.95
SLOW = 6.0  # seconds a slow target holds its answer back: past the lease, within 10 s


def boottime() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class Load:
    """A metric source asking for 6 instances (60 at 10 per instance)."""

    def query(self, promql: str) -> float:
        return 60.0

    def query_series(self, promql: str, *, reuse: float = 0.0) -> SeriesSet:
        raise NotImplementedError  # the policies here have no grouped query

    def ping(self) -> None:
        return None


def _policy(target: TargetRef) -> Policy:
    return Policy(
        name="web",
        target=target,
        min=1,
        max=10,
        checks=(Check(name="rps", strategy=Strategy.PER_INSTANCE, query="rps", target=10.0),),
        cooldown=Cooldown(up=timedelta(minutes=1), down=timedelta(minutes=1)),
        stabilization=Stabilization(up=timedelta(0), down=timedelta(0)),
    )


@dataclass
class Leader:
    """A replica that has just taken the lease: `lease_end` is no earlier than where its
    local validity ends (on `CLOCK_BOOTTIME`), `fenced` what its fence returned."""

    leadership: Leadership
    state: LayeredStateStore
    lease_end: float
    fenced: list[float | None]

    def evaluate(self, policy: Policy, target: ScalingTarget) -> Evaluation:
        def fence(begun: float) -> float | None:
            until: float | None = self.leadership.fence(begun)
            self.fenced.append(until)
            return until

        reconciler = Reconciler(
            source=Load(),
            targets=lambda _ref: target,
            state=self.state,
            clock=self.leadership.clock,
            fence=fence,
        )
        return reconciler.evaluate(policy)


@pytest.fixture
def leader(postgres_db: Database) -> Iterator[Leader]:
    store = PostgresStateStore(settings(postgres_db), fenced=True)
    state = LayeredStateStore(store)
    leadership = replicate(store, state, replica="a", ttl=TTL)
    assert leadership.step(), "the lease is free"
    lease_end = boottime() + VALID
    epoch = leadership.epoch
    assert epoch is not None
    # The database keeps the lease for a minute; the leader's own clock does not know.
    other = PostgresLease(settings(postgres_db))
    assert other.acquire("a", 60, epoch=epoch).held
    other.close()
    yield Leader(leadership, state, lease_end, [])
    leadership.close()
    store.close()


def _not_applied(evaluation: Evaluation, then: str) -> str:
    assert (evaluation.decision.action, evaluation.error_kind) == (Action.HOLD, "scale")
    assert not evaluation.scaled
    found = [r for r in evaluation.decision.reasons if r.startswith("scale to 6 not applied: ")]
    assert found, evaluation.decision.reasons
    assert f"the leader lease ends before the scale call could be {then} (" in found[0]
    return found[0]


def _sent_before_the_lease_ended(leader: Leader, arrivals: list[float]) -> None:
    assert arrivals, "the scale request was sent while the lease was valid"
    late = [round(t - leader.lease_end, 3) for t in arrivals if t >= leader.lease_end]
    assert not late, f"scale requests reached the target {late} s after the lease ended"
    assert leader.fenced and leader.fenced[0] is not None
    assert leader.fenced[0] <= leader.lease_end


# --- AWS: moto behind the fault-injecting proxy ---------------------------------------------


@pytest.fixture
def asg_scaler(aws_proxy: AwsProxy, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], AsgScaler]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_proxy.url)
    return lambda name: AsgScaler(AsgTarget(asg=name))  # its own deadline: 10 s


def test_an_asg_that_keeps_failing_is_not_retried_past_the_lease(
    leader: Leader,
    aws_proxy: AwsProxy,
    asg: str,
    asg_scaler: Callable[[str], AsgScaler],
    moto_server: MotoServer,
) -> None:
    aws_proxy.fail_next("SetDesiredCapacity", 503, "ServiceUnavailable", "try later", times=1000)
    policy = _policy(AsgTarget(asg=asg))
    evaluation = leader.evaluate(policy, asg_scaler(asg))

    _sent_before_the_lease_ended(leader, aws_proxy.arrivals("SetDesiredCapacity"))
    assert aws_proxy.count("SetDesiredCapacity") >= 2, "retried while the lease lasted"
    reason = _not_applied(evaluation, "retried")
    assert "(last: HTTP 503 ServiceUnavailable: try later)" in reason, reason
    assert moto_server.desired_capacity(asg) == 2
    # Nothing was applied: the action recorded before the call is withdrawn, as for any
    # failed call.
    assert leader.state.load("web", policy.target.key).last_scaled_at is None


def test_an_asg_answering_too_late_gets_no_retry_and_keeps_its_cooldown(
    leader: Leader,
    aws_proxy: AwsProxy,
    asg: str,
    asg_scaler: Callable[[str], AsgScaler],
    moto_server: MotoServer,
) -> None:
    aws_proxy.fail_next("SetDesiredCapacity", 503, "ServiceUnavailable", times=1000, delay=SLOW)
    policy = _policy(AsgTarget(asg=asg))
    evaluation = leader.evaluate(policy, asg_scaler(asg))

    _sent_before_the_lease_ended(leader, aws_proxy.arrivals("SetDesiredCapacity"))
    assert aws_proxy.count("SetDesiredCapacity") == 1  # its timeout ended with the lease
    reason = _not_applied(evaluation, "retried")
    assert "may still be applied" in reason and reason.endswith("; its cooldown is kept")
    # It may have landed: the cooldown recorded before the call stays, so neither this
    # replica nor the next leader acts again on top of it.
    assert leader.state.load("web", policy.target.key).last_scaled_at is not None
    assert moto_server.desired_capacity(asg) == 2


# --- Nomad: the API stand-in -----------------------------------------------------------------


@pytest.fixture
def nomad_scaler(nomad_api: NomadApiStandIn) -> NomadScaler:
    nomad_api.register_job("chat", groups={"web": 2})
    # Its own limits as by default: 5 s per request, 10 s of retries.
    settings = NomadSettings(address=nomad_api.address, timeout=5.0, deadline=10.0)
    return NomadScaler(NomadTarget(job="chat", group="web"), settings)


def _scale_posts(nomad_api: NomadApiStandIn) -> list[float]:
    return [r.at for r in nomad_api.requests_to("POST", "/scale")]


def test_a_nomad_that_keeps_failing_is_not_retried_past_the_lease(
    leader: Leader, nomad_api: NomadApiStandIn, nomad_scaler: NomadScaler
) -> None:
    nomad_api.fail_requests_of("chat", 500, "rpc error: no leader", methods=["POST"])
    policy = _policy(NomadTarget(job="chat", group="web"))
    evaluation = leader.evaluate(policy, nomad_scaler)

    _sent_before_the_lease_ended(leader, _scale_posts(nomad_api))
    assert len(_scale_posts(nomad_api)) >= 2, "retried while the lease lasted"
    reason = _not_applied(evaluation, "retried")
    assert "(last: HTTP 500: rpc error: no leader)" in reason, reason
    assert nomad_api.group_count("chat", "web") == 2
    assert leader.state.load("web", policy.target.key).last_scaled_at is None


def test_a_nomad_answering_too_late_gets_no_retry_and_keeps_its_cooldown(
    leader: Leader, nomad_api: NomadApiStandIn, nomad_scaler: NomadScaler
) -> None:
    nomad_api.fail_requests_of("chat", 500, "rpc error: timeout", methods=["POST"], delay=SLOW)
    policy = _policy(NomadTarget(job="chat", group="web"))
    evaluation = leader.evaluate(policy, nomad_scaler)

    _sent_before_the_lease_ended(leader, _scale_posts(nomad_api))
    assert len(_scale_posts(nomad_api)) == 1  # its timeout ended with the lease
    reason = _not_applied(evaluation, "retried")
    assert "ReadTimeout" in reason and reason.endswith("; its cooldown is kept"), reason
    assert leader.state.load("web", policy.target.key).last_scaled_at is not None
