"""Policy templates: validated offline at their lines, expanded per discovered target with
its overrides (a bad one is that target's problem only), sharing what they do not change."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
import yaml

from autoscaler.core.discovered import AsgGroup, NomadGroup
from autoscaler.core.model import AsgTarget, NomadTarget
from autoscaler.errors import Problem
from autoscaler.policy.conflicts import Claims, Located
from autoscaler.policy.expansion import expand
from autoscaler.policy.loader import json_schema, load_file, load_paths
from autoscaler.policy.templates import Template

TEMPLATE = """\
name: "web-{job}-{group}"
description: "{job}/{group} in {namespace}"
for_each:
  nomad: {meta: {autoscaler.enabled: "true"}}
target: {type: nomad, job: "{job}", group: "{group}"}
min: 1
max: 20
cooldown: {up: 30s, down: 2m}
checks:
  - name: rps
    query: 'sum by (job) (rate(http_requests_total[2m]))'
    group_by: {job: "{job}"}
    strategy: per-instance
    target: 10
  - name: floor
    strategy: fixed
    count: 2
"""

ASG_TEMPLATE = """\
name: "asg-{asg}"
for_each:
  aws_asg: {tags: {"autoscaler:enabled": "true"}, region: eu-west-3}
min: 2
max: 30
checks:
  - name: cpu
    query: avg by (asg) (cpu_usage)
    group_by: {asg: "{asg}"}
    strategy: target-value
    target: 0.6
