"""A series two targets read is ambiguous whatever state either target is in: one kept on
its last good policy (its new one has a bad override) still reads it, so both fail that
check (they hold scale-in); once it reads its series alone again, the check runs again."""

from __future__ import annotations

from pathlib import Path

from autoscaler.core.model import Policy
from autoscaler.service.registry import PolicyRegistry
from tests.unit.service.test_discovery import TEMPLATE, FakeNomad, _apply, _opted, _setup

BAD_MIN = {"autoscaler.min": "abc"}
# the advice of the warning followed: group added to the query's by (...) and to group_by
ADVISED = TEMPLATE.replace("by (job)", "by (job, group)").replace(
    'group_by: {job: "{job}"}', 'group_by: {job: "{job}", group: "{group}"}'
)


def _shared_with(registry: PolicyRegistry, name: str) -> str | None:
    """The reason `name`'s grouped check fails (None: it reads its series)."""
    policy = registry.get(name)
    assert policy is not None, f"{name} is not in force"
    return policy.checks[0].unsupported


def _warned(registry: PolicyRegistry, policy: Policy | None) -> list[str]:
    assert policy is not None
    return [w.field for w in registry.warnings_of(policy)]


def test_a_target_kept_on_its_last_good_policy_still_shares_the_series_with_its_partner(
    tmp_path: Path,
) -> None:
    # web and worker both read job='shop' (both held); web's new policy has a bad
    # override, so its last good one keeps running: worker read the job's series as its
    # own and could scale in on web's traffic.
    nomad = FakeNomad([_opted("shop"), _opted("shop", "worker")])
    registry, discovery = _setup(tmp_path, nomad)
    _apply(registry, discovery)
    nomad.groups_found = [_opted("shop", **BAD_MIN), _opted("shop", "worker")]
    outcome = _apply(registry, discovery)
    assert any("nomad/-/default/shop/web" in kept for kept in outcome.kept)
    worker = _shared_with(registry, "web-shop-worker")
    assert worker is not None
    assert worker.startswith(
        "ambiguous: web-shop-web (nomad job shop group web) reads this same series (job='shop')"
    )
    web = _shared_with(registry, "web-shop-web")
    assert web is not None
    assert web.startswith(
        "ambiguous: web-shop-worker (nomad job shop group worker) reads this same series "
        "(job='shop')"
    )
    assert not outcome.updated  # both were held already, and still are


def test_a_target_kept_on_its_last_good_policy_is_held_too_when_a_partner_joins(
    tmp_path: Path,
) -> None:
    # web ran alone (its series its own); then its override goes bad while worker opts in:
    # both ran on the job's one series, neither held.
    nomad = FakeNomad([_opted("shop")])
    registry, discovery = _setup(tmp_path, nomad)
    _apply(registry, discovery)
    assert _shared_with(registry, "web-shop-web") is None
    nomad.groups_found = [_opted("shop", **BAD_MIN), _opted("shop", "worker")]
    outcome = _apply(registry, discovery)
    assert any("nomad/-/default/shop/web" in kept for kept in outcome.kept)
    assert outcome.added == ("web-shop-worker",) and outcome.updated == ("web-shop-web",)
    assert (_shared_with(registry, "web-shop-worker") or "").startswith("ambiguous: web-shop-web")
    assert (_shared_with(registry, "web-shop-web") or "").startswith("ambiguous: web-shop-worker")
    web = registry.get("web-shop-web")
    assert web is not None and web.min == 1  # its last good policy, held on that check
    assert _warned(registry, web) == ["web-shop-web: checks[0].group_by"]
    assert "web-shop-web: checks[0].group_by" in [w.field for w in outcome.warnings]

    # worker opts out, web's override still bad: its last good policy reads its series again
    nomad.groups_found = [_opted("shop", **BAD_MIN)]
    outcome = _apply(registry, discovery)
    assert outcome.removed == ("web-shop-worker",) and outcome.updated == ("web-shop-web",)
    assert _shared_with(registry, "web-shop-web") is None
    assert _warned(registry, registry.get("web-shop-web")) == []


def test_a_target_whose_new_policy_is_refused_still_shares_the_series(tmp_path: Path) -> None:
    # A hand-written policy holds the name web's expansion would take: web's policy is
    # refused, but the job's series still carries web's traffic, so worker is held.
    (tmp_path / "other.yaml").write_text(
        "name: web-shop-web\ntarget: {type: nomad, job: other, group: x}\nmin: 1\nmax: 3\n"
        "checks:\n  - {name: c, strategy: fixed, count: 2}\n"
    )
    nomad = FakeNomad([_opted("shop"), _opted("shop", "worker")])
    registry, discovery = _setup(tmp_path, nomad)
    outcome = _apply(registry, discovery)
    assert any("duplicate policy name 'web-shop-web'" in p.message for p in outcome.problems)
    # named with its target: the policy in force of that name is the hand-written one
    assert (_shared_with(registry, "web-shop-worker") or "").startswith(
        "ambiguous: web-shop-web (nomad job shop group web) reads this same series"
    )


