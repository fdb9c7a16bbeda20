"""The service with discovery, end to end: a real Prometheus (behind a counting proxy), the
Nomad API stand-in with opted-in jobs, and `autoscaler run` as a subprocess.

One template serves 50 opted-in jobs (10 others are left alone) with one grouped query per
tick; each job is scaled to its own value; a job that goes away stops being evaluated; a
job's Nomad Autoscaler `scaling` block runs unchanged with `--nomad-scaling-policies`; a
steady target is not read again while Nomad's job event stream vouches for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import requests

from tests.support.net import wait_until
from tests.support.nomad_api import NomadApiStandIn
from tests.support.prometheus import Metrics, Sample
from tests.support.query_count import CountingProxy
from tests.support.service import ServiceProcess

pytestmark = pytest.mark.integration

INTERVAL = 1.0  # seconds between two ticks of the template
JOBS = 60
OPTED_IN = 50


def _template(metric: str) -> str:
    return f"""\
name: "web-{{job}}-{{group}}"
for_each:
  nomad: {{meta: {{autoscaler.enabled: "true"}}}}
target: {{type: nomad, job: "{{job}}", group: "{{group}}"}}
min: 1
max: 20
interval: {INTERVAL:g}s
cooldown: {{up: 0s, down: 0s}}
stabilization: {{up: 0s, down: 0s}}
checks:
  - name: rps
    query: 'sum by (job) ({metric})'
    group_by: {{job: "{{job}}"}}
    strategy: per-instance
    target: 10