"""


def _template(tmp_path: Path, text: str = TEMPLATE) -> Template:
    path = tmp_path / "web.yaml"
    path.write_text(text)
    found = load_file(path)
    assert not found.problems and not found.policies
    (template,) = found.templates
    return template


def _group(job: str = "api", group: str = "web", **meta: str) -> NomadGroup:
    return NomadGroup(
        namespace="shop", job=job, group=group, meta={"autoscaler.enabled": "true", **meta}
    )


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    return [str(p).replace(str(path), "t.yaml") for p in load_file(path).problems]


def test_a_template_expands_to_a_policy_named_for_its_target(tmp_path: Path) -> None:
    template = _template(tmp_path)
    located = expand(template, _group())
    assert isinstance(located, Located)
    policy = located.policy
    assert policy.name == "web-api-web"
    assert policy.description == "api/web in shop"
    assert policy.target == NomadTarget(job="api", group="web", namespace="shop")
    assert policy.checks[0].select == (("job", "api"),)
    assert policy.checks[0].query == "sum by (job) (rate(http_requests_total[2m]))"
    assert policy.source.file.endswith("web.yaml") and policy.source.line == 1


def test_expanded_policies_share_what_the_template_gives_them(tmp_path: Path) -> None:
    template = _template(tmp_path)
    a, b = expand(template, _group("a")), expand(template, _group("b"))
    assert isinstance(a, Located) and isinstance(b, Located)
    assert a.policy.cooldown is b.policy.cooldown is template.prototype.cooldown
    assert a.policy.limits is b.policy.limits
    assert a.policy.checks[1] is b.policy.checks[1]  # no group_by: the same check object
    assert a.policy.checks[0].query is b.policy.checks[0].query


def test_placeholders_in_alert_triggers_are_expanded_per_target(tmp_path: Path) -> None:
    # Alerts are matched by exact name: `Slow-{job}` left as is would never fire.
    text = TEMPLATE.replace("min: 1\n", 'min: 1\ntriggers: {alerts: ["Slow-{job}", Full]}\n')
    located = expand(_template(tmp_path, text), _group("api"))
    assert isinstance(located, Located)
    assert located.policy.triggers.alerts == ("Slow-api", "Full")

    text = TEMPLATE.replace("min: 1\n", "min: 1\ntriggers: {alerts: [Full]}\n")
    template = _template(tmp_path, text)
    located = expand(template, _group("api"))
    assert isinstance(located, Located)
    assert located.policy.triggers is template.prototype.triggers  # shared, not rebuilt


def test_overrides_from_meta_win_over_the_template(tmp_path: Path) -> None:
    group = _group(
        **{
            "autoscaler.min": "3",
            "autoscaler.max": "8",
            "autoscaler.check.rps.target": "25",
            "autoscaler.interval": "15s",
            "autoscaler.dry_run": "true",
            "autoscaler.cooldown.down": "10m",
        }
    )
    located = expand(_template(tmp_path), group)
    assert isinstance(located, Located)
    policy = located.policy
    assert (policy.min, policy.max, policy.checks[0].target) == (3, 8, 25.0)
    assert policy.interval.total_seconds() == 15 and policy.dry_run
    assert policy.cooldown.down.total_seconds() == 600 and policy.cooldown.up.total_seconds() == 30


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        pytest.param({"autoscaler.min": "three"}, "expected a whole number", id="not-a-number"),
        pytest.param({"autoscaler.min": "30"}, "min 30 is above max 20", id="min-above-max"),
        pytest.param({"autoscaler.target": "0"}, "a number above 0", id="target-zero"),
        pytest.param({"autoscaler.check.nope.target": "5"}, "no check 'nope'", id="no-check"),
        pytest.param({"autoscaler.interval": "soon"}, "not a duration", id="bad-duration"),
        # As a file's: under 1s, a policy evaluates back to back (and `5ms` means `5m`).
        pytest.param({"autoscaler.interval": "1ms"}, "shorter than 1s", id="interval-under-1s"),
        pytest.param({"autoscaler.mxa": "5"}, "unknown override", id="typo"),
        pytest.param({"autoscaler.dry_run": "yes"}, "true or false", id="bad-bool"),
        # A file's `max: 0` is refused; an override must not make one (a scale to 0).
        pytest.param({"autoscaler.min": "0", "autoscaler.max": "0"}, "from 1 to", id="max-zero"),
    ],
)
def test_a_bad_override_is_that_targets_problem_only(
    tmp_path: Path, meta: dict[str, str], message: str
) -> None:
    template = _template(tmp_path)
    result = expand(template, _group(**meta))
    assert isinstance(result, list) and result
    assert all(isinstance(p, Problem) for p in result)
    assert message in " ".join(p.message for p in result)
    assert "Nomad job 'api' group 'web'" in result[0].field
    assert isinstance(expand(template, _group("other")), Located)


def test_a_target_override_sets_the_only_check_with_a_target(tmp_path: Path) -> None:
    located = expand(_template(tmp_path), _group(**{"autoscaler.target": "2.5"}))
    assert isinstance(located, Located)
    assert located.policy.checks[0].target == 2.5


def test_a_template_matches_on_merged_meta_and_namespace(tmp_path: Path) -> None:
    template = _template(tmp_path)
    assert template.matches(_group())
    assert not template.matches(_group(**{"autoscaler.enabled": "false"}))
    assert not template.matches(NomadGroup(namespace="shop", job="a", group="b"))
    assert not template.matches(AsgGroup(name="x", tags={"autoscaler.enabled": "true"}))


def test_an_asg_template_takes_its_region_and_tag_overrides(tmp_path: Path) -> None:
    template = _template(tmp_path, ASG_TEMPLATE)
    found = AsgGroup(
        name="checkout",
        region="eu-west-3",
        tags={"autoscaler:enabled": "true", "autoscaler:max": "12", "team": "shop"},
    )
    assert template.matches(found)
    assert not template.matches(AsgGroup(name="x", region="us-east-1", tags=found.tags))
    located = expand(template, found)
    assert isinstance(located, Located)
    assert located.policy.name == "asg-checkout"
    assert located.policy.target == AsgTarget(asg="checkout", region="eu-west-3")
    assert located.policy.max == 12
    assert located.policy.checks[0].select == (("asg", "checkout"),)


@pytest.mark.parametrize(
    ("job", "group"), [("my job", "web"), ("api", "web\n")], ids=["space", "final-newline"]
)
def test_a_name_that_does_not_expand_to_a_valid_name_is_a_problem(
    tmp_path: Path, job: str, group: str
) -> None:
    # (`re.match` with `$` let a name end with a newline: into logs, API paths, state keys.)
    result = expand(_template(tmp_path), _group(job=job, group=group))
    assert isinstance(result, list)
    assert "not a valid policy name" in result[0].message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            ('group_by: {job: "{job}"}', 'group_by: {job: "{jbo}"}'),
            "t.yaml:12: checks[0].group_by.job: unknown placeholder {jbo}",
            id="unknown-placeholder",
        ),
        pytest.param(
            ('group_by: {job: "{job}"}', "group_by: {job: web}"),
            "holds no placeholder",
            id="constant-group-by",
        ),
        pytest.param(
            ("min: 1\n", 'min: 1\ntriggers: {alerts: [Full, "Slow-{jbo}"]}\n'),
            "t.yaml:7: triggers.alerts[1]: unknown placeholder {jbo}",
            id="unknown-placeholder-in-an-alert",
        ),
        pytest.param(
            ('"web-{job}-{group}"', '"web-{job}"'),
            "t.yaml:1: name: 'web-{job}' lacks {group}",
            id="name-not-unique",
        ),
        pytest.param(
            ('job: "{job}"', "job: checkout"),
            "t.yaml:5: target.job: must be '{job}'",
            id="fixed-target",
        ),
        pytest.param(
            ("type: nomad,", "type: aws-asg, asg: x,"),
            "t.yaml:5: target.type: for_each nomad discovers nomad targets",
            id="wrong-target-type",
        ),
        pytest.param(
            ('nomad: {meta: {autoscaler.enabled: "true"}}', "nomad: {meta: {a: true}}"),
            "t.yaml:4: for_each.nomad.meta.a: expected text",
            id="meta-not-text",
        ),
        pytest.param(
            ('nomad: {meta: {autoscaler.enabled: "true"}}', "nomad: {tags: {a: b}}"),
            "unknown key 'tags': use meta, namespace",
            id="unknown-for-each-key",
        ),
        pytest.param(
            ("max: 20", "max: 0"),
            "t.yaml:7: max: must be >= 1",
            id="body-checked-as-a-policy",
        ),
        pytest.param(
            (
                "sum by (job) (rate(http_requests_total[2m]))",
                'sum(rate(http_requests_total{job="{job}"}[2m]))',
            ),
            "t.yaml:11: checks[0].query: {job} in a query is sent as is",
            id="placeholder-in-query",
        ),
        pytest.param(
            (
                "    strategy: fixed\n    count: 2",
                '    strategy: fixed\n    count: 2\n    group_by: {job: "{job}"}',
            ),
            "group_by needs a query",
            id="group-by-without-query",
        ),
    ],
)
def test_template_problems_are_located(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in TEMPLATE
    problems = _problems(tmp_path, TEMPLATE.replace(old, new))
    assert any(expected in p for p in problems), problems


def test_discovery_looks_in_every_namespace_but_each_target_scales_in_one(
    tmp_path: Path,
) -> None:
    everywhere = TEMPLATE.replace(
        'nomad: {meta: {autoscaler.enabled: "true"}}',
        'nomad: {meta: {autoscaler.enabled: "true"}, namespace: "*"}',
    ).replace('group: "{group}"}', 'group: "{group}", namespace: "{namespace}"}')
    located = expand(_template(tmp_path, everywhere), _group())
    assert isinstance(located, Located)
    assert located.policy.target == NomadTarget(job="api", group="web", namespace="shop")

    wildcard = everywhere.replace('namespace: "{namespace}"}', 'namespace: "*"}')
    problems = _problems(tmp_path, wildcard)  # besides: it must be '{namespace}' here
    assert any(p.startswith("t.yaml:5: target.namespace: '*' is a wildcard") for p in problems)


def test_another_sources_placeholder_in_an_asg_templates_query_is_refused(
    tmp_path: Path,
) -> None:
    # `{job}` is no placeholder of aws_asg, but is sent as literally: the check never had
    # data and its targets held for ever, while validate said the template was valid.
    text = ASG_TEMPLATE.replace("avg by (asg) (cpu_usage)", 'avg(cpu_usage{job="{job}"})')
    problems = _problems(tmp_path, text)
    (found,) = [p for p in problems if "checks[0].query: {job} in a query is sent as is" in p]
    # ... and its advice is the template's own placeholders (group_by: {job: "{job}"}, the
    # advice for a nomad template, was refused in its turn).
    assert "no placeholder of for_each aws_asg (use {asg})" in found


@pytest.mark.parametrize(
    ("name", "for_each", "expected"),
    [
        pytest.param(
            "web-{job}-{group}",
            "{nomad: {meta: {autoscaler.enabled: true}}}",
            [
                "t.yaml:2: for_each.nomad.meta.autoscaler.enabled: expected text, got a boolean "
                'True: write "true" in quotes (meta and tag values are text)'
            ],
            id="unquoted-boolean",
        ),
        pytest.param(
            "asg-{asg}",
            "{aws_asg: {tags: {team: 7}}}",
            [
                "t.yaml:2: for_each.aws_asg.tags.team: expected text, got an integer 7: "
                'write "7" in quotes (meta and tag values are text)'
            ],
            id="unquoted-number",
        ),
        pytest.param(
            "web-{job}-{group}",
            "{nomad: {meta: {}}}",
            ["t.yaml:2: for_each.nomad.meta: needs at least one item"],
            id="empty-meta",
        ),
        pytest.param(
            "web-{job}-{group}",
            '{nomad: {metas: {a: "b"}}}',
            [
                "t.yaml:2: for_each.nomad.meta: missing: `meta` is required",
                "t.yaml:2: for_each.nomad.metas: unknown key 'metas': use meta, namespace",
            ],
            id="misspelt-key",
        ),
        pytest.param(
            "web-{job}-{group}",
            '{nomd: {meta: {a: "b"}}}',
            ["t.yaml:2: for_each.nomd: unknown key 'nomd': use nomad, aws_asg"],
            id="misspelt-source",
        ),
    ],
)
def test_an_invalid_for_each_is_the_only_problem_of_a_template_without_a_target(
    tmp_path: Path, name: str, for_each: str, expected: list[str]
) -> None:
    # The target defaults to what for_each discovers: left out, it is not missing.
    text = f'name: "{name}"\nfor_each: {for_each}\nmin: 1\nmax: 5\n'
    text += "checks:\n  - {name: c, strategy: fixed, count: 2}\n"
    assert sorted(_problems(tmp_path, text)) == expected


@pytest.mark.parametrize(
    ("template", "change", "expected"),
    [
        pytest.param(
            ASG_TEMPLATE,
            ("min: 2", "target: {type: aws-asg, region: us-east-1}\nmin: 2"),
            "target.region: must be 'eu-west-3' (for_each's region) or left out",
            id="asg-other-region",
        ),
        pytest.param(
            ASG_TEMPLATE,
            (", region: eu-west-3}", "}\ntarget: {type: aws-asg, region: us-east-1}"),
            "target.region: must be left out, or set as for_each.aws_asg.region",
            id="asg-region-without-for-each-region",
        ),
        pytest.param(
            TEMPLATE,
            ('group: "{group}"}', 'group: "{group}", region: europe}'),
            "target.region: must be left out: a template scales the jobs it discovers",
            id="nomad-region",
        ),
    ],
)
def test_a_template_scales_only_in_the_region_it_discovers(
    tmp_path: Path, template: str, change: tuple[str, str], expected: str
) -> None:
    # An ASG (or job) of the same name in another region never opted in.
    old, new = change
    assert old in template
    problems = _problems(tmp_path, template.replace(old, new))
    assert any(expected in p for p in problems), problems


def test_an_empty_for_each_region_is_refused(tmp_path: Path) -> None:
    # As in a policy's target: "" would be the default region, and match every region.
    problems = _problems(tmp_path, ASG_TEMPLATE.replace("region: eu-west-3", 'region: ""'))
    assert (
        "t.yaml:3: for_each.aws_asg.region: must not be empty: leave region out to use the "
        "default region"
    ) in problems


def test_an_asg_template_may_repeat_its_for_each_region(tmp_path: Path) -> None:
    text = ASG_TEMPLATE.replace("min: 2", "target: {type: aws-asg, region: eu-west-3}\nmin: 2")
    located = expand(_template(tmp_path, text), AsgGroup(name="web", region="eu-west-3"))
    assert isinstance(located, Located)
    assert located.policy.target == AsgTarget(asg="web", region="eu-west-3")


def test_load_paths_returns_templates_beside_policies(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(TEMPLATE)
    (tmp_path / "api.yaml").write_text(
        "name: api\ntarget: {type: nomad, job: api, group: web}\nmin: 1\nmax: 3\n"
        "checks:\n  - {name: c, strategy: fixed, count: 2}\n"
    )
    result = load_paths([tmp_path])
    assert result.problems == []
    assert [p.name for p in result.policies] == ["api"]
    assert [t.pattern for t in result.templates] == ["web-{job}-{group}"]


def test_a_templates_ignored_fallback_is_one_warning_of_its_file_not_one_per_target(
    tmp_path: Path,
) -> None:
    text = TEMPLATE.replace("min: 1\n", "min: 1\nfallback: {after: 3, count: 4}\n")
    path = tmp_path / "web.yaml"
    path.write_text(text)
    found = load_file(path)
    assert (found.problems, len(found.templates)) == ((), 1)
    assert [(w.line, w.field) for w in found.warnings] == [(7, "fallback")]
    located = expand(found.templates[0], _group())
    assert isinstance(located, Located)  # expanded as any template is, with nothing to say


def test_the_schema_accepts_templates_and_still_rejects_unknown_keys() -> None:
    schema = json_schema()
    jsonschema.validate(yaml.safe_load(TEMPLATE), schema)
    jsonschema.validate(yaml.safe_load(ASG_TEMPLATE), schema)
    bad = yaml.safe_load(TEMPLATE)
    bad["for_each"] = {"nomad": {"meta": {"a": "b"}}, "aws_asg": {"tags": {"a": "b"}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    policy_with_group_by = yaml.safe_load(TEMPLATE)
    del policy_with_group_by["for_each"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(policy_with_group_by, schema)  # group_by only in templates
    assert json.loads(Path("policy.schema.json").read_text()) == schema


def test_one_job_in_two_namespaces_is_a_name_clash_that_says_to_add_the_namespace(
    tmp_path: Path,
) -> None:
    # The README's own template (no {namespace}) over job `api` in `shop` and in `staging`:
    # the second's problem named neither target, nor how to tell them apart.
    template = _template(tmp_path)
    shop = expand(template, _group())
    staging = expand(template, replace(_group(), namespace="staging"))
    assert isinstance(shop, Located) and isinstance(staging, Located)
    claims = Claims()
    claims.claim(shop)
    problem = claims.conflict(staging)
    assert problem is not None
    assert problem.message == (
        f"duplicate policy name 'web-api-web': also defined at {shop.where} (for "
        f"{shop.policy.target}, this one for {staging.policy.target}: add {{namespace}} to "
        "the template's name, and namespace to its grouped checks' group_by (namespace: "
        '"{namespace}") and their queries\' by (...)); rename one (names are unique '
        "across all files)"
    )
