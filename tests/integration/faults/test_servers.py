"""Prometheus, AWS and Nomad failing under one running `autoscaler run`, one policy per fault.

One service evaluates every case's policy at once (each on its own target and query), so
the whole table costs about one slow evaluation, not the sum of them. Every target starts
at 5 and the real data says 2: a fault that let bad data through, or lost a record, would
show as a scale-in. Each fault is programmed before the service starts, so the policy
meets it from its first evaluation, and lasts until the case heals it:

- Prometheus: a proxy in front of the real server (`PrometheusProxy`) answers 5xx,
  garbage, a truncated body, a late answer, or a string result; NaN and several series
  are the real server's own answers to what was pushed into it.
- AWS: the fault-injecting proxy in front of moto fails one group's calls.
- Nomad: the API stand-in fails one job's requests, refuses the token in one namespace,
  or reports a deployment in progress.

A dead Prometheus takes the whole service down with it, so it has a service of its own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import pytest

from tests.integration.faults.harness import (
    Watched,
    acts_once_healed,
    asg_count,
    held_through_fault,
    recorded,
)
from tests.support.aws import AwsProxy, MotoServer
from tests.support.faults import STALE
from tests.support.net import free_port, wait_until
from tests.support.nomad_api import NomadApiStandIn
from tests.support.prometheus import PrometheusServer, Sample
from tests.support.prometheus_proxy import PrometheusProxy, serve_prometheus_proxy
from tests.support.service import ServiceProcess, create_asg

# One xdist worker runs the whole module, so its servers and service are started once.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("fault-matrix-servers")]

START, HEALTHY = 5, 2  # every target's count, and what the real data asks for
NOMAD_TOKEN = "fault-matrix-nomad-token"
CAPABILITIES = ["read-job", "scale-job", "list-jobs"]
FOREVER = 10**6  # a fault's `times`: until healed


@dataclass
class Arranged:
    """One case's policy, its query (a bare metric: one series) and its target."""

    policy: str
    query: str
    target: str  # the Nomad job or the ASG
    namespace: str = "default"


@dataclass
class Bench:
    """The shared servers and the one service; `arranged` by case id."""

    prometheus: PrometheusServer
    proxy: PrometheusProxy
    aws: AwsProxy
    moto: MotoServer
    nomad: NomadApiStandIn
    arranged: dict[str, Arranged] = field(default_factory=dict)
    service: ServiceProcess | None = None

    def watch(self, case: Case) -> Watched:
        """The case's policy, and its target's count read from the server that holds it."""
        assert self.service is not None
        arranged = self.arranged[case.id]
        if case.target == "aws":
            count = asg_count(self.moto, arranged.target)
        else:
            count = partial(
                self.nomad.group_count, arranged.target, "web", namespace=arranged.namespace
            )
        return Watched(service=self.service, policy=arranged.policy, count=count, start=START)


Step = Callable[[Bench, Arranged], None]


@dataclass(frozen=True)
class Case:
    """One fault: what to break, what every evaluation must then say, and how to mend it."""

    id: str
    target: Literal["nomad", "aws"]
    inject: Step
    heal: Step
    message: str
    namespace: str = "default"

    def param(self) -> object:
        return pytest.param(self, id=self.id)


# What Prometheus 2.42 adds to an answer when its `remote_read` endpoint is down.
REMOTE_READ_FAILED = (
    'remote_read: error sending request: Post "http://127.0.0.1:9/api/v1/read": dial tcp '
    "127.0.0.1:9: connect: connection refused"
)


def _string_result(bench: Bench, a: Arranged) -> None:
    bench.proxy.answer_data(a.query, {"resultType": "string", "result": [time.time(), "2"]})


def _several_series(bench: Bench, a: Arranged) -> None:
    bench.prometheus.push(a.query, STALE)  # the label-free series pushed first ends
    bench.prometheus.push_many([Sample(a.query, 1, {"az": "a"}), Sample(a.query, 1, {"az": "b"})])


def _one_series_again(bench: Bench, a: Arranged) -> None:
    bench.prometheus.push(a.query, STALE, {"az": "b"})  # as a scrape that lost it would
    bench.prometheus.push(a.query, HEALTHY, {"az": "a"})


def _aws_fails(action: str, status: int, code: str, message: str) -> Step:
    def inject(bench: Bench, a: Arranged) -> None:
        bench.aws.fail_next(action, status, code, message, times=FOREVER, group=a.target)

    return inject


def _acl(*namespaces: str) -> Step:
    def grant(bench: Bench, a: Arranged) -> None:
        bench.nomad.enable_acl({NOMAD_TOKEN: dict.fromkeys(namespaces, CAPABILITIES)})

    return grant


def _deployment(status: str) -> Step:
    def deploy(bench: Bench, a: Arranged) -> None:
        bench.nomad.set_deployment(a.target, status)

    return deploy


