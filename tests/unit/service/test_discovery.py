"""Discovery applied like a hot reload: targets added, changed and removed; a bad override or
a collision keeps that target's last good policy; a failing source keeps its last result."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from autoscaler.adapters.discovery.nomad import Listing, Refused
from autoscaler.core.discovered import NomadGroup, NomadScalingPolicy
from autoscaler.core.model import NomadTarget
from autoscaler.errors import DiscoveryError
from autoscaler.policy.loader import load_paths
from autoscaler.service.discovery import Discovery, DiscoveryConfig
from autoscaler.service.discovery_setup import with_discovered
from autoscaler.service.registry import PolicyRegistry
from tests.support.discovery import discovering, names
from tests.support.net import wait_until

TEMPLATE = """\
name: "web-{job}-{group}"
for_each:
  nomad: {meta: {autoscaler.enabled: "true"}}
min: 1
max: 20
checks:
  - name: rps
    query: 'sum by (job) (rate(http_requests_total[2m]))'
    group_by: {job: "{job}"}
    strategy: per-instance
    target: 10
"""


@dataclass
class FakeNomad:
    """Stands for `NomadDiscovery`: returns what the test sets, or fails."""

    groups_found: list[NomadGroup] = field(default_factory=list)
    policies_found: list[NomadScalingPolicy] = field(default_factory=list)
    fail: str | None = None
    fail_groups: str | None = None  # only the job listing fails
    reads: int = 0
    refused: tuple[Refused, ...] = ()  # jobs the token may not read
    refused_policies: tuple[Refused, ...] = ()  # scaling policies the token may not read
    asked: list[tuple[str, ...]] = field(default_factory=list)  # the namespaces of each read
    closed: bool = False

    def close(self) -> None:
        self.closed = True

    def groups(
        self, *, index: int = 0, wait: float = 0.0, namespaces: Collection[str] = ("*",)
    ) -> Listing[NomadGroup]:
        self.reads += 1
        self.asked.append(tuple(namespaces))
        if self.fail or self.fail_groups:
            raise DiscoveryError(self.fail or self.fail_groups or "")
        return Listing(tuple(self.groups_found), index + 1, self.refused)

    def scaling_policies(self, *, index: int = 0, wait: float = 0.0) -> Listing[NomadScalingPolicy]:
        if self.fail:
            raise DiscoveryError(self.fail)
        return Listing(tuple(self.policies_found), index + 1, self.refused_policies)


def _opted(job: str, group: str = "web", **meta: str) -> NomadGroup:
    return NomadGroup(
        namespace="default", job=job, group=group, meta={"autoscaler.enabled": "true", **meta}
    )


def _setup(
    tmp_path: Path, nomad: FakeNomad, *, policies: bool = False
) -> tuple[PolicyRegistry, Discovery]:
    (tmp_path / "web.yaml").write_text(TEMPLATE)
    return discovering(
        tmp_path, nomad=nomad, config=DiscoveryConfig(nomad_scaling_policies=policies)
    )


def _apply(registry: PolicyRegistry, discovery: Discovery):  # type: ignore[no-untyped-def]
    discovery.read_once(registry.templates())
    return registry.refresh()


def test_discovered_targets_are_added_changed_and_removed_like_a_reload(tmp_path: Path) -> None:
    nomad = FakeNomad(
        [_opted("a"), _opted("b"), NomadGroup(namespace="default", job="c", group="web")]
    )
    registry, discovery = _setup(tmp_path, nomad)
    outcome = _apply(registry, discovery)
    assert sorted(outcome.added) == ["web-a-web", "web-b-web"]
    assert names(registry) == ["web-a-web", "web-b-web"]

    nomad.groups_found = [_opted("a", **{"autoscaler.max": "5"})]
    outcome = _apply(registry, discovery)
    assert outcome.updated == ("web-a-web",) and outcome.removed == ("web-b-web",)
    policy = registry.get("web-a-web")
    assert policy is not None and policy.max == 5


def test_a_bad_override_keeps_that_targets_last_good_policy(tmp_path: Path) -> None:
    nomad = FakeNomad([_opted("a"), _opted("b")])
    registry, discovery = _setup(tmp_path, nomad)
    _apply(registry, discovery)
    nomad.groups_found = [
        _opted("a", **{"autoscaler.min": "lots"}),
        _opted("b", **{"autoscaler.max": "7"}),
    ]
    outcome = _apply(registry, discovery)
    assert outcome.updated == ("web-b-web",)
    assert outcome.kept and "nomad/-/default/a/web" in outcome.kept[0]
    kept = registry.get("web-a-web")
    assert kept is not None and kept.min == 1
    assert any("autoscaler.min" in p.field for p in outcome.problems)


def test_each_expanded_policy_lists_only_its_own_targets_problems(tmp_path: Path) -> None:
    # Matched by the template's file, every expanded policy listed every target's problems:
    # 10,000 targets with a bad override gave 10,000 x 10,000 entries in `GET /v1/policies`.
    jobs = [f"j{i}" for i in range(300)]
    nomad = FakeNomad([_opted(job) for job in jobs])
    registry, discovery = _setup(tmp_path, nomad)
    _apply(registry, discovery)
    nomad.groups_found = [_opted(job, **{"autoscaler.typo": "1"}) for job in jobs]
    outcome = _apply(registry, discovery)
    assert len(outcome.problems) == len(jobs)  # the top-level list keeps them all
    for job in ("j0", "j150", "j299"):
        policy = registry.get(f"web-{job}-web")
        assert policy is not None
        (problem,) = registry.problems_of(policy)
        assert problem.field == f"Nomad job {job!r} group 'web' (namespace default): meta " + (
            "autoscaler.typo"
        )


def test_a_broken_template_file_is_listed_on_each_of_its_expanded_policies(
    tmp_path: Path,
) -> None:
    nomad = FakeNomad([_opted("a"), _opted("b")])
    registry, discovery = _setup(tmp_path, nomad)
    _apply(registry, discovery)
    (tmp_path / "web.yaml").write_text(TEMPLATE.replace("max: 20", "max: lots"))
    registry.reload()  # its targets keep their policies of the last good template
    for name in ("web-a-web", "web-b-web"):
        policy = registry.get(name)
        assert policy is not None
        assert [p.field for p in registry.problems_of(policy)] == ["max"]


def test_an_interval_override_under_1s_keeps_that_targets_last_good_policy(
    tmp_path: Path,
) -> None:
    nomad = FakeNomad([_opted("a")])
    registry, discovery = _setup(tmp_path, nomad)
    _apply(registry, discovery)
    nomad.groups_found = [_opted("a", **{"autoscaler.interval": "1ms"})]
    outcome = _apply(registry, discovery)
    kept = registry.get("web-a-web")
    assert kept is not None and kept.interval.total_seconds() == 30
    (problem,) = outcome.problems
    assert (problem.file, problem.line) == (str(tmp_path / "web.yaml"), 1)
    assert problem.field == "Nomad job 'a' group 'web' (namespace default): interval"
    assert "1ms is shorter than 1s (did you mean 1m?)" in problem.message


def test_a_new_target_with_a_bad_override_is_not_loaded(tmp_path: Path) -> None:
    registry, discovery = _setup(tmp_path, FakeNomad([_opted("a", **{"autoscaler.max": "-1"})]))
    outcome = _apply(registry, discovery)
    assert registry.policies() == []
    assert "expected a whole number" in outcome.problems[0].message


def test_a_target_keeps_its_last_good_policy_when_lines_above_its_template_move(
    tmp_path: Path,
) -> None:
    # The target's key held the template's line: a comment added at the top of the file
    # made it a new target, which has no last good policy to keep.
    nomad = FakeNomad([_opted("a")])
    registry, discovery = _setup(tmp_path, nomad)
    _apply(registry, discovery)
    nomad.groups_found = [_opted("a", **{"autoscaler.max": "eight"})]
    _apply(registry, discovery)  # a runs on its last good policy
    (tmp_path / "web.yaml").write_text("# scaled by the platform team\n\n" + TEMPLATE)
    outcome = registry.reload()
    assert names(registry) == ["web-a-web"] and not outcome.removed
    assert any("autoscaler.max" in p.field for p in outcome.problems)


def test_a_hand_written_policy_wins_over_the_template_for_its_target(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "name: a\ntarget: {type: nomad, job: a, group: web}\nmin: 1\nmax: 3\n"
        "checks:\n  - {name: c, strategy: fixed, count: 2}\n"
    )
    registry, discovery = _setup(tmp_path, FakeNomad([_opted("a"), _opted("b")]))
    outcome = _apply(registry, discovery)
    assert names(registry) == ["a", "web-b-web"]
    assert any("already scaled by policy 'a'" in p.message for p in outcome.problems)


def test_a_failing_source_keeps_the_last_discovered_set_and_says_why(tmp_path: Path) -> None:
    # Counted as the targets that stay in force, not every group listed (c is not opted in).
    nomad = FakeNomad(
        [_opted("a"), _opted("b"), NomadGroup(namespace="default", job="c", group="web")]
    )
    registry, discovery = _setup(tmp_path, nomad)
    _apply(registry, discovery)
    nomad.fail = "Nomad at http://nomad:4646 unreachable"
    outcome = _apply(registry, discovery)
    assert names(registry) == ["web-a-web", "web-b-web"]
    assert not outcome.changed
    (problem,) = outcome.problems
    assert problem.file == "<discovery: Nomad jobs>"
    assert "unreachable" in problem.message
    assert "the 2 targets found last stay in force" in problem.message

    nomad.fail = None
    assert _apply(registry, discovery).problems == ()


def test_a_failing_source_is_no_policy_problem(tmp_path: Path) -> None:
    # Nomad unreachable must not count as an invalid policy (the metrics, the alert on them).
    nomad = FakeNomad([_opted("a", **{"autoscaler.max": "-1"})])
    registry, discovery = _setup(tmp_path, nomad)
    _apply(registry, discovery)
    nomad.fail = "Nomad at http://nomad:4646 unreachable"
    outcome = _apply(registry, discovery)
    failing, bad_override = outcome.problems
    assert failing.file == "<discovery: Nomad jobs>" and "autoscaler.max" in bad_override.field
    assert outcome.sources_failing == (failing,)
    assert outcome.policy_problems == (bad_override,)


def test_two_groups_reading_one_series_hold_on_that_check_and_it_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # `group_by: {job}` over a job whose meta opts every group in: both groups read the
    # job's one series, and the worker (no HTTP) was scaled in on the web group's traffic.
    nomad = FakeNomad([_opted("shop"), _opted("shop", "worker"), _opted("cart")])
    registry, discovery = _setup(tmp_path, nomad)
    with caplog.at_level(logging.WARNING, logger="autoscaler.registry"):
        outcome = _apply(registry, discovery)
        _apply(registry, discovery)  # a later settling: nothing new to say
    for name, other in (("web-shop-web", "web-shop-worker"), ("web-shop-worker", "web-shop-web")):
        policy = registry.get(name)
        assert policy is not None and policy.checks[0].unsupported is not None
        assert policy.checks[0].unsupported.startswith(
            f"ambiguous: {other} (nomad job shop group {other.rsplit('-', 1)[1]}) reads this same "
            "series (job='shop') of the grouped query"
        )
        # its own warning only, not its template's other targets' (as for problems)
        assert [w.field for w in registry.warnings_of(policy)] == [f"{name}: checks[0].group_by"]
    cart = registry.get("web-cart-web")
    assert cart is not None and cart.checks[0].unsupported is None
    assert registry.warnings_of(cart) == []
    assert not outcome.problems
    assert sorted(w.field for w in outcome.warnings) == [
        "web-shop-web: checks[0].group_by",
        "web-shop-worker: checks[0].group_by",
    ]
    logged = [r.getMessage() for r in caplog.records if "ambiguous" in r.getMessage()]
    assert len(logged) == 2, logged

    nomad.groups_found = [_opted("shop"), _opted("cart")]  # the worker opts out
    outcome = _apply(registry, discovery)
    assert outcome.updated == ("web-shop-web",) and not outcome.warnings
    web = registry.get("web-shop-web")
    assert web is not None and web.checks[0].unsupported is None


def test_jobs_nomad_refused_to_read_are_a_source_problem_saying_which_and_why(
    tmp_path: Path,
) -> None:
    # A refused job's targets are unknown, as a failing source's: `plan` exits 3 for it
    # (a source problem), and no invalid policy is counted.
    nomad = FakeNomad([_opted("a")], refused=(Refused("dev", "scratch", kept=False),))
    registry, discovery = _setup(tmp_path, nomad)
    outcome = _apply(registry, discovery)
    assert names(registry) == ["web-a-web"]
    (problem,) = outcome.sources_failing
    assert (problem.file, problem.field) == ("<discovery: Nomad jobs>", "(source)")
    assert problem.message.startswith("partly read: Nomad refused to let the token read 1 job")
    assert "'read-job' capability in namespace 'dev'" in problem.message
    assert "dev/scratch;" in problem.message and outcome.policy_problems == ()

    nomad.refused = ()
    assert _apply(registry, discovery).problems == ()


def test_scaling_policies_nomad_refused_to_read_are_a_source_problem_saying_which_and_why(
    tmp_path: Path,
) -> None:
    # One refused policy failed the whole scaling-policy listing: every imported policy
    # stopped being refreshed. Now the others are, and the refused one is named (by its
    # target) as a problem of the source, as refused jobs are.
    refused = Refused("dev", "scratch", kept=False, group="web")
    nomad = FakeNomad(policies_found=[_scaling_block("shop", "api")], refused_policies=(refused,))
    registry, discovery = _setup(tmp_path, nomad, policies=True)
    outcome = _apply(registry, discovery)
    assert names(registry) == ["shop.api"]
    (problem,) = outcome.sources_failing
    assert (problem.file, problem.field) == ("<discovery: Nomad scaling policies>", "(source)")
    assert problem.message.startswith(
        "partly read: Nomad refused to let the token read 1 scaling policy (the token needs "
        "the 'read-scaling-policy' capability in namespace 'dev'), left out unless read "
        "before: dev/scratch/web; give the token 'read-scaling-policy' there"
    ), problem.message
    assert outcome.policy_problems == ()

    nomad.refused_policies = (Refused("dev", "scratch", kept=True, group="web"),)
    (problem,) = _apply(registry, discovery).sources_failing
    assert "dev/scratch/web (its version read last stays in force)" in problem.message
    nomad.refused_policies = ()
    assert _apply(registry, discovery).problems == ()


def test_a_partly_read_source_is_logged_once_as_a_warning_not_as_an_invalid_policy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Discovery warns of it once per change; the registry logged it again, as an error
    # ("invalid policy: <discovery: ...>"), at every settling that found it new and at
    # every reload. A source that fails entirely still is an error of the registry's.
    nomad = FakeNomad([_opted("a")], refused=(Refused("dev", "scratch", kept=False),))
    registry, discovery = _setup(tmp_path, nomad)
    with caplog.at_level(logging.INFO, logger="autoscaler"):
        _apply(registry, discovery)
        _apply(registry, discovery)
        registry.reload()
    logged = [
        (r.levelname, r.getMessage()) for r in caplog.records if "dev/scratch" in r.getMessage()
    ]
    assert [level for level, _ in logged] == ["WARNING"], logged
    assert logged[0][1].startswith("discovery from Nomad jobs partly read: Nomad refused")

    caplog.clear()
    nomad.fail = "Nomad at http://nomad:4646 unreachable"
    with caplog.at_level(logging.INFO, logger="autoscaler"):
        _apply(registry, discovery)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(e.startswith("invalid policy: <discovery: Nomad jobs>") for e in errors), errors


def test_nomads_job_list_is_read_in_the_namespaces_the_templates_look_in(tmp_path: Path) -> None:
    nomad = FakeNomad([_opted("a")])
    (tmp_path / "prod.yaml").write_text(
        TEMPLATE.replace("web-", "prod-").replace('"true"}}', '"true"}, namespace: prod}')
    )
    registry, discovery = _setup(tmp_path, nomad)
    (tmp_path / "web.yaml").unlink()
    (tmp_path / "qa.yaml").write_text(
        TEMPLATE.replace("web-", "qa-").replace('"true"}}', '"true"}, namespace: qa}')
    )
    registry.reload()
    _apply(registry, discovery)
    assert nomad.asked[-1] == ("prod", "qa")
    (tmp_path / "web.yaml").write_text(TEMPLATE)  # every namespace
    registry.reload()
    _apply(registry, discovery)
    assert nomad.asked[-1:] == [("*",)]  # a slice: mypy keeps `[-1]` narrowed to the pair


def test_an_unchanged_target_reuses_its_expansion(tmp_path: Path) -> None:
    nomad = FakeNomad([_opted("a")])
    registry, discovery = _setup(tmp_path, nomad)
    _apply(registry, discovery)
    first = registry.get("web-a-web")
    registry.reload()  # the template file is read again: a new, equal template
    _apply(registry, discovery)
    assert registry.get("web-a-web") is first


def test_nomad_scaling_policies_are_translated_and_bounds_only_blocks_ignored(
    tmp_path: Path,
) -> None:
    check = {
        "rps": [
            {
                "source": "prometheus",
                "query": "sum(x)",
                "strategy": [{"target-value": [{"target": 5.0}]}],
            }
        ]
    }
    nomad = FakeNomad(
        policies_found=[
            NomadScalingPolicy(
                id="p1",
                min=1,
                max=4,
                target={"Namespace": "default", "Job": "shop", "Group": "api"},
                policy={"check": [check]},
            ),
            NomadScalingPolicy(
                id="p2",
                min=1,
                max=4,
                target={"Namespace": "default", "Job": "shop", "Group": "db"},
                policy={},
            ),
        ]
    )
    registry, discovery = _setup(tmp_path, nomad, policies=True)
    outcome = _apply(registry, discovery)
    assert outcome.added == ("shop.api",)
    policy = registry.get("shop.api")
    assert policy is not None and policy.description.startswith("Nomad scaling policy p1")


def _scaling_block(job: str, group: str) -> NomadScalingPolicy:
    check = {
        "rps": [
            {
                "source": "prometheus",
                "query": "sum(x)",
                "strategy": [{"target-value": [{"target": 5.0}]}],
            }
        ]
    }
    return NomadScalingPolicy(
        id=f"{job}-{group}",
        min=1,
        max=4,
        target={"Namespace": "default", "Job": job, "Group": group},
        policy={"check": [check]},
    )


@pytest.mark.parametrize("jobs_first", [pytest.param(True, id="jobs-first"), False])
def test_a_template_scales_its_group_rather_than_nomads_policy_whichever_answers_first(
    tmp_path: Path, jobs_first: bool
) -> None:
    # The service watches the two sources in two threads: the one that answered first ran
    # (a running policy keeps its target), where `plan` shows the template's, as documented.
    nomad = FakeNomad([_opted("shop", group="api")], [_scaling_block("shop", "api")])
    nomad.fail_groups = None if jobs_first else "Nomad at http://nomad:4646: 500"
    registry, discovery = _setup(tmp_path, nomad, policies=True)
    _apply(registry, discovery)
    nomad.fail_groups = None
    outcome = _apply(registry, discovery)
    assert names(registry) == ["web-shop-api"]
    (problem,) = outcome.problems
    assert problem.file == (
        "<Nomad scaling policy shop-api (job 'shop' group 'api', namespace default)>"
    )
    assert "template 'web-{job}-{group}'" in problem.message
    policies, _ = with_discovered(load_paths([tmp_path]), discovery)  # as plan sees them
    assert [p.name for p in policies] == ["web-shop-api"]


def test_nomads_policy_keeps_a_group_whose_opt_in_has_a_bad_override(tmp_path: Path) -> None:
    # The owner opts in with a typo (`autoscaler.max = "eight"`): the template's policy is
    # refused, and Nomad's, which ran, yielded to it anyway: nothing scaled the group.
    nomad = FakeNomad([], [_scaling_block("shop", "api")])
    registry, discovery = _setup(tmp_path, nomad, policies=True)
    _apply(registry, discovery)
    assert names(registry) == ["shop.api"]
    nomad.groups_found = [_opted("shop", group="api", **{"autoscaler.max": "eight"})]
    _apply(registry, discovery)
    assert names(registry) == ["shop.api"]
    imported = registry.get("shop.api")
    assert imported is not None
    (note,) = registry.problems_of(imported)  # says why it runs, though the group opted in
    assert "its policy for the group is refused (see that template's" in note.message
    nomad.groups_found = [_opted("shop", group="api", **{"autoscaler.max": "8"})]  # fixed
    _apply(registry, discovery)
    assert names(registry) == ["web-shop-api"]
    nomad.groups_found = [_opted("shop", group="api", **{"autoscaler.max": "eight"})]
    _apply(registry, discovery)  # the template's last good policy keeps the group
    assert names(registry) == ["web-shop-api"]


NAMED = (
    "name: {name}\ntarget: {{type: nomad, job: other, group: web}}\nmin: 1\nmax: 3\n"
    "checks:\n  - {{name: c, strategy: fixed, count: 2}}\n"
)


def test_nomads_policy_keeps_a_group_whose_template_policy_is_refused_for_its_name(
    tmp_path: Path,
) -> None:
    # A hand-written policy holds the name the template gives the group: the expansion is
    # refused, and Nomad's policy yielded to it anyway: nothing scaled the group, and the
    # only word of it said the template scaled it.
    (tmp_path / "other.yaml").write_text(NAMED.format(name="web-shop-api"))
    nomad = FakeNomad([_opted("shop", group="api")], [_scaling_block("shop", "api")])
    registry, discovery = _setup(tmp_path, nomad, policies=True)
    outcome = _apply(registry, discovery)
    assert names(registry) == ["shop.api", "web-shop-api"]
    imported = registry.get("shop.api")
    assert imported is not None
    assert isinstance(imported.target, NomadTarget) and imported.target.job == "shop"
    (note,) = registry.problems_of(imported)
    assert note.file.startswith("<Nomad scaling policy shop-api")
    assert "opted in to template 'web-{job}-{group}'" in note.message
    assert "its policy for the group ('web-shop-api') is refused" in note.message
    assert "duplicate policy name 'web-shop-api'" in " ".join(p.message for p in outcome.problems)
    policies, problems = with_discovered(load_paths([tmp_path]), discovery)  # as plan sees them
    assert sorted(p.name for p in policies) == ["shop.api", "web-shop-api"]
    assert note in problems


def test_a_group_goes_from_its_template_to_nomads_policy_and_back_as_the_name_clash_comes_and_goes(
    tmp_path: Path,
) -> None:
    nomad = FakeNomad([_opted("shop", group="api")], [_scaling_block("shop", "api")])
    registry, discovery = _setup(tmp_path, nomad, policies=True)
    _apply(registry, discovery)
    assert names(registry) == ["web-shop-api"]
    # The template is renamed onto a name a hand-written policy holds: its old policy is
    # gone with its old name, the new one is refused, and Nomad's takes the group.
    (tmp_path / "other.yaml").write_text(NAMED.format(name="svc-shop-api"))
    (tmp_path / "web.yaml").write_text(TEMPLATE.replace("web-{job}", "svc-{job}"))
    registry.reload()
    assert names(registry) == ["shop.api", "svc-shop-api"]
    (tmp_path / "other.yaml").write_text(NAMED.format(name="other"))
    outcome = registry.reload()  # the clash is gone: the template's policy takes the group
    assert names(registry) == ["other", "svc-shop-api"]
    assert outcome.removed == ("shop.api",)
    policy = registry.get("svc-shop-api")
    assert policy is not None
    assert isinstance(policy.target, NomadTarget) and policy.target.job == "shop"


def test_nomads_policy_runs_a_group_whose_template_is_disabled(tmp_path: Path) -> None:
    nomad = FakeNomad([_opted("shop", group="api")], [_scaling_block("shop", "api")])
    registry, discovery = _setup(tmp_path, nomad, policies=True)
    (tmp_path / "web.yaml").write_text(TEMPLATE.replace("min: 1", "enabled: false\nmin: 1"))
    registry.reload()
    outcome = _apply(registry, discovery)
    assert names(registry) == ["shop.api", "web-shop-api"] and outcome.problems == ()


def test_the_service_starts_once_every_source_answered(tmp_path: Path) -> None:
    # The job listing answers after Nomad's scaling policies: settled on the first answer,
    # Nomad's policy would run first, for a moment, on a group the template scales.
    answered = threading.Event()

    class Slow(FakeNomad):
        def groups(
            self, *, index: int = 0, wait: float = 0.0, namespaces: Collection[str] = ("*",)
        ) -> Listing[NomadGroup]:
            answered.wait(5)
            return super().groups(index=index, wait=wait, namespaces=namespaces)

        def scaling_policies(
            self, *, index: int = 0, wait: float = 0.0
        ) -> Listing[NomadScalingPolicy]:
            try:
                return super().scaling_policies(index=index, wait=wait)
            finally:
                answered.set()

    nomad = Slow([_opted("shop", group="api")], [_scaling_block("shop", "api")])
    (tmp_path / "web.yaml").write_text(TEMPLATE)
    discovery = Discovery(
        DiscoveryConfig(nomad_scaling_policies=True, min_gap=0.05, first_wait=10.0),
        nomad=lambda: nomad,  # type: ignore[arg-type,return-value]
        aws=lambda region: pytest.fail("no AWS here"),
    )
    registry = PolicyRegistry([str(tmp_path)], discover=discovery)
    try:
        registry.reload()
        assert names(registry) == ["web-shop-api"]
    finally:
        discovery.close()


def test_closing_discovery_stops_what_the_nomad_reader_runs_beside_its_reads(
    tmp_path: Path,
) -> None:
    # Nomad's check of the namespaces its lists leave out went on after the service
    # stopped, and held the process's exit until it ended.
    nomad = FakeNomad([_opted("shop")])
    registry, discovery = _setup(tmp_path, nomad)
    _apply(registry, discovery)
    discovery.close()
    assert nomad.closed


def test_with_discovered_gives_files_first_then_expansions(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(TEMPLATE)
    nomad = FakeNomad([_opted("a"), _opted("a", group="worker")])
    discovery = Discovery(
        DiscoveryConfig(),
        nomad=lambda: nomad,  # type: ignore[arg-type,return-value]
        aws=lambda region: pytest.fail("no AWS here"),
        watch=False,
    )
    policies, problems = with_discovered(load_paths([tmp_path]), discovery)
    assert [p.name for p in policies] == ["web-a-web", "web-a-worker"]
    assert problems == [] and nomad.reads == 1


def test_a_broken_template_file_keeps_its_last_good_template(tmp_path: Path) -> None:
    nomad = FakeNomad([_opted("a")])
    registry, discovery = _setup(tmp_path, nomad)
    _apply(registry, discovery)
    (tmp_path / "web.yaml").write_text(TEMPLATE.replace("max: 20", "max: lots"))
    outcome = registry.reload()
    assert names(registry) == ["web-a-web"]
    assert any(p.field == "max" for p in outcome.problems)
    nomad.groups_found = [_opted("a"), _opted("b")]
    _apply(registry, discovery)  # the last good template still expands new targets
    assert names(registry) == ["web-a-web", "web-b-web"]


def test_health_counts_reads_failures_and_the_targets_each_source_gave(tmp_path: Path) -> None:
    nomad = FakeNomad(
        [_opted("a"), _opted("b"), NomadGroup(namespace="default", job="c", group="web")]
    )
    registry, discovery = _setup(tmp_path, nomad)
    _apply(registry, discovery)
    (health,) = discovery.health()
    assert (health.source, health.up, health.targets) == ("Nomad jobs", True, 2)
    assert (health.reads, health.failures) == (1, 0)
    assert health.last_success is not None
    succeeded_at = health.last_success

    nomad.fail = "Nomad at http://nomad:4646 unreachable"
    _apply(registry, discovery)
    (health,) = discovery.health()
    assert (health.up, health.targets, health.reads, health.failures) == (False, 2, 1, 1)
    assert health.last_success == succeeded_at  # the last good result stays in force

    nomad.fail = None
    nomad.groups_found = [_opted("a")]
    _apply(registry, discovery)
    (health,) = discovery.health()
    assert (health.up, health.targets, health.reads, health.failures) == (True, 1, 2, 1)


def test_a_source_never_read_successfully_is_down_with_no_targets(tmp_path: Path) -> None:
    nomad = FakeNomad(fail="403 Forbidden")
    registry, discovery = _setup(tmp_path, nomad)
    _apply(registry, discovery)
    (health,) = discovery.health()
    assert (health.up, health.targets, health.reads, health.failures) == (False, 0, 0, 1)
    assert health.last_success is None


def test_a_discovered_pseudo_file_is_named_by_a_string_not_a_path(tmp_path: Path) -> None:
    """10,000 discovered targets each keep their pseudo-file: named by its key as a `Path`
    of it would spell it, but held as a string (a `Path` keeps its parts as well)."""
    registry, discovery = _setup(tmp_path, FakeNomad([_opted("a//b")]))
    discovery.read_once(registry.templates())
    (load,), _ = discovery(registry.templates())
    key = f"discovered:nomad/-/default/a//b/web@{tmp_path / 'web.yaml'}#web-{{job}}-{{group}}"
    assert type(load.path) is str and load.path == str(Path(key))


class _Counting:
    """A discovery reader that counts its reads: Nomad answering without an index, or an
    AWS listing that is always throttled."""

    def __init__(self) -> None:
        self.reads = 0

    def close(self) -> None:
        """Nothing runs beside the reads."""

    def groups(self, *args: object, **kwargs: object) -> object:
        self.reads += 1
        if args:  # AsgDiscovery.groups(tags)
            raise DiscoveryError("Rate exceeded (Throttling)")
        return Listing((), 0)  # no X-Nomad-Index: nothing to block on


ASG_TEMPLATE = """\
name: "asg-{asg}"
for_each:
  aws_asg: {tags: {"autoscaler:enabled": "true"}, region: eu-west-3}
