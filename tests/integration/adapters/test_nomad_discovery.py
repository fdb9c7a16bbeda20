"""Nomad discovery against the API stand-in: groups in every namespace with their meta,
blocking queries that wake on a change, and Nomad's scaling policies as Nomad stores them."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests

from autoscaler.adapters.discovery.nomad import NomadDiscovery, Refused
from autoscaler.adapters.targets.nomad_settings import NomadSettings
from autoscaler.core.model import NomadTarget
from autoscaler.errors import DiscoveryError
from autoscaler.policy.loader import load_data
from autoscaler.policy.nomad_autoscaler import policy_from_nomad
from tests.support.nomad_api import NomadApiStandIn

pytestmark = pytest.mark.integration

POLICY: dict[str, Any] = {
    "cooldown": "1m",
    "evaluation_interval": "5s",
    "check": [
        {
            "rps": [
                {
                    "source": "prometheus",
                    "query": "sum(rate(http_requests_total[1m]))",
                    "strategy": [{"target-value": [{"target": 10.0}]}],
                }
            ]
        }
    ],
}


def _discovery(nomad_api: NomadApiStandIn, **settings: Any) -> NomadDiscovery:
    return NomadDiscovery(NomadSettings(address=nomad_api.address, **settings))


def test_groups_of_every_namespace_carry_job_meta_overlaid_by_group_meta(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job(
        "web",
        {"api": 2, "worker": 1},
        meta={"autoscaler.enabled": "true", "team": "shop"},
        group_meta={"worker": {"autoscaler.enabled": "false"}},
    )
    nomad_api.register_job(
        "billing", {"api": 1}, namespace="finance", group_meta={"api": {"autoscaler.min": "2"}}
    )
    nomad_api.register_job("nightly", {"run": 1}, periodic=True)
    nomad_api.register_job("once", {"run": 1}, type="batch")
    nomad_api.register_job("old", {"run": 1}, stopped=True)

    listing = _discovery(nomad_api).groups()

    found = {(g.namespace, g.job, g.group): dict(g.meta) for g in listing.items}
    assert found == {
        ("default", "web", "api"): {"autoscaler.enabled": "true", "team": "shop"},
        ("default", "web", "worker"): {"autoscaler.enabled": "false", "team": "shop"},
        ("finance", "billing", "api"): {"autoscaler.min": "2"},
    }
    assert listing.index > 0
    assert all(r.query.get("namespace") == "*" for r in nomad_api.requests_to("GET", "/v1/jobs"))


def test_groups_share_their_repeated_meta_and_names(nomad_api: NomadApiStandIn) -> None:
    """What 10,000 opted-in groups keep: one meta dict for equal metas, one string for
    each repeated namespace or group name (the values stay those of each group)."""
    for job in ("a", "b", "c"):
        nomad_api.register_job(job, {"api": 1}, meta={"autoscaler.enabled": "true"})
    nomad_api.register_job("d", {"api": 1}, meta={"autoscaler.enabled": "true", "x": "1"})

    groups = {g.job: g for g in _discovery(nomad_api).groups().items}

    assert groups["a"].meta is groups["b"].meta is groups["c"].meta
    assert groups["d"].meta == {"autoscaler.enabled": "true", "x": "1"}
    assert groups["a"].group is groups["b"].group and groups["a"].namespace is groups["c"].namespace


def test_a_job_is_read_again_only_when_it_changed(nomad_api: NomadApiStandIn) -> None:
    nomad_api.register_job("web", {"api": 2})
    nomad_api.register_job("api", {"api": 2})
    discovery = _discovery(nomad_api)
    discovery.groups()
    discovery.groups()
    assert len(nomad_api.requests_to("GET", "/v1/job/web")) == 1
    nomad_api.register_job("web", {"api": 3}, meta={"autoscaler.enabled": "true"})
    (web,) = [g for g in discovery.groups().items if g.job == "web"]
    assert web.meta == {"autoscaler.enabled": "true"}
    assert len(nomad_api.requests_to("GET", "/v1/job/web")) == 2
    assert len(nomad_api.requests_to("GET", "/v1/job/api")) == 1


def test_a_blocking_query_returns_when_the_jobs_change(nomad_api: NomadApiStandIn) -> None:
    nomad_api.register_job("web", {"api": 2})
    discovery = _discovery(nomad_api)
    first = discovery.groups()
    timer = threading.Timer(0.5, lambda: nomad_api.deregister_job("web"))
    timer.start()
    started = time.monotonic()
    second = discovery.groups(index=first.index, wait=30)
    timer.join()
    assert 0.4 < time.monotonic() - started < 10
    assert second.items == () and second.index > first.index
    (request,) = [r for r in nomad_api.requests_to("GET", "/v1/jobs") if r.query.get("index")]
    assert request.query["index"] == str(first.index) and request.query["wait"] == "30000ms"


def test_a_blocking_query_that_times_out_returns_the_same_listing(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("web", {"api": 2})
    discovery = _discovery(nomad_api)
    first = discovery.groups()
    again = discovery.groups(index=first.index, wait=0.3)
    assert again == first


def test_an_unchanged_index_keeps_the_last_listing_until_it_is_due_for_a_full_read(
    nomad_api: NomadApiStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blocking query that ends with the index it asked about is not decoded (the list
    did not change; at 10,000 jobs each decode left resident memory higher). What moves no
    index, such as a token allowed a new namespace, shows at the next full read."""
    nomad_api.register_job("web", {"api": 2})
    nomad_api.register_job("billing", {"api": 1}, namespace="finance")
    nomad_api.enable_acl({"reader": {"default": ["list-jobs", "read-job"]}})
    discovery = _discovery(nomad_api, token="reader")
    first = discovery.groups()
    assert [g.job for g in first.items] == ["web"]

    nomad_api.enable_acl({"reader": {"*": ["list-jobs", "read-job"]}})  # no index moves
    again = discovery.groups(index=first.index, wait=0.2)
    assert again is first
    assert len([r for r in nomad_api.requests_to("GET", "/v1/jobs") if r.query.get("index")]) == 1

    monkeypatch.setattr("autoscaler.adapters.discovery.nomad.REDECODE_AFTER", 0.0)
    fresh = discovery.groups(index=first.index, wait=0.2)
    assert sorted(g.job for g in fresh.items) == ["billing", "web"]
    assert fresh.index == first.index


