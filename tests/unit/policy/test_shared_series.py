"""One series, one target: a template's grouped check that two of its targets select the
same series of fails for each of them (it holds scale-in), with a warning naming the
other target and the label that tells them apart; distinct series are untouched."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from autoscaler.core.discovered import NomadGroup
from autoscaler.policy.conflicts import Located
from autoscaler.policy.expansion import expand, one_series_each
from tests.unit.policy.test_templates import _group, _template

TWO_CHECKS = """\
name: "web-{namespace}-{job}-{group}"
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
  - name: cpu
    query: 'avg by (job, group) (cpu)'
    group_by: {job: "{job}", group: "{group}"}
    strategy: target-value
    target: 0.6
"""


def _expand(tmp_path: Path, *found: NomadGroup, text: str = TWO_CHECKS) -> list[Located]:
    template = _template(tmp_path, text)
    expanded = [expand(template, f) for f in found]
    assert all(isinstance(e, Located) for e in expanded)
    return [e for e in expanded if isinstance(e, Located)]


def test_two_groups_reading_one_series_both_fail_that_check_only(tmp_path: Path) -> None:
    web, worker, other = _expand(tmp_path, _group(), _group(group="worker"), _group("cart"))
    (web2, web_warnings), (worker2, worker_warnings), (other2, other_warnings) = one_series_each(
        [web, worker, other]
    )
    assert (other2, other_warnings) == (other, ())  # its own series: untouched
    for item, warnings, rival in (
        (web2, web_warnings, worker),
        (worker2, worker_warnings, web),
    ):
        rps, cpu = item.policy.checks
        assert rps.unsupported is not None
        assert rps.unsupported.startswith(
            f"ambiguous: {rival.policy.name} (nomad job api group "
            f"{rival.policy.name.rsplit('-', 1)[1]} in namespace shop) reads this same series "
            "(job='api') of the "
            "grouped query: add the label that tells them apart to the query's by (...) and "
            'to group_by (e.g. group: "{group}")'
        )
        assert "holds scale-in" in rps.unsupported
        assert cpu.unsupported is None  # (job, group): its own series, still read
        (warning,) = warnings
        assert (warning.file, warning.line) == (item.policy.source.file, item.name_line)
        assert warning.field == f"{item.policy.name}: checks[0].group_by"
        assert warning.message == rps.unsupported
    assert worker2.policy.checks[1] is worker.policy.checks[1]


def test_one_job_in_two_namespaces_is_told_to_group_by_namespace(tmp_path: Path) -> None:
    shop, staging = _expand(tmp_path, _group(), replace(_group(), namespace="staging"))
    (shop2, _), (staging2, _) = one_series_each([shop, staging])
    assert shop2.policy.checks[0].unsupported is not None
    assert 'group_by (e.g. namespace: "{namespace}")' in shop2.policy.checks[0].unsupported
    # (job, group) is shared too: the namespace tells them apart there as well
    assert staging2.policy.checks[1].unsupported is not None


def test_distinct_series_are_left_as_they_are(tmp_path: Path) -> None:
    found = _expand(tmp_path, _group("api"), _group("cart"), _group("shop", group="worker"))
    assert one_series_each(found) == [(item, ()) for item in found]


def test_many_readers_of_one_series_name_three_and_count_the_rest(tmp_path: Path) -> None:
    found = _expand(tmp_path, *(_group(group=f"g{i}") for i in range(6)))
    (first, _), *_ = one_series_each(found)
    message = first.policy.checks[0].unsupported
    assert message is not None
    assert message.startswith(
        "ambiguous: web-shop-api-g1 (nomad job api group g1 in namespace shop), web-shop-api-g2 "
        "(nomad job api group g2 in namespace shop), web-shop-api-g3 (nomad job api group g3 in "
        "namespace shop) and 2 more read "
    )


def test_two_versions_of_one_targets_policy_are_one_reader(tmp_path: Path) -> None:
    # Its new policy and the last good one the registry keeps running read one series: the
    # target's own, shared with nobody.
    (web,) = _expand(tmp_path, _group())
    (kept,) = _expand(tmp_path, _group(**{"autoscaler.max": "5"}))
    assert one_series_each([web, kept]) == [(web, ()), (kept, ())]


def test_a_check_no_longer_shared_is_read_again(tmp_path: Path) -> None:
    # A policy held while another target read its series (kept so by the registry) runs its
    # check again once that target is gone.
    web, worker = _expand(tmp_path, _group(), _group(group="worker"))
    (held, _), _ = one_series_each([web, worker])
    assert held.policy.checks[0].unsupported is not None
    ((alone, warnings),) = one_series_each([held])
    assert alone.policy == web.policy and warnings == ()


def test_targets_of_two_templates_reading_one_series_of_one_query_both_fail(
    tmp_path: Path,
) -> None:
    # The series of one query is the same data whichever template reads it: each group
    # would be sized on the job's traffic.
    (web,) = _expand(tmp_path, _group())
    other = TWO_CHECKS.replace('name: "web-', 'name: "svc-').replace(
        "autoscaler.enabled", "autoscaler.svc"
    )
    (tmp_path / "svc").mkdir()
    (worker,) = _expand(
        tmp_path / "svc", _group(group="worker", **{"autoscaler.svc": "true"}), text=other
    )
    (web2, _), (worker2, _) = one_series_each([web, worker])
    assert (web2.policy.checks[0].unsupported or "").startswith(
        "ambiguous: svc-shop-api-worker (nomad job api group worker in namespace shop) reads "
        "this same series (job='api')"
    )
    assert (worker2.policy.checks[0].unsupported or "").startswith("ambiguous: web-shop-api-web")
    assert web2.policy.checks[1].unsupported is None  # (job, group): each its own


def test_a_kept_policy_of_the_template_before_its_query_was_edited_still_shares_the_series(
    tmp_path: Path,
) -> None:
    # web keeps its last good policy (the query with [2m]); worker's is the edited
    # template's ([5m]): both read the job's series, whatever the query's text.
    (kept,) = _expand(tmp_path, _group())
    (worker,) = _expand(tmp_path, _group(group="worker"), text=TWO_CHECKS.replace("[2m]", "[5m]"))
    (worker2, _), (kept2, _) = one_series_each([worker, kept], kept=1)
    assert (kept2.policy.checks[0].unsupported or "").startswith(
        "ambiguous: web-shop-api-worker (nomad job api group worker in namespace shop) reads "
        "this same series (job='api')"
    )
    assert (worker2.policy.checks[0].unsupported or "").startswith("ambiguous: web-shop-api-web")
    assert kept2.policy.checks[1].unsupported is None  # cpu, (job, group): each its own


def test_a_kept_policy_reading_the_whole_job_is_held_but_not_a_target_reading_its_group(
    tmp_path: Path,
) -> None:
    # The owner followed the advice (group added to by (...) and group_by) while web keeps
    # its last good policy: web's series (job='api') is the whole job's, worker's included;
    # worker's (job='api', group='worker') is its own.
    (kept,) = _expand(tmp_path, _group())
    advised = TWO_CHECKS.replace(
        "sum by (job) (rate(http_requests_total[2m]))",
        "sum by (job, group) (rate(http_requests_total[2m]))",
    ).replace('group_by: {job: "{job}"}\n', 'group_by: {job: "{job}", group: "{group}"}\n')
    (worker,) = _expand(tmp_path, _group(group="worker"), text=advised)
    assert worker.policy.checks[0].select == (("job", "api"), ("group", "worker"))
    (worker2, worker_warnings), (kept2, kept_warnings) = one_series_each([worker, kept], kept=1)
    assert (kept2.policy.checks[0].unsupported or "").startswith(
        "ambiguous: web-shop-api-worker (nomad job api group worker in namespace shop) reads "
        "this series or a part of it (job='api')"
    )
    assert len(kept_warnings) == 1
    assert (worker2, worker_warnings) == (worker, ())


def test_one_template_check_read_in_two_versions_by_distinct_targets_is_untouched(
    tmp_path: Path,
) -> None:
    # A kept policy of the template as it was and a new one, of two jobs: no series shared.
    (kept,) = _expand(tmp_path, _group())
    (other,) = _expand(tmp_path, _group("cart"), text=TWO_CHECKS.replace("[2m]", "[5m]"))
    assert one_series_each([other, kept], kept=1) == [(other, ()), (kept, ())]