def _kept_while_the_template_changes(tmp_path: Path, text: str) -> PolicyRegistry:
    """web and worker read one series (both held); then web's override goes bad (its last
    good policy kept) while the template is edited to `text`."""
    nomad = FakeNomad([_opted("shop"), _opted("shop", "worker")])
    registry, discovery = _setup(tmp_path, nomad)
    _apply(registry, discovery)
    nomad.groups_found = [_opted("shop", **BAD_MIN), _opted("shop", "worker")]
    (tmp_path / "web.yaml").write_text(text)
    discovery.read_once(registry.templates())
    registry.reload()
    _apply(registry, discovery)
    return registry


def test_a_kept_policy_still_shares_the_series_after_the_templates_query_is_edited(
    tmp_path: Path,
) -> None:
    # web's last good policy reads the job's series with [2m], worker's new one with [5m]:
    # the same traffic. Before, the query's text told them apart: web's hold was cleared,
    # and worker read job='shop' as its own.
    registry = _kept_while_the_template_changes(tmp_path, TEMPLATE.replace("[2m]", "[5m]"))
    worker = registry.get("web-shop-worker")
    assert worker is not None and "[5m]" in (worker.checks[0].query or "")
    assert (_shared_with(registry, "web-shop-worker") or "").startswith("ambiguous: web-shop-web")
    assert (_shared_with(registry, "web-shop-web") or "").startswith("ambiguous: web-shop-worker")


def test_a_kept_policy_reading_the_whole_job_is_held_once_the_advice_is_followed(
    tmp_path: Path,
) -> None:
    # The owner adds group to by (...) and group_by: worker reads its own series
    # (job='shop', group='worker'); web's last good policy still reads the whole job's,
    # worker's traffic included, so it stays held.
    registry = _kept_while_the_template_changes(tmp_path, ADVISED)
    assert (_shared_with(registry, "web-shop-web") or "").startswith(
        "ambiguous: web-shop-worker (nomad job shop group worker) reads this series or a "
        "part of it (job='shop')"
    )
    worker = registry.get("web-shop-worker")
    assert worker is not None and worker.checks[0].select == (("job", "shop"), ("group", "worker"))
    assert worker.checks[0].unsupported is None


def _second_template(tmp_path: Path, text: str) -> None:
    """svc.yaml: `text` as a template of its own, for the groups with autoscaler.svc."""
    (tmp_path / "svc.yaml").write_text(
        text.replace('name: "web-', 'name: "svc-').replace("autoscaler.enabled", "autoscaler.svc")
    )


def test_targets_of_two_template_files_with_one_query_both_fail_in_the_registry(
    tmp_path: Path,
) -> None:
    nomad = FakeNomad([_opted("shop"), _opted("shop", "worker", **{"autoscaler.svc": "true"})])
    registry, discovery = _setup(tmp_path, nomad)
    _second_template(tmp_path, TEMPLATE)
    registry.reload()
    _apply(registry, discovery)
    assert (_shared_with(registry, "web-shop-web") or "").startswith("ambiguous: svc-shop-worker")
    assert (_shared_with(registry, "svc-shop-worker") or "").startswith("ambiguous: web-shop-web")


def test_two_template_files_with_other_queries_at_one_check_share_nothing(
    tmp_path: Path,
) -> None:
    # Same check name and index, other queries: other series, whichever labels they select.
    nomad = FakeNomad([_opted("shop"), _opted("shop", "worker", **{"autoscaler.svc": "true"})])
    registry, discovery = _setup(tmp_path, nomad)
    _second_template(tmp_path, TEMPLATE.replace("http_requests_total", "jobs_processed_total"))
    registry.reload()
    _apply(registry, discovery)
    assert _shared_with(registry, "web-shop-web") is None
    assert _shared_with(registry, "svc-shop-worker") is None


QUEUE = """\
name: "queue-{job}-{group}"
for_each:
  nomad: {meta: {autoscaler.queue: "true"}}
min: 1
max: 20
checks:
  - name: rps
    query: 'sum by (job) (rate(jobs_processed_total[2m]))'
    group_by: {job: "{job}"}
    strategy: per-instance
    target: 10
"""