min: 1
max: 20
checks:
  - {name: c, strategy: fixed, count: 2}
"""


@pytest.mark.parametrize(
    "template", [pytest.param(TEMPLATE, id="nomad-no-index"), pytest.param(ASG_TEMPLATE, id="aws")]
)
def test_a_source_is_never_read_more_often_than_its_poll_when_it_cannot_block_or_fails(
    tmp_path: Path, template: str
) -> None:
    # Nomad without X-Nomad-Index was listed in full every second; a throttled AWS listing
    # was retried after 1, 2, 4, 8 s, more often than a healthy one (every `poll`).
    reader = _Counting()
    (tmp_path / "t.yaml").write_text(template)
    config = DiscoveryConfig(poll=0.4, min_gap=0.01, max_backoff=0.05, wait=5.0)
    discovery = Discovery(
        config,
        nomad=lambda: reader,  # type: ignore[arg-type,return-value]
        aws=lambda region: reader,  # type: ignore[arg-type,return-value]
    )
    registry = PolicyRegistry([str(tmp_path)], discover=discovery)
    try:
        registry.reload()
        wait_until(lambda: reader.reads >= 1, timeout=5, what="a first read")
        time.sleep(1.0)
        assert reader.reads <= 5, reader.reads  # at most 1 + 1.0 / 0.4 (+1 of slack)
    finally:
        discovery.close()


class _GoingBack:
    """Nomad's job list whose index goes back once (a cluster restored from a snapshot):
    100, then 50, then 51 on; it records the index each read was given."""

    def __init__(self) -> None:
        self.given: list[int] = []

    def close(self) -> None:
        """Nothing runs beside the reads."""

    def groups(self, *, index: int = 0, wait: float = 0.0, **kwargs: object) -> object:
        self.given.append(index)
        return Listing((), {1: 100, 2: 50}.get(len(self.given), 48 + len(self.given)))


def test_an_index_that_goes_back_is_read_again_from_0_at_once_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Reset to 0 as it should, it was then taken for an answer without X-Nomad-Index: the
    # next read waited a whole `poll` (30 s by default), and the log said Nomad sent no index.
    reader = _GoingBack()
    (tmp_path / "t.yaml").write_text(TEMPLATE)
    config = DiscoveryConfig(poll=30.0, min_gap=0.01, wait=5.0)
    discovery = Discovery(
        config,
        nomad=lambda: reader,  # type: ignore[arg-type,return-value]
        aws=lambda region: pytest.fail("no AWS here"),
    )
    registry = PolicyRegistry([str(tmp_path)], discover=discovery)
    try:
        with caplog.at_level(logging.WARNING, logger="autoscaler.discovery"):
            registry.reload()
            wait_until(lambda: len(reader.given) >= 4, timeout=5, what="four reads")
    finally:
        discovery.close()
    assert reader.given[:4] == [0, 100, 0, 51]
    assert not [r for r in caplog.records if "without an index" in r.getMessage()]


class _Answering:
    """An AWS discovery reader that finds no group, and counts its reads."""

    def __init__(self) -> None:
        self.reads = 0

    def groups(self, tags: object) -> tuple[object, ...]:
        self.reads += 1
        return ()


def test_a_poll_beyond_what_a_thread_can_wait_keeps_the_watcher_until_closed(
    tmp_path: Path,
) -> None:
    # Before, stop.wait(1e10) raised OverflowError after the first read: the watcher died.
    reader = _Answering()
    (tmp_path / "t.yaml").write_text(ASG_TEMPLATE)
    discovery = Discovery(
        DiscoveryConfig(poll=1e10),
        nomad=lambda: pytest.fail("no Nomad here"),
        aws=lambda region: reader,  # type: ignore[arg-type,return-value]
    )
    registry = PolicyRegistry([str(tmp_path)], discover=discovery)
    try:
        registry.reload()
        wait_until(lambda: reader.reads >= 1, timeout=5, what="a first read")
        time.sleep(0.2)
        (watcher,) = [t for t in threading.enumerate() if t.name.startswith("discover ")]
        assert watcher.is_alive()
    finally:
        discovery.close()
    watcher.join(5)
    assert not watcher.is_alive()


HAND_WRITTEN_ON_SHOP_API = (
    "name: {name}\ntarget: {{type: nomad, job: shop, group: api}}\nmin: 1\nmax: 3\n"
    "checks:\n  - {{name: c, strategy: fixed, count: 2}}\n"
)


@pytest.mark.parametrize("holder", ["hand-written", "another template"])
def test_nomads_policy_standing_aside_names_the_policy_that_holds_its_group(
    tmp_path: Path, holder: str
) -> None:
    # It named the first template the group opted in to, "which scales it", when that
    # template's policy was refused and another one scaled the group.
    nomad = FakeNomad([_opted("shop", group="api")], [_scaling_block("shop", "api")])
    if holder == "hand-written":
        (tmp_path / "z.yaml").write_text(HAND_WRITTEN_ON_SHOP_API.format(name="mine"))
        registry, discovery = _setup(tmp_path, nomad, policies=True)
        outcome = _apply(registry, discovery)
        name, where = "mine", f"{tmp_path / 'z.yaml'}:1"
    else:  # the one running first keeps the group when a template before it comes
        (tmp_path / "z.yaml").write_text(TEMPLATE.replace("web-{job}", "svc-{job}"))
        registry, discovery = _setup(tmp_path, nomad, policies=True)
        (tmp_path / "web.yaml").unlink()
        registry.reload()
        _apply(registry, discovery)
        assert names(registry) == ["svc-shop-api"]
        (tmp_path / "web.yaml").write_text(TEMPLATE)
        outcome = registry.reload()  # its policy for the group is refused
        name, where = "svc-shop-api", f"{tmp_path / 'z.yaml'}:1"
    assert names(registry) == [name]
    (aside,) = [p for p in outcome.problems if p.file.startswith("<Nomad scaling policy")]
    assert f"the group is scaled by policy {name!r} ({where})" in aside.message
    assert "template 'web-{job}-{group}'" not in aside.message
    if holder == "hand-written":  # as plan sees it (from scratch, the first template wins)
        policies, problems = with_discovered(load_paths([tmp_path]), discovery)
        on_shop = [
            p.name for p in policies if isinstance(p.target, NomadTarget) and p.target.job == "shop"
        ]
        assert on_shop == [name]
        assert aside in problems


def test_a_schedule_clamped_into_an_owners_max_is_that_policys_load_warning(
    tmp_path: Path,
) -> None:
    # The clamp the owner's autoscaler.max makes of a template's schedule (hard limits)
    # is said where the policy's other warnings are: its own `load_warnings` in the API.
    schedule = (
        "schedules:\n  - {name: office, start: 2026-01-01T00:00:00Z, "
        "end: 2099-01-01T00:00:00Z, min: 4, max: 30}\n"
    )
    (tmp_path / "web.yaml").write_text(TEMPLATE.replace("max: 20\n", "max: 20\n" + schedule))
    nomad = FakeNomad([_opted("shop", **{"autoscaler.max": "5"}), _opted("cart")])
    registry, discovery = discovering(tmp_path, nomad=nomad)
    _apply(registry, discovery)
    shop, cart = registry.get("web-shop-web"), registry.get("web-cart-web")
    assert shop is not None and cart is not None
    (warning,) = registry.warnings_of(shop)
    assert (warning.field, warning.line) == ("web-shop-web: schedules[0].max", 1)
    assert warning.message.startswith("schedule office max 30 is above meta autoscaler.max 5")
    assert registry.warnings_of(cart) == []
    assert shop.schedules[0].max == 5