def _heal_query(bench: Bench, a: Arranged) -> None:
    bench.proxy.heal(a.query)


CASES = [
    Case(
        id="prometheus-5xx",
        target="nomad",
        inject=lambda b, a: b.proxy.fail(a.query, 503, b"Service Unavailable"),
        heal=_heal_query,
        message="HTTP 503: Service Unavailable",
    ),
    Case(
        id="prometheus-slow",  # beyond the query deadline: 3 x --query-timeout=1
        target="nomad",
        inject=lambda b, a: b.proxy.delay(a.query, 5.0),
        heal=_heal_query,
        message="Read timed out",
    ),
    Case(
        id="prometheus-garbage",
        target="nomad",
        inject=lambda b, a: b.proxy.answer(a.query, b"<html><body>Sign in</body></html>"),
        heal=_heal_query,
        message="is not a Prometheus API response",
    ),
    Case(
        id="prometheus-truncated",
        target="nomad",
        inject=lambda b, a: b.proxy.truncate(a.query),
        heal=_heal_query,
        message="Connection broken: IncompleteRead",
    ),
    Case(
        id="prometheus-string-result",
        target="nomad",
        inject=_string_result,
        heal=_heal_query,
        message="string result where the expression gives a vector",
    ),
    Case(
        id="prometheus-nan",
        target="nomad",
        inject=lambda b, a: b.prometheus.push(a.query, float("nan")),
        heal=lambda b, a: b.prometheus.push(a.query, HEALTHY),
        message="is NaN",
    ),
    Case(
        id="prometheus-partial-data",  # a remote_read endpoint fails: success, with warnings
        target="nomad",
        inject=lambda b, a: b.proxy.warn(a.query, REMOTE_READ_FAILED),
        heal=_heal_query,
        message="answered with warnings, so its data may be partial",
    ),
    Case(
        id="prometheus-several-series",
        target="nomad",
        inject=_several_series,
        heal=_one_series_again,
        message="returned 2 series",
    ),
    Case(
        id="aws-throttled",
        target="aws",
        inject=_aws_fails("DescribeInstanceRefreshes", 400, "Throttling", "Rate exceeded"),
        heal=lambda b, a: b.aws.heal(a.target),
        message="Throttling",
    ),
    Case(
        id="aws-5xx",
        target="aws",
        inject=_aws_fails(
            "SetDesiredCapacity", 500, "InternalFailure", "We encountered an internal error"
        ),
        heal=lambda b, a: b.aws.heal(a.target),
        message=f"scale to {HEALTHY} failed",
    ),
    Case(
        id="nomad-5xx",
        target="nomad",
        inject=lambda b, a: b.nomad.fail_requests_of(a.target, 500, "rpc error: No cluster leader"),
        heal=lambda b, a: b.nomad.heal(a.target),
        message="No cluster leader",
    ),
    Case(
        id="nomad-403",
        target="nomad",
        namespace="restricted",
        inject=_acl("default"),  # the token has no rights in namespace "restricted"
        heal=_acl("*"),
        message="the token lacks the 'read-job' capability in namespace 'restricted'",
    ),
    Case(
        id="nomad-active-deployment",
        target="nomad",
        inject=_deployment("running"),
        heal=_deployment("successful"),
        message="Nomad refuses scaling until it ends",
    ),
]
# A throttled scale call is retried within the evaluation, so it scales at once.
THROTTLED_SCALE = Case(
    id="aws-throttled-scale",
    target="aws",
    inject=lambda b, a: b.aws.fail_next(
        "SetDesiredCapacity", 400, "Throttling", "Rate exceeded", times=2, group=a.target
    ),
    heal=lambda b, a: None,
    message="SetDesiredCapacity",
)


def policy_text(
    name: str, query: str, target: str, *, kind: str = "nomad", namespace: str = "default"
) -> str:
    """Pass-through of `query` on an ASG or a Nomad job's group `web`, every second, no
    cooldown."""
    if kind == "aws":
        where = f"{{type: aws-asg, asg: {target}}}"
    else:
        where = f"{{type: nomad, job: {target}, group: web, namespace: {namespace}}}"
    return (
        f"name: {name}\ntarget: {where}\nmin: 1\nmax: 10\ninterval: 1s\n"
        "cooldown: {up: 0s, down: 0s}\nstabilization: {up: 0s, down: 0s}\n"
        f"checks:\n  - name: load\n    query: '{query}'\n    strategy: pass-through\n"
    )