def test_a_changed_index_is_always_decoded(nomad_api: NomadApiStandIn) -> None:
    nomad_api.register_job("web", {"api": 2})
    discovery = _discovery(nomad_api)
    first = discovery.groups()
    nomad_api.register_job("api", {"api": 1})
    second = discovery.groups(index=first.index, wait=0.2)
    assert sorted(g.job for g in second.items) == ["api", "web"]
    assert discovery.groups(index=first.index, wait=0.2) == second  # an older index: decoded
    policies = discovery.scaling_policies()
    assert discovery.scaling_policies(index=policies.index, wait=0.2) is policies


def test_scaling_policies_come_with_nomads_payload(nomad_api: NomadApiStandIn) -> None:
    nomad_api.register_job(
        "shop",
        {"api": 2, "db": 1},
        namespace="prod",
        scaling={"api": (1, 10), "db": (1, 1)},
        policies={"api": POLICY},
    )
    listing = _discovery(nomad_api).scaling_policies()
    by_group = {p.target["Group"]: p for p in listing.items}
    assert set(by_group) == {"api", "db"}
    api = by_group["api"]
    assert (api.min, api.max, api.enabled, api.type) == (1, 10, True, "horizontal")
    assert api.target == {"Namespace": "prod", "Job": "shop", "Group": "api"}
    assert api.policy == POLICY
    assert by_group["db"].policy == {}
    reads = nomad_api.requests_to("GET", f"/v1/scaling/policy/{api.id}")
    assert reads and reads[0].query["namespace"] == "prod"


def test_a_scaling_policy_read_in_a_region_targets_its_group_in_that_region(
    nomad_api: NomadApiStandIn,
) -> None:
    # Nomad's Target names no region. A template's expansion of the same group carries
    # the region read (NOMAD_REGION), so the two had different target keys: a policy
    # taking the group over from the other found no cooldown and no down window.
    nomad_api.register_job(
        "shop", {"api": 2}, region="eu", scaling={"api": (1, 10)}, policies={"api": POLICY}
    )
    (found,) = _discovery(nomad_api, region="eu").scaling_policies().items
    policy, problems = policy_from_nomad(found, name="shop-api", file="<nomad>", load=load_data)
    assert policy is not None, problems
    assert policy.target.key == NomadTarget(job="shop", group="api", region="eu").key


def test_a_token_without_the_capability_is_told_which(nomad_api: NomadApiStandIn) -> None:
    nomad_api.enable_acl({"reader": {"*": ["read-job"]}})
    with pytest.raises(DiscoveryError, match="'list-jobs' capability in every namespace"):
        _discovery(nomad_api, token="reader").groups()