"""


def _wanted(i: int) -> int:
    """The count job `i` should reach: its own value (10 per instance)."""
    return 2 + i % 7


def test_one_template_scales_each_opted_in_job_with_one_grouped_query_per_tick(
    service_factory: Callable[..., ServiceProcess],
    nomad_api: NomadApiStandIn,
    metrics: Metrics,
    counting_prometheus: CountingProxy,
) -> None:
    jobs = [f"svc-{i:02}" for i in range(JOBS)]
    for i, job in enumerate(jobs):
        if i >= OPTED_IN:  # not opted in: no meta, or opted out by its group
            meta = {} if i % 2 else {"autoscaler.enabled": "true"}
            group_meta = {} if i % 2 else {"web": {"autoscaler.enabled": "false"}}
        elif i % 2:  # opted in by the job's meta
            meta, group_meta = {"autoscaler.enabled": "true"}, {}
        else:  # ... or by the group's
            meta, group_meta = {}, {"web": {"autoscaler.enabled": "true"}}
        nomad_api.register_job(job, {"web": 1}, meta=meta, group_meta=group_meta)
    metric = metrics.name("requests")
    metrics.push_many(
        Sample("requests", 10.0 * _wanted(i), {"job": job}) for i, job in enumerate(jobs)
    )
    grouped = f"sum by (job) ({metric})"

    service = service_factory(
        prometheus_url=counting_prometheus.url,
        env=nomad_api.env,
        policies={"web": _template(metric)},
        args=["--workers=8"],
    ).start()

    def scaled() -> bool:
        return all(
            nomad_api.group_count(job, "web") == _wanted(i) for i, job in enumerate(jobs[:OPTED_IN])
        )

    wait_until(scaled, timeout=60, what="every opted-in job at its own count")
    assert all(nomad_api.group_count(job, "web") == 1 for job in jobs[OPTED_IN:])
    names = {p["name"] for p in service.get("/v1/policies").json()["policies"]}
    assert names == {f"web-{job}-web" for job in jobs[:OPTED_IN]}

    # One grouped query per tick feeds all 50 targets; no target asks on its own.
    start = time.monotonic()
    time.sleep(8 * INTERVAL)
    sent = counting_prometheus.count(grouped, since=start, until=time.monotonic())
    assert 4 <= sent <= 10, sent
    assert counting_prometheus.seen() <= {grouped, "1"}  # "1": the readiness ping
    assert len(service.decisions(limit=1000)) > 4 * OPTED_IN

    # A job that goes away stops being evaluated.
    gone = jobs[0]
    nomad_api.deregister_job(gone)
    wait_until(
        lambda: (
            f"web-{gone}-web"
            not in {p["name"] for p in service.get("/v1/policies").json()["policies"]}
        ),
        timeout=15,
        what="the removed job's policy to go",
    )
    seen = len(service.decisions(f"web-{gone}-web", limit=1000))
    time.sleep(3 * INTERVAL)
    assert len(service.decisions(f"web-{gone}-web", limit=1000)) == seen

    # The source's health and what it gave, for alerts on discovery itself.
    exposition = service.get("/metrics").text
    assert 'autoscaler_discovery_up{source="Nomad jobs"} 1.0' in exposition
    assert f'autoscaler_discovery_targets{{source="Nomad jobs"}} {OPTED_IN - 1}.0' in exposition
    assert service.stop() == 0


def test_a_nomad_autoscaler_scaling_block_scales_its_group(
    service_factory: Callable[..., ServiceProcess],
    nomad_api: NomadApiStandIn,
    metrics: Metrics,
) -> None:
    query = f"sum({metrics.push('queue', 50)})"
    nomad_api.register_job(
        "shop",
        {"api": 1},
        scaling={"api": (1, 10)},
        policies={
            "api": {
                "evaluation_interval": "1s",
                "cooldown": "0s",
                "check": [
                    {
                        "queue": [
                            {
                                "source": "prometheus",
                                "query": query,
                                "strategy": [{"target-value": [{"target": 10.0}]}],
                            }
                        ]
                    }
                ],
            }
        },
    )
    service = service_factory(
        prometheus_url=metrics.server.url,
        env=nomad_api.env,
        args=["--nomad-scaling-policies"],
    ).start()
    # target-value: 1 instance * 50 / 10 -> 5
    wait_until(lambda: nomad_api.group_count("shop", "api") == 5, timeout=30, what="scale to 5")
    policy = service.policy("shop.api")
    assert policy["target"] == "nomad:shop/api (default)"
    assert policy["description"].startswith("Nomad scaling policy ")
    events = nomad_api.scale_events("shop", "api")
    assert events[0]["Count"] == 5 and "shop.api" in events[0]["Message"]
    assert service.stop() == 0


def test_steady_targets_are_not_read_again_while_nomads_job_events_vouch_for_them(
    service_factory: Callable[..., ServiceProcess],
    nomad_api: NomadApiStandIn,
    metrics: Metrics,
    counting_prometheus: CountingProxy,
) -> None:
    nomad_api.event_heartbeat = 0.2  # Nomad's is 30 s: the service trusts the stream sooner
    jobs = ["calm-a", "calm-b"]
    for job in jobs:
        nomad_api.register_job(job, {"web": 2}, meta={"autoscaler.enabled": "true"})
        nomad_api.set_deployment(job, "successful")
    metric = metrics.name("steady")
    metrics.push_many(Sample("steady", 20.0, {"job": job}) for job in jobs)  # 2 instances' worth
    service = service_factory(
        prometheus_url=counting_prometheus.url,
        env=nomad_api.env,
        policies={"web": _template(metric)},
    ).start()

    def reads(job: str) -> int:
        return len(nomad_api.requests_to("GET", f"/v1/job/{job}/scale"))

    wait_until(
        lambda: all(len(service.decisions(f"web-{job}-web")) >= 3 for job in jobs),
        timeout=30,
        what="three decisions per target",
    )
    before = {job: reads(job) for job in jobs}
    evaluated = {job: len(service.decisions(f"web-{job}-web")) for job in jobs}
    time.sleep(5 * INTERVAL)
    assert all(len(service.decisions(f"web-{job}-web")) >= evaluated[job] + 3 for job in jobs)
    assert {job: reads(job) for job in jobs} == before  # evaluated, never read again
    assert service.metric("autoscaler_nomad_event_stream_up", namespace="default", region="") == 1

    # Someone scales a job by hand: its Job event makes the next evaluation read it.
    answer = requests.post(
        f"{nomad_api.address}/v1/job/calm-a/scale",
        json={"Count": 5, "Target": {"Group": "web"}, "Message": "by hand"},
        timeout=5,
    )
    assert answer.ok, answer.text
    wait_until(
        lambda: any(d["current"] == 5 for d in service.decisions("web-calm-a-web")),
        timeout=10,
        what="an evaluation that saw the count set by hand",
    )
    assert reads("calm-a") > before["calm-a"]
    assert reads("calm-b") == before["calm-b"]
    assert service.stop() == 0


def test_a_token_that_may_only_list_another_namespaces_jobs_fails_no_template(
    service_factory: Callable[..., ServiceProcess],
    nomad_api: NomadApiStandIn,
    metrics: Metrics,
) -> None:
    # A least-privilege token: it reads and scales jobs in `prod`, may only list those of
    # `dev`. Every listed job was read to learn its meta, and one 403 failed the whole
    # listing, for every template: nothing was discovered at start-up (and, once running,
    # the last listing stood for good: new jobs never added, purged ones never removed).
    opted = {"autoscaler.enabled": "true"}
    nomad_api.register_job("shop", {"web": 1}, namespace="prod", meta=opted)
    nomad_api.register_job("scratch", {"web": 1}, namespace="dev", meta=opted)
    # ... and may read team-b's jobs but not list them: Nomad's list of every namespace
    # leaves them out without a word (it is checked, and named, at the first listing).
    nomad_api.register_job("books", {"web": 1}, namespace="team-b", meta=opted)
    nomad_api.enable_acl(
        {
            "autoscaler": {
                "prod": ["list-jobs", "read-job", "scale-job"],
                "dev": ["list-jobs"],
                "team-b": ["read-job"],
            }
        }
    )
    metric = metrics.name("requests")
    metrics.push_many(
        Sample("requests", value, {"job": job})
        for job, value in (("shop", 30.0), ("cart", 40.0), ("scratch", 50.0))
    )
    everywhere = _template(metric)  # for_each.nomad.namespace: * (the default)
    service = service_factory(
        prometheus_url=metrics.server.url,
        env={**nomad_api.env, "NOMAD_TOKEN": "autoscaler"},
        policies={"web": everywhere},
    ).start()

    # Looking in every namespace: the dev job's refusal is reported, prod is discovered.
    wait_until(
        lambda: nomad_api.group_count("shop", "web", namespace="prod") == 3,
        timeout=30,
        what="the prod job discovered and scaled",
    )
    (refused,) = [
        e
        for e in service.get("/v1/policies").json()["load_errors"]
        if e["file"] == "<discovery: Nomad jobs>"
    ]
    assert "dev/scratch" in refused["message"], refused
    assert "'read-job' capability in namespace 'dev'" in refused["message"], refused
    assert "token lacks list-jobs in namespace 'team-b'" in refused["message"], refused
    nomad_api.register_job("cart", {"web": 1}, namespace="prod", meta=opted)  # while running
    wait_until(
        lambda: nomad_api.group_count("cart", "web", namespace="prod") == 4,
        timeout=30,
        what="a prod job registered while running discovered and scaled",
    )
    warned = [
        r
        for r in service.log_records()
        if r.get("logger") == "autoscaler.discovery" and "partly read" in r.get("message", "")
    ]
    assert len(warned) == 1, warned  # once per change of the refused jobs, not every pass

    # Looking in prod only: jobs of dev are never read, and nothing is left out.
    service.write_policy("web", everywhere.replace('"true"}}', '"true"}, namespace: prod}', 1))
    wait_until(
        lambda: not service.get("/v1/policies").json()["load_errors"],
        timeout=15,
        what="the refusal gone with the template limited to prod",
    )
    asked = len(nomad_api.requests_to("GET", "/v1/job/scratch"))
    nomad_api.register_job("scratch", {"web": 2}, namespace="dev", meta=opted)  # a new version
    nomad_api.deregister_job("cart", namespace="prod")
    wait_until(
        lambda: (
            "web-cart-web"
            not in {p["name"] for p in service.get("/v1/policies").json()["policies"]}
        ),
        timeout=15,
        what="the purged prod job's policy to go",
    )
    assert {p["name"] for p in service.get("/v1/policies").json()["policies"]} == {"web-shop-web"}
    assert len(nomad_api.requests_to("GET", "/v1/job/scratch")) == asked
    assert nomad_api.group_count("scratch", "web", namespace="dev") == 2
    assert service.stop() == 0