@pytest.fixture(scope="module")
def bench(
    tmp_path_factory: pytest.TempPathFactory,
    prometheus: PrometheusServer,
    moto_server: MotoServer,
    _aws_proxy_session: AwsProxy,
    nomad_api_session: NomadApiStandIn,
) -> Iterator[Bench]:
    """Every case's target and policy, its fault injected, then one service for them all."""
    aws, nomad = _aws_proxy_session, nomad_api_session
    aws.clear()
    nomad.reset()
    workdir = tmp_path_factory.mktemp("fault-matrix")
    prefix = f"fm{uuid.uuid4().hex[:8]}_"
    with serve_prometheus_proxy(prometheus.url) as proxy:
        bench = Bench(prometheus, proxy, aws, moto_server, nomad)
        _acl("default")(bench, Arranged("", "", ""))
        policies = {}
        for case in [*CASES, THROTTLED_SCALE]:
            suffix = case.id.replace("-", "_")
            arranged = Arranged(
                policy=case.id,
                query=prefix + suffix,
                target=f"{prefix}{suffix}".replace("_", "-"),
                namespace=case.namespace,
            )
            bench.arranged[case.id] = arranged
            # A second ago: a fault pushed now is a later sample, never a duplicate.
            prometheus.push(arranged.query, HEALTHY, timestamp=time.time() - 1)
            if case.target == "aws":
                create_asg(moto_server.url, arranged.target, desired=START)
            else:
                nomad.register_job(arranged.target, {"web": START}, namespace=case.namespace)
            case.inject(bench, arranged)
            policies[arranged.policy] = policy_text(
                arranged.policy,
                arranged.query,
                arranged.target,
                kind=case.target,
                namespace=case.namespace,
            )
        service = ServiceProcess(
            workdir,
            prometheus_url=proxy.url,
            env={**aws.env, **nomad.env, "NOMAD_TOKEN": NOMAD_TOKEN},
            policies=policies,
            args=["--workers=16"],
        )
        bench.service = service
        try:
            service.start()
            yield bench
            for case in CASES:  # a case that failed left its fault, and slow evaluations
                case.heal(bench, bench.arranged[case.id])
            assert service.stop() == 0
        finally:
            service.kill()
            aws.clear()
            nomad.reset()


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_a_fault_holds_without_scaling_in_and_the_loop_acts_once_healed(
    bench: Bench, case: Case
) -> None:
    watched = bench.watch(case)
    held_through_fault(watched, case.message)
    recorded(watched)  # nothing happened, and nothing is recorded as having happened

    case.heal(bench, bench.arranged[case.id])
    acts_once_healed(watched, HEALTHY)
    recorded(watched)


def test_a_throttled_scale_call_is_retried_within_the_evaluation(bench: Bench) -> None:
    watched = bench.watch(THROTTLED_SCALE)
    acts_once_healed(watched, HEALTHY)  # never broken for long: retried, then done
    recorded(watched)
    asg = bench.arranged[THROTTLED_SCALE.id].target
    calls = [p for a, p in bench.aws.calls if a == "SetDesiredCapacity"]
    assert sum(p.get("AutoScalingGroupName") == asg for p in calls) == 3
    retries = [
        r["message"]
        for r in watched.service.log_records()
        if "SetDesiredCapacity" in r["message"] and asg in r["message"]
    ]
    assert any("Throttling" in m and "retrying" in m for m in retries), retries
    (scaled,) = [d for d in watched.service.decisions(watched.policy) if d["action"] == "down"]
    assert (scaled["current"], scaled["desired"]) == (START, HEALTHY)


def test_prometheus_down_holds_until_it_answers_again(
    tmp_path: Path, prometheus: PrometheusServer, nomad_api_session: NomadApiStandIn
) -> None:
    nomad = nomad_api_session
    port = free_port()  # nothing listens there until the "Prometheus" below starts
    job, query = f"down-{uuid.uuid4().hex[:8]}", f"fm_down_{uuid.uuid4().hex[:8]}"
    nomad.register_job(job, {"web": START})
    prometheus.push(query, HEALTHY)
    service = ServiceProcess(
        tmp_path,
        prometheus_url=f"http://127.0.0.1:{port}",
        env={**nomad.env, "NOMAD_TOKEN": NOMAD_TOKEN},  # in case the bench turned ACLs on
        policies={"web": policy_text("web", query, job)},
        args=["--query-timeout=0.5"],  # a refused connection is retried for 1.5 s
    )
    watched = Watched(
        service=service, policy="web", count=lambda: nomad.group_count(job, "web"), start=START
    )
    try:
        service.start()
        held_through_fault(watched, "Connection refused")
        recorded(watched)
        ready = service.get("/readyz")
        assert ready.status_code == 503
        assert "Connection refused" in ready.json()["reason"]

        with serve_prometheus_proxy(prometheus.url, port=port):
            acts_once_healed(watched, HEALTHY)
            recorded(watched)
            wait_until(lambda: service.get("/readyz").status_code == 200, timeout=10, what="ready")
            assert service.stop() == 0
    finally:
        service.kill()