LEAST_PRIVILEGE = {"reader": {"prod": ["list-jobs", "read-job"], "dev": ["list-jobs"]}}


def test_a_job_the_token_may_not_read_is_left_out_and_the_others_are_listed(
    nomad_api: NomadApiStandIn,
) -> None:
    # One 403 on one job's read failed the whole listing: a token that may list jobs in
    # `dev` but read only those of `prod` discovered nothing anywhere.
    nomad_api.register_job("shop", {"web": 2}, namespace="prod", meta={"autoscaler.enabled": "1"})
    nomad_api.register_job("scratch", {"web": 1}, namespace="dev")
    nomad_api.enable_acl(LEAST_PRIVILEGE)
    listing = _discovery(nomad_api, token="reader").groups()
    assert [(g.namespace, g.job) for g in listing.items] == [("prod", "shop")]
    assert listing.refused == (Refused("dev", "scratch", kept=False),)


def test_a_job_refused_after_it_was_read_keeps_its_groups_and_is_not_asked_at_every_pass(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("shop", {"web": 2}, namespace="prod")
    nomad_api.register_job("scratch", {"web": 1}, namespace="dev")
    discovery = _discovery(nomad_api, token="reader")
    nomad_api.enable_acl({"reader": {"*": ["list-jobs", "read-job"]}})
    assert len(discovery.groups().items) == 2
    nomad_api.enable_acl(LEAST_PRIVILEGE)
    nomad_api.register_job("scratch", {"web": 3}, namespace="dev")  # a new version
    listing = discovery.groups()
    assert sorted(g.job for g in listing.items) == ["scratch", "shop"]  # its last groups
    assert listing.refused == (Refused("dev", "scratch", kept=True),)
    asked = len(nomad_api.requests_to("GET", "/v1/job/scratch"))
    nomad_api.register_job("cart", {"web": 1}, namespace="prod")  # the list changes
    assert len(discovery.groups().items) == 3
    assert len(nomad_api.requests_to("GET", "/v1/job/scratch")) == asked  # not asked again
    nomad_api.register_job("scratch", {"web": 4}, namespace="dev")  # its own new version
    assert discovery.groups().refused == (Refused("dev", "scratch", kept=True),)
    assert len(nomad_api.requests_to("GET", "/v1/job/scratch")) == asked + 1
    nomad_api.enable_acl({"reader": {"*": ["list-jobs", "read-job"]}})
    nomad_api.register_job("scratch", {"web": 5}, namespace="dev")
    assert discovery.groups().refused == ()


def test_jobs_of_namespaces_not_asked_for_are_never_read(nomad_api: NomadApiStandIn) -> None:
    nomad_api.register_job("shop", {"web": 2}, namespace="prod")
    nomad_api.register_job("books", {"web": 1}, namespace="finance")
    nomad_api.register_job("scratch", {"web": 1}, namespace="dev")
    nomad_api.enable_acl(LEAST_PRIVILEGE)
    discovery = _discovery(nomad_api, token="reader")
    listing = discovery.groups(namespaces=("prod",))
    assert ([g.job for g in listing.items], listing.refused) == (["shop"], ())
    assert nomad_api.requests_to("GET", "/v1/jobs")[-1].query["namespace"] == "prod"
    assert not nomad_api.requests_to("GET", "/v1/job/scratch")
    # several namespaces: one list of every namespace (one index to block on), filtered
    nomad_api.enable_acl(
        {"reader": {"*": ["list-jobs"], "prod": ["read-job"], "finance": ["read-job"]}}
    )
    listing = discovery.groups(namespaces=("prod", "finance"))
    assert (sorted(g.job for g in listing.items), listing.refused) == (["books", "shop"], ())
    assert nomad_api.requests_to("GET", "/v1/jobs")[-1].query["namespace"] == "*"
    assert not nomad_api.requests_to("GET", "/v1/job/scratch")


OPTED = {"autoscaler.enabled": "true"}


def _probes(nomad_api: NomadApiStandIn) -> list[str]:
    """The namespaces asked whether the token may list jobs there (an impossible prefix)."""
    return [
        r.query["namespace"]
        for r in nomad_api.requests_to("GET", "/v1/jobs")
        if "prefix" in r.query
    ]


def test_the_namespaces_a_wildcard_list_leaves_out_for_want_of_list_jobs_are_named(
    nomad_api: NomadApiStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nomad answers `GET /v1/jobs?namespace=*` with the jobs of the namespaces where the
    # token may list them, and says nothing of the others: team-b's opted-in job was
    # missed without a word.
    nomad_api.register_job("shop", {"web": 2}, meta=OPTED)
    nomad_api.register_job("books", {"web": 1}, namespace="team-b", meta=OPTED)
    nomad_api.add_namespace("quiet")  # may list there, nothing to list: no warning
    nomad_api.add_namespace("hidden")  # no capability: not seen, not asked
    nomad_api.enable_acl(
        {
            "reader": {
                "default": ["list-jobs", "read-job"],
                "team-b": ["read-job"],
                "quiet": ["list-jobs"],
            }
        }
    )
    discovery = _discovery(nomad_api, token="reader")
    listing = discovery.groups()
    assert [(g.namespace, g.job) for g in listing.items] == [("default", "shop")]
    assert listing.unlisted == ("team-b",)
    assert sorted(_probes(nomad_api)) == ["quiet", "team-b"]  # default showed jobs
    # Not asked again at every pass (blocking query or not), until it is due.
    for _ in range(3):
        assert discovery.groups(index=listing.index, wait=0.05).unlisted == ("team-b",)
    assert len(nomad_api.requests_to("GET", "/v1/namespaces")) == 1
    assert len(_probes(nomad_api)) == 2
    # Due again: the token may now list in team-b, and its job is discovered.
    monkeypatch.setattr("autoscaler.adapters.discovery.nomad.AUDIT_EVERY", 0.0)
    nomad_api.enable_acl({"reader": {"*": ["list-jobs", "read-job"]}})
    nomad_api.touch_job("shop")
    listing = discovery.groups()
    assert (sorted(g.job for g in listing.items), listing.unlisted) == (["books", "shop"], ())


def test_a_token_that_may_list_jobs_everywhere_is_told_nothing(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("shop", {"web": 2}, meta=OPTED)
    nomad_api.add_namespace("team-b")
    nomad_api.enable_acl({"reader": {"*": ["list-jobs", "read-job"]}})
    listing = _discovery(nomad_api, token="reader").groups()
    assert ([g.job for g in listing.items], listing.unlisted) == (["shop"], ())
    assert _probes(nomad_api) == ["team-b"]  # the namespace that showed no job


def test_a_namespace_list_nomad_refuses_leaves_discovery_alone_and_is_told_once(
    nomad_api: NomadApiStandIn,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    nomad_api.register_job("shop", {"web": 2}, meta=OPTED)
    nomad_api.register_job("books", {"web": 1}, namespace="team-b", meta=OPTED)
    nomad_api.enable_acl({"reader": {"default": ["list-jobs", "read-job"], "team-b": ["read-job"]}})
    nomad_api.namespaces_refusal = (403, "Permission denied")
    monkeypatch.setattr("autoscaler.adapters.discovery.nomad.AUDIT_EVERY", 0.0)
    discovery = _discovery(nomad_api, token="reader")
    for _ in range(3):
        listing = discovery.groups()
        assert ([g.job for g in listing.items], listing.unlisted) == (["shop"], ())
    assert len(nomad_api.requests_to("GET", "/v1/namespaces")) == 3  # tried at each due
    told = [r.getMessage() for r in caplog.records if "cannot check" in r.getMessage()]
    assert len(told) == 1, told
    assert "Nomad refused GET /v1/namespaces (Permission denied)" in told[0]


def test_the_scaling_policies_a_wildcard_list_leaves_out_are_named_by_namespace(
    nomad_api: NomadApiStandIn,
) -> None:
    for namespace in ("prod", "dev"):
        nomad_api.register_job(
            "shop",
            {"api": 1},
            namespace=namespace,
            scaling={"api": (1, 10)},
            policies={"api": {"check": []}},
        )
    nomad_api.enable_acl(
        {
            "reader": {
                "prod": ["list-scaling-policies", "read-scaling-policy"],
                "dev": ["read-job-scaling"],
            }
        }
    )
    listing = _discovery(nomad_api, token="reader").scaling_policies()
    assert [p.target["Namespace"] for p in listing.items] == ["prod"]
    assert listing.unlisted == ("dev",)


def test_the_namespace_list_is_nomads_filtered_by_the_tokens_capabilities(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.add_namespace("team-b", description="B", meta={"owner": "b"})
    nomad_api.add_namespace("denied")
    nomad_api.add_namespace("other")
    nomad_api.enable_acl(
        {"t": {"team-b": ["read-job"], "denied": ["deny"]}, "none": {}}, management=["root"]
    )

    def listed(token: str) -> list[dict[str, Any]]:
        answer = requests.get(
            f"{nomad_api.address}/v1/namespaces", headers={"X-Nomad-Token": token}, timeout=5
        )
        assert answer.status_code == 200, answer.text
        return list(answer.json())

    assert [ns["Name"] for ns in listed("none")] == []  # no capability: [], not a 403
    assert [ns["Name"] for ns in listed("root")] == ["default", "denied", "other", "team-b"]
    (team_b,) = listed("t")
    assert set(team_b) == {
        *("Name", "Description", "Quota", "Meta", "Capabilities", "CreateIndex", "ModifyIndex")
    }
    assert (team_b["Description"], team_b["Meta"]) == ("B", {"owner": "b"})


def test_a_job_read_failing_otherwise_still_fails_the_listing(nomad_api: NomadApiStandIn) -> None:
    # Only a refusal is one job's own: a 5xx or a timeout says nothing of the job, so the
    # listing fails and the last one stays in force, as before.
    nomad_api.register_job("shop", {"web": 2}, namespace="prod")
    nomad_api.fail_requests_of("shop", status=500, body="boom", methods=["GET"])
    with pytest.raises(DiscoveryError, match="HTTP 500"):
        _discovery(nomad_api).groups()


POLICY_READER = {
    "reader": {
        "prod": ["list-scaling-policies", "read-scaling-policy"],
        "dev": ["list-scaling-policies"],
    }
}


def test_a_scaling_policy_the_token_may_not_read_is_left_out_and_the_others_are_listed(
    nomad_api: NomadApiStandIn,
) -> None:
    # One 403 on one policy's read failed the whole listing: every imported policy of
    # every namespace stopped being refreshed because of one namespace.
    nomad_api.register_job("shop", {"web": 2}, namespace="prod", scaling={"web": (1, 5)})
    nomad_api.register_job("scratch", {"web": 1}, namespace="dev", scaling={"web": (1, 5)})
    nomad_api.enable_acl(POLICY_READER)
    listing = _discovery(nomad_api, token="reader").scaling_policies()
    assert [(p.target["Namespace"], p.target["Job"]) for p in listing.items] == [("prod", "shop")]
    assert listing.refused == (Refused("dev", "scratch", kept=False, group="web"),)


def test_a_scaling_policy_refused_after_it_was_read_keeps_its_version_and_is_not_asked_again(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("shop", {"web": 2}, namespace="prod", scaling={"web": (1, 5)})
    nomad_api.register_job("scratch", {"web": 1}, namespace="dev", scaling={"web": (1, 5)})
    discovery = _discovery(nomad_api, token="reader")
    nomad_api.enable_acl({"reader": {"*": ["list-scaling-policies", "read-scaling-policy"]}})
    (first, second) = discovery.scaling_policies().items
    scratch = first if first.target["Job"] == "scratch" else second
    nomad_api.enable_acl(POLICY_READER)
    nomad_api.register_job("scratch", {"web": 1}, namespace="dev", scaling={"web": (1, 9)})
    listing = discovery.scaling_policies()
    assert scratch in listing.items and len(listing.items) == 2  # its version read last
    assert listing.refused == (Refused("dev", "scratch", kept=True, group="web"),)
    path = f"/v1/scaling/policy/{scratch.id}"
    asked = len(nomad_api.requests_to("GET", path))
    nomad_api.register_job("cart", {"web": 1}, namespace="prod", scaling={"web": (1, 5)})
    assert len(discovery.scaling_policies().items) == 3  # the list changes
    assert len(nomad_api.requests_to("GET", path)) == asked  # not asked again
    nomad_api.register_job("scratch", {"web": 1}, namespace="dev", scaling={"web": (1, 8)})
    assert discovery.scaling_policies().refused == (Refused("dev", "scratch", True, "web"),)
    assert len(nomad_api.requests_to("GET", path)) == asked + 1  # its own new version
    nomad_api.enable_acl({"reader": {"*": ["list-scaling-policies", "read-scaling-policy"]}})
    nomad_api.register_job("scratch", {"web": 1}, namespace="dev", scaling={"web": (1, 7)})
    listing = discovery.scaling_policies()
    assert listing.refused == ()
    assert [p.max for p in listing.items if p.target["Job"] == "scratch"] == [7]


def test_an_unreachable_nomad_is_a_discovery_error(dead_prometheus_url: str) -> None:
    discovery = NomadDiscovery(NomadSettings(address=dead_prometheus_url, timeout=1))
    with pytest.raises(DiscoveryError, match="unreachable"):
        discovery.groups()


@pytest.mark.parametrize("body", [pytest.param("", id="empty"), pytest.param("null", id="null")])
def test_a_job_read_answered_with_no_object_is_a_failed_read_not_a_job_gone(
    nomad_api: NomadApiStandIn, body: str
) -> None:
    # A proxy (or a Nomad restarting) answering 200 with an empty body: the job was taken as
    # gone, and its groups' policies were removed; only a 404 says a job is gone.
    nomad_api.register_job("web", {"api": 2}, meta={"autoscaler.enabled": "true"})
    discovery = _discovery(nomad_api)
    assert [g.group for g in discovery.groups().items] == ["api"]
    nomad_api.register_job("web", {"api": 3}, meta={"autoscaler.enabled": "true"})
    nomad_api.fail_requests_of("web", status=200, body=body, methods=["GET"])
    with pytest.raises(DiscoveryError, match=r"GET /v1/job/web with nothing \(an empty body"):
        discovery.groups()
    nomad_api.heal("web")
    assert [g.group for g in discovery.groups().items] == ["api"]
    nomad_api.deregister_job("web")  # gone for real: its groups go
    assert discovery.groups().items == ()


def test_a_listed_job_whose_read_answers_404_keeps_its_groups_until_the_list_drops_it(
    nomad_api: NomadApiStandIn,
) -> None:
    # A 404 on the read of a job the list just showed (a proxy or ingress with no backend
    # while Nomad restarts answers 404 to every path) was cached as "no groups" at the
    # job's JobModifyIndex: its targets went, and it was not read again until the job
    # changed, which a job no policy scales any more may never do.
    nomad_api.register_job("web", {"api": 2}, meta={"autoscaler.enabled": "true"})
    discovery = _discovery(nomad_api)
    assert [g.group for g in discovery.groups().items] == ["api"]
    nomad_api.register_job("web", {"api": 3}, meta={"autoscaler.enabled": "true"})  # a scale
    nomad_api.fail_requests_of("web", status=404, body="404 page not found", methods=["GET"])
    assert [g.group for g in discovery.groups().items] == ["api"]  # still listed: kept
    nomad_api.heal("web")
    assert [g.group for g in discovery.groups().items] == ["api"]
    assert len(nomad_api.requests_to("GET", "/v1/job/web")) >= 3  # read again, not cached
    nomad_api.register_job("new", {"api": 1}, meta={"autoscaler.enabled": "true"})
    nomad_api.fail_requests_of("new", status=404, body="404 page not found", methods=["GET"])
    partial = discovery.groups()
    assert [g.job for g in partial.items] == ["web"]  # never read: left out
    nomad_api.heal("new")
    # At the next pass, even one whose blocking query ends with no change (whose list is
    # otherwise not decoded again for 10 minutes), it is read.
    again = discovery.groups(index=partial.index, wait=0.2)
    assert [g.job for g in again.items] == ["new", "web"]
    assert discovery.groups(index=again.index, wait=0.2) is again  # complete: reused
    nomad_api.deregister_job("web")  # gone for real: the list drops it, and its groups go
    assert [g.job for g in discovery.groups().items] == ["new"]


def test_a_job_read_answered_with_an_object_that_is_no_job_is_a_failed_read(
    nomad_api: NomadApiStandIn,
) -> None:
    # `{}` (a proxy's or a health endpoint's answer) was read as a job without groups and
    # cached at the job's JobModifyIndex: its targets went until the job changed again.
    nomad_api.register_job("web", {"api": 2}, meta={"autoscaler.enabled": "true"})
    discovery = _discovery(nomad_api)
    assert [g.group for g in discovery.groups().items] == ["api"]
    nomad_api.register_job("web", {"api": 3}, meta={"autoscaler.enabled": "true"})
    nomad_api.fail_requests_of("web", status=200, body="{}", methods=["GET"])
    with pytest.raises(DiscoveryError, match=r"GET /v1/job/web with an object that is no job"):
        discovery.groups()
    nomad_api.heal("web")
    assert [g.group for g in discovery.groups().items] == ["api"]