def _two_templates_in_one_file(tmp_path: Path, second: str) -> PolicyRegistry:
    """web.yaml holds the web template and `second`, whose `rps` check reads another metric;
    job shop's group web is opted in to the first, its group worker to the second."""
    worker = _opted("shop", "worker", **{"autoscaler.enabled": "false", "autoscaler.queue": "true"})
    registry, discovery = _setup(tmp_path, FakeNomad([_opted("shop"), worker]))
    (tmp_path / "web.yaml").write_text(TEMPLATE + "---\n" + second)
    registry.reload()
    _apply(registry, discovery)
    return registry


def test_two_templates_of_one_file_with_a_check_of_one_name_share_no_series(
    tmp_path: Path,
) -> None:
    # Their checks were taken for two versions of one template check, so compared by
    # labels whatever the query: web (requests of job shop) and worker (jobs processed by
    # job shop) were held as ambiguous for good, scale-in with them.
    registry = _two_templates_in_one_file(tmp_path, QUEUE)
    assert _shared_with(registry, "web-shop-web") is None
    assert _shared_with(registry, "queue-shop-worker") is None
    grouped = QUEUE.replace("by (job)", "by (job, group)").replace(
        'group_by: {job: "{job}"}', 'group_by: {job: "{job}", group: "{group}"}'
    )
    registry = _two_templates_in_one_file(tmp_path, grouped)
    assert _shared_with(registry, "web-shop-web") is None


def test_two_templates_of_one_file_stay_apart_when_one_targets_policy_changes(
    tmp_path: Path,
) -> None:
    # Every policy in force that a new one replaced (an override changed, or one carrying
    # a hold) was compared by its template check: web and worker were held by turns, one
    # at each settling, and the warning logged at each.
    worker = _opted("shop", "worker", **{"autoscaler.enabled": "false", "autoscaler.queue": "true"})
    nomad = FakeNomad([_opted("shop"), worker])
    registry, discovery = _setup(tmp_path, nomad)
    (tmp_path / "web.yaml").write_text(TEMPLATE + "---\n" + QUEUE)
    registry.reload()
    _apply(registry, discovery)
    nomad.groups_found = [_opted("shop", **{"autoscaler.max": "7"}), worker]
    for _ in range(4):
        _apply(registry, discovery)
        assert _shared_with(registry, "web-shop-web") is None
        assert _shared_with(registry, "queue-shop-worker") is None


def test_two_template_files_of_one_query_with_group_by_in_another_order_share_a_series(
    tmp_path: Path,
) -> None:
    # The labels selected, in the order group_by gave them, told the series apart.
    by_two = TEMPLATE.replace("by (job)", "by (job, namespace)").replace(
        'group_by: {job: "{job}"}', 'group_by: {job: "{job}", namespace: "{namespace}"}'
    )
    other = (
        by_two.replace("web-{job}-{group}", "queue-{job}-{group}")
        .replace("autoscaler.enabled", "autoscaler.queue")
        .replace(
            'group_by: {job: "{job}", namespace: "{namespace}"}',
            'group_by: {namespace: "{namespace}", job: "{job}"}',
        )
    )
    worker = _opted("shop", "worker", **{"autoscaler.enabled": "false", "autoscaler.queue": "true"})
    registry, discovery = _setup(tmp_path, FakeNomad([_opted("shop"), worker]))
    (tmp_path / "web.yaml").write_text(by_two)
    (tmp_path / "queue.yaml").write_text(other)
    registry.reload()
    _apply(registry, discovery)
    assert _shared_with(registry, "web-shop-web")
    assert _shared_with(registry, "queue-shop-worker")


def test_a_kept_target_shares_its_series_with_a_template_whose_group_by_was_reordered(
    tmp_path: Path,
) -> None:
    # Its labels in the other order made another series to the check (same query), and
    # worker read the job's series, web's traffic included, as its own.
    by_two = TEMPLATE.replace("by (job)", "by (job, namespace)").replace(
        'group_by: {job: "{job}"}', 'group_by: {job: "{job}", namespace: "{namespace}"}'
    )
    reordered = by_two.replace(
        'group_by: {job: "{job}", namespace: "{namespace}"}',
        'group_by: {namespace: "{namespace}", job: "{job}"}',
    )
    nomad = FakeNomad([_opted("shop"), _opted("shop", "worker")])
    registry, discovery = _setup(tmp_path, nomad)
    (tmp_path / "web.yaml").write_text(by_two)
    registry.reload()
    _apply(registry, discovery)
    assert _shared_with(registry, "web-shop-web")
    nomad.groups_found = [_opted("shop", **BAD_MIN), _opted("shop", "worker")]
    (tmp_path / "web.yaml").write_text(reordered)
    discovery.read_once(registry.templates())
    registry.reload()
    _apply(registry, discovery)
    assert _shared_with(registry, "web-shop-worker")
    assert _shared_with(registry, "web-shop-web")
