"""Templates and Nomad Autoscaler files at the command line: `validate` checks templates
offline (and expands them with `--discover`), `plan` shows expanded policies by their
names, `convert` turns HCL into policy YAML with a line per thing not carried over."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.integration.cli.test_cli import autoscaler
from tests.support.aws import REGION, MotoServer
from tests.support.nomad_api import NomadApiStandIn
from tests.support.prometheus import Metrics, Sample
from tests.unit.policy.test_nomad_autoscaler import JOB_FILE

pytestmark = pytest.mark.integration

NOMAD_TEMPLATE = """\
name: "web-{{job}}-{{group}}"
for_each:
  nomad: {{meta: {{autoscaler.enabled: "true"}}}}
min: 1
max: 20
checks:
  - name: rps
    query: 'sum by (job) ({metric})'
    group_by: {{job: "{{job}}"}}
    strategy: per-instance
    target: 10
"""

ASG_TEMPLATE = """\
name: "asg-{{asg}}"
for_each:
  aws_asg: {{tags: {{"autoscaler:enabled": "true"}}, region: {region}}}
min: 1
max: 10
checks:
  - name: cpu
    query: 'sum by (asg) ({metric})'
    group_by: {{asg: "{{asg}}"}}
    strategy: per-instance
    target: 10
"""

NO_WAIT = "stabilization: {down: 0s}\n"  # a first plan scales in at once


def test_validate_checks_templates_offline_and_lists_them(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(NOMAD_TEMPLATE.format(metric="requests"))
    result = autoscaler("validate", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 policies and 1 template (web-{job}-{group} (nomad meta" in result.stdout
    assert result.stdout.rstrip().endswith(") valid in 1 file")  # was "…: none": no policy

    (tmp_path / "web.yaml").write_text(
        NOMAD_TEMPLATE.format(metric="requests").replace('"{job}"}', '"{jbo}"}')
    )
    result = autoscaler("validate", str(tmp_path))
    assert result.returncode == 1
    assert (
        f"{tmp_path / 'web.yaml'}:9: checks[0].group_by.job: unknown placeholder" in result.stdout
    )


def test_validate_discover_expands_and_reports_each_targets_problem(
    tmp_path: Path, nomad_api: NomadApiStandIn
) -> None:
    nomad_api.register_job("api", {"web": 1}, meta={"autoscaler.enabled": "true"})
    nomad_api.register_job(
        "bad", {"web": 1}, meta={"autoscaler.enabled": "true", "autoscaler.max": "many"}
    )
    (tmp_path / "web.yaml").write_text(NOMAD_TEMPLATE.format(metric="requests"))
    result = autoscaler("validate", "--discover", str(tmp_path), env=nomad_api.env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 policy discovered: web-api-web" in result.stdout
    assert "Nomad job 'bad' group 'web' (namespace default): meta autoscaler.max" in result.stdout


def test_validate_discover_reads_nomad_from_the_config_file_as_plan_does(
    tmp_path: Path, nomad_api: NomadApiStandIn
) -> None:
    # One config file serves validate, plan and run: `validate --discover` must ask the
    # Nomad that `plan` asks (nomad.addr, nomad.scaling_policies), not localhost:4646.
    nomad_api.register_job("api", {"web": 1}, meta={"autoscaler.enabled": "true"})
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "web.yaml").write_text(NOMAD_TEMPLATE.format(metric="requests"))
    config = tmp_path / "autoscaler.yaml"
    config.write_text(
        f"policies: [{policies}]\nnomad: {{addr: '{nomad_api.address}', scaling_policies: true}}\n"
    )
    result = autoscaler("validate", "--discover", "--config", str(config), env={"NOMAD_ADDR": ""})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 policy discovered: web-api-web" in result.stdout
    assert nomad_api.requests_to("GET", "/v1/scaling/policies")


def test_validate_discover_with_bad_nomad_settings_exits_4_as_its_help_says(
    tmp_path: Path,
) -> None:
    # NOMAD_* variables are Nomad's connection settings, not our options: a bad one is a
    # configuration problem (4), as for `plan` and `run`, and `validate --help` must say so.
    (tmp_path / "web.yaml").write_text(NOMAD_TEMPLATE.format(metric="requests"))
    result = autoscaler("validate", "--discover", str(tmp_path), env={"NOMAD_SKIP_VERIFY": "maybe"})
    assert result.returncode == 4, result.stdout + result.stderr
    assert result.stderr.startswith("error: NOMAD_SKIP_VERIFY"), result.stderr
    codes = autoscaler("validate", "--help").stdout.split("exit codes:\n")[1]
    assert "  4    with --discover: bad Nomad settings" in codes
    assert "NOMAD_*" not in codes.split("  3 ")[0]  # never listed as a usage error (2)


def test_plan_shows_the_expanded_policies_by_their_names(
    tmp_path: Path, nomad_api: NomadApiStandIn, metrics: Metrics
) -> None:
    for job in ("api", "cart"):
        nomad_api.register_job(job, {"web": 1}, meta={"autoscaler.enabled": "true"})
    nomad_api.register_job("other", {"web": 1})
    metrics.push_many(
        [Sample("requests", 30, {"job": "api"}), Sample("requests", 45, {"job": "cart"})]
    )
    (tmp_path / "web.yaml").write_text(NOMAD_TEMPLATE.format(metric=metrics.name("requests")))
    result = autoscaler(
        "plan",
        str(tmp_path),
        "-o",
        "json",
        env={**nomad_api.env, "AUTOSCALER_PROMETHEUS_URL": metrics.server.url},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    plans = {p["policy"]: p for p in json.loads(result.stdout)}
    assert set(plans) == {"web-api-web", "web-cart-web"}
    assert (plans["web-api-web"]["desired"], plans["web-cart-web"]["desired"]) == (3, 5)
    assert nomad_api.group_count("api", "web") == 1  # plan never scales


def test_an_owners_max_caps_a_templates_open_schedule_and_plan_and_validate_say_so(
    tmp_path: Path, nomad_api: NomadApiStandIn, metrics: Metrics
) -> None:
    # The template's schedule (max 30) replaced the owner's autoscaler.max=5 while open:
    # 300 requests planned 30 instances for a job its owner capped at 5.
    nomad_api.register_job(
        "api", {"web": 1}, meta={"autoscaler.enabled": "true", "autoscaler.max": "5"}
    )
    metrics.push_many([Sample("requests", 300, {"job": "api"})])
    schedule = (
        "schedules:\n  - {name: office, start: 2020-01-01T00:00:00Z, "
        "end: 2099-01-01T00:00:00Z, min: 4, max: 30}\n"
    )
    template = NOMAD_TEMPLATE.format(metric=metrics.name("requests"))
    (tmp_path / "web.yaml").write_text(template.replace("max: 20\n", "max: 20\n" + schedule))
    env = {**nomad_api.env, "AUTOSCALER_PROMETHEUS_URL": metrics.server.url}
    result = autoscaler("plan", str(tmp_path), "-o", "json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    (plan,) = json.loads(result.stdout)
    assert (plan["policy"], plan["desired"]) == ("web-api-web", 5), plan
    assert any("schedule office max 5: 30 → 5" in reason for reason in plan["reasons"]), plan
    warning = "web-api-web: schedules[0].max: warning: schedule office max 30 is above meta"
    assert warning in result.stderr

    result = autoscaler("validate", "--discover", str(tmp_path), env=nomad_api.env)
    assert result.returncode == 0, result.stdout + result.stderr  # a warning fails nothing
    assert f"{warning} autoscaler.max 5: 5 applies to this target" in result.stdout


def test_two_groups_of_one_job_reading_its_one_series_hold_and_validate_says_why(
    tmp_path: Path, nomad_api: NomadApiStandIn, metrics: Metrics
) -> None:
    # The README's template over a job whose meta opts every group in: `sum by (job)` gives
    # one series for `web` and `worker` both. The worker (no HTTP) was scaled in from 12 to
    # 2 on the web group's request rate, and `validate --discover` said nothing.
    nomad_api.register_job(
        "checkout", {"web": 2, "worker": 12}, meta={"autoscaler.enabled": "true"}
    )
    nomad_api.register_job("cart", {"web": 1}, meta={"autoscaler.enabled": "true"})
    metrics.push_many(
        [Sample("requests", 15, {"job": "checkout"}), Sample("requests", 45, {"job": "cart"})]
    )
    template = NOMAD_TEMPLATE.format(metric=metrics.name("requests"))
    (tmp_path / "web.yaml").write_text(template.replace("max: 20\n", "max: 20\n" + NO_WAIT))
    env = {**nomad_api.env, "AUTOSCALER_PROMETHEUS_URL": metrics.server.url}
    result = autoscaler("plan", str(tmp_path), "-o", "json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    plans = {p["policy"]: p for p in json.loads(result.stdout)}
    for name, other, count in (
        ("web-checkout-web", "web-checkout-worker", 2),
        ("web-checkout-worker", "web-checkout-web", 12),
    ):
        plan = plans[name]
        assert (plan["current"], plan["desired"], plan["action"]) == (count, count, "hold")
        assert any(
            f"ambiguous: {other} (nomad job checkout group {other.rsplit('-', 1)[1]}) reads this "
            "same series (job='checkout')" in reason
            for reason in plan["reasons"]
        ), plan["reasons"]
    assert (plans["web-cart-web"]["desired"], plans["web-cart-web"]["action"]) == (5, "up")
    assert nomad_api.group_count("checkout", "worker") == 12  # plan never scales

    result = autoscaler("validate", "--discover", str(tmp_path), env=nomad_api.env)
    assert result.returncode == 0, result.stdout + result.stderr  # a warning fails nothing
    warned = [line for line in result.stdout.splitlines() if ": warning: ambiguous" in line]
    assert [line.split(": checks[0]")[0].rsplit(" ", 1)[-1] for line in warned] == [
        "web-checkout-web",
        "web-checkout-worker",
    ]
    assert 'to group_by (e.g. group: "{group}")' in warned[0]


def test_plan_names_the_jobs_nomad_refused_to_read_and_plans_the_others(
    tmp_path: Path, nomad_api: NomadApiStandIn, metrics: Metrics
) -> None:
    # A token that may list dev's jobs but not read them: `plan` planned nothing at all.
    # Now the jobs it may read are planned, and the refused job is named (its targets are
    # unknown: exit 3, as for a source that cannot be read); limited to prod, all is well.
    opted = {"autoscaler.enabled": "true"}
    nomad_api.register_job("api", {"web": 1}, namespace="prod", meta=opted)
    nomad_api.register_job("scratch", {"web": 1}, namespace="dev", meta=opted)
    nomad_api.enable_acl({"t": {"prod": ["list-jobs", "read-job"], "dev": ["list-jobs"]}})
    metrics.push_many([Sample("requests", 30, {"job": "api"})])
    template = NOMAD_TEMPLATE.format(metric=metrics.name("requests"))
    (tmp_path / "web.yaml").write_text(template)
    env = {**nomad_api.env, "NOMAD_TOKEN": "t", "AUTOSCALER_PROMETHEUS_URL": metrics.server.url}
    result = autoscaler("plan", str(tmp_path), "-o", "json", env=env)
    assert result.returncode == 3, result.stdout + result.stderr
    assert [p["policy"] for p in json.loads(result.stdout)] == ["web-api-web"]
    assert "<discovery: Nomad jobs>:1: (source): partly read: " in result.stderr
    assert "dev/scratch" in result.stderr
    # `run --once` says it once, as a warning: not again as an unreadable source.
    state = str(tmp_path / "state.db")
    once = autoscaler("run", "--once", "--dry-run", "--state", state, str(tmp_path), env=env)
    assert once.returncode == 3, once.stdout + once.stderr
    told = [line for line in once.stderr.splitlines() if "partly read" in line]
    assert len(told) == 1 and "WARNING" in told[0], told

    (tmp_path / "web.yaml").write_text(
        template.replace('"true"}}\n', '"true"}, namespace: prod}\n')
    )
    result = autoscaler("plan", str(tmp_path), "-o", "json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [p["policy"] for p in json.loads(result.stdout)] == ["web-api-web"]


@pytest.mark.parametrize(
    ("team_b", "refusal", "said"),
    [
        pytest.param(
            ["read-job"],
            None,
            "<discovery: Nomad jobs>:1: (source): partly read: token lacks list-jobs in "
            "namespace 'team-b': its jobs are not discovered",
            id="no-list-jobs-in-team-b",
        ),
        pytest.param(["list-jobs", "read-job"], None, None, id="list-jobs-everywhere"),
        pytest.param(
            ["read-job"],
            (403, "Permission denied"),
            "cannot check in which namespaces the Nomad token may not list jobs",
            id="namespace-list-refused",
        ),
    ],
)
def test_plan_names_the_namespaces_whose_jobs_a_wildcard_list_left_out(
    tmp_path: Path,
    nomad_api: NomadApiStandIn,
    metrics: Metrics,
    team_b: list[str],
    refusal: tuple[int, str] | None,
    said: str | None,
) -> None:
    # Nomad answers a list of every namespace with the jobs of those where the token may
    # list jobs, and says nothing of the others: team-b's opted-in job was left out of
    # `plan` without a word, as if it had not opted in.
    opted = {"autoscaler.enabled": "true"}
    nomad_api.register_job("api", {"web": 1}, meta=opted)
    nomad_api.register_job("books", {"web": 1}, namespace="team-b", meta=opted)
    nomad_api.enable_acl({"t": {"default": ["list-jobs", "read-job"], "team-b": team_b}})
    nomad_api.namespaces_refusal = refusal
    metrics.push_many([Sample("requests", 30, {"job": "api"})])
    (tmp_path / "web.yaml").write_text(NOMAD_TEMPLATE.format(metric=metrics.name("requests")))
    env = {**nomad_api.env, "NOMAD_TOKEN": "t", "AUTOSCALER_PROMETHEUS_URL": metrics.server.url}
    result = autoscaler("plan", str(tmp_path), "-o", "json", env=env)
    planned = sorted(p["policy"] for p in json.loads(result.stdout))
    wanted = ["web-api-web"] if team_b == ["read-job"] else ["web-api-web", "web-books-web"]
    assert planned == wanted, result.stderr
    # Left out for want of list-jobs: its targets are unknown (exit 3), as for a job the
    # token may not read; a check that cannot be made is said once and fails nothing.
    assert result.returncode == (3 if said and refusal is None else 0), result.stderr
    assert ("lacks list-jobs" in result.stderr) == (said is not None and refusal is None)
    if said is not None:
        assert result.stderr.count(said) == 1, result.stderr


def test_plan_waits_for_the_whole_namespace_check_however_slow_nomad_is(
    tmp_path: Path, nomad_api: NomadApiStandIn, metrics: Metrics
) -> None:
    # The service's watch waits for the check 1 s at most (it runs on beside it); `plan`
    # reads once, holds no watch, and must still name team-b (exit 3) when Nomad is slow.
    opted = {"autoscaler.enabled": "true"}
    nomad_api.register_job("api", {"web": 1}, meta=opted)
    nomad_api.register_job("books", {"web": 1}, namespace="team-b", meta=opted)
    nomad_api.enable_acl({"t": {"default": ["list-jobs", "read-job"], "team-b": ["read-job"]}})
    nomad_api.slow_namespace("team-b", 2.0)
    metrics.push_many([Sample("requests", 30, {"job": "api"})])
    (tmp_path / "web.yaml").write_text(NOMAD_TEMPLATE.format(metric=metrics.name("requests")))
    env = {**nomad_api.env, "NOMAD_TOKEN": "t", "AUTOSCALER_PROMETHEUS_URL": metrics.server.url}
    result = autoscaler("plan", str(tmp_path), "-o", "json", env=env)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "token lacks list-jobs in namespace 'team-b'" in result.stderr, result.stderr


def test_plan_names_the_scaling_policies_nomad_refused_to_read_and_plans_the_others(
    tmp_path: Path, nomad_api: NomadApiStandIn, metrics: Metrics
) -> None:
    # A token that may list dev's scaling policies but not read them: one refused read
    # failed the whole listing, and `plan --nomad-scaling-policies` planned nothing.
    query = f"sum({metrics.push('queue', 50)})"
    check = {
        "queue": [
            {
                "source": "prometheus",
                "query": query,
                "strategy": [{"target-value": [{"target": 10.0}]}],
            }
        ]
    }
    for job, namespace in (("shop", "prod"), ("scratch", "dev")):
        nomad_api.register_job(
            job,
            {"api": 1},
            namespace=namespace,
            scaling={"api": (1, 10)},
            policies={"api": {"check": [check]}},
        )
    nomad_api.enable_acl(
        {
            "t": {
                "prod": ["list-scaling-policies", "read-scaling-policy"],
                "dev": ["list-scaling-policies"],
            }
        }
    )
    env = {**nomad_api.env, "NOMAD_TOKEN": "t", "AUTOSCALER_PROMETHEUS_URL": metrics.server.url}
    args = ("plan", str(tmp_path), "--nomad-scaling-policies", "-o", "json")
    result = autoscaler(*args, env=env)
    assert result.returncode == 3, result.stdout + result.stderr
    assert [p["policy"] for p in json.loads(result.stdout)] == ["prod.shop.api"]
    assert "<discovery: Nomad scaling policies>:1: (source): partly read: " in result.stderr
    assert "dev/scratch/api" in result.stderr


@pytest.mark.parametrize("detailed", [False, True], ids=["plain", "detailed"])
def test_plan_with_nomad_unreachable_says_its_targets_were_not_evaluated(
    tmp_path: Path, detailed: bool
) -> None:
    # The failing source was counted as an invalid policy file: exit 1 ("invalid input"
    # with --detailed-exitcode), where Prometheus or a target unreachable is 3.
    (tmp_path / "web.yaml").write_text(NOMAD_TEMPLATE.format(metric="requests"))
    flags = ["--detailed-exitcode"] if detailed else []
    result = autoscaler(
        "plan",
        str(tmp_path),
        *flags,
        env={"NOMAD_ADDR": "http://127.0.0.1:9", "AUTOSCALER_PROMETHEUS_URL": "http://127.0.0.1:9"},
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "<discovery: " in result.stderr and "nothing discovered yet from it" in result.stderr


def test_plan_expands_an_asg_template_from_tags(
    tmp_path: Path,
    moto_server: MotoServer,
    make_asg: Callable[..., str],
    metrics: Metrics,
) -> None:
    moto_server.reset()
    opted = make_asg(desired=2, tags={"autoscaler:enabled": "true", "autoscaler:max": "3"})
    make_asg(desired=2)
    metrics.push("cpu", 70, {"asg": opted})
    (tmp_path / "asg.yaml").write_text(
        ASG_TEMPLATE.format(metric=metrics.name("cpu"), region=REGION)
    )
    result = autoscaler(
        "plan",
        str(tmp_path),
        "-o",
        "json",
        env={**moto_server.env, "AUTOSCALER_PROMETHEUS_URL": metrics.server.url},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (plan,) = json.loads(result.stdout)
    assert plan["policy"] == f"asg-{opted}"
    assert (plan["current"], plan["desired"]) == (2, 3)  # 7 wanted, the tag's max is 3
    assert any("bounds" in r or "max" in r for r in plan["reasons"])


NOMAD_AUTOSCALER_FILE = """\
scaling "batch_queue" {
  enabled = true
  min     = 1
  max     = 20

  policy {
    cooldown            = "1m"
    evaluation_interval = "30s"

    check "queue" {
      source = "prometheus"
      query  = "sum(queue_depth{queue=\\"batch\\"})"
      strategy "target-value" {
        target = 10
      }
    }

    check "cpu" {
      source = "nomad-apm"
      query  = "avg_cpu-allocated"
      strategy "target-value" {
        target = 70
      }
    }

    target "aws-asg" {
      aws_asg_name        = "batch-workers"
      node_drain_deadline = "5m"
    }
  }
}
"""
# Every check carried: convert writes it without --allow-dropped-checks.
PROMETHEUS_ONLY = NOMAD_AUTOSCALER_FILE.replace('source = "nomad-apm"', 'source = "prometheus"')


def test_convert_writes_valid_yaml_and_a_line_per_thing_not_carried(tmp_path: Path) -> None:
    source = tmp_path / "batch.hcl"
    source.write_text(NOMAD_AUTOSCALER_FILE)
    out = tmp_path / "policies" / "batch.yaml"
    out.parent.mkdir()
    result = autoscaler("convert", str(source), "-o", str(out), "--allow-dropped-checks")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert all(line.startswith(f'{source}: scaling "batch_queue": not carried: ') for line in lines)
    assert (
        f"{source}: scaling \"batch_queue\": not carried: check 'cpu': source 'nomad-apm' is "
        'not read here: only Prometheus (source = "prometheus"); left out '
        "(--allow-dropped-checks): scale-in now depends only on the checks carried ('queue')"
    ) in lines
    assert any("node_drain_deadline" in line for line in lines)
    data = yaml.safe_load(out.read_text())
    assert data["target"] == {"type": "aws-asg", "asg": "batch-workers"}
    assert [c["name"] for c in data["checks"]] == ["queue"]
    assert out.read_text().count("# not carried:") == len(lines)
    validated = autoscaler("validate", str(out.parent))
    assert validated.returncode == 0, validated.stdout


def test_convert_does_not_write_a_policy_that_would_lose_a_check(tmp_path: Path) -> None:
    # The nomad-apm check was left out and convert exited 0: the policy then scaled in on
    # its Prometheus check alone, where Nomad Autoscaler (that check asking for more) and
    # discovery (that check failing) hold.
    source = tmp_path / "batch.hcl"
    source.write_text(NOMAD_AUTOSCALER_FILE)
    out = tmp_path / "batch.yaml"
    out.write_text("the policy in use\n")
    result = autoscaler("convert", str(source), "-o", str(out))
    assert result.returncode == 1
    assert (
        f"{source}: scaling \"batch_queue\": cannot convert: check 'cpu': source 'nomad-apm' "
        'is not read here: only Prometheus (source = "prometheus"); without it the policy '
        "could scale in on its other checks where Nomad Autoscaler would not: give "
        "--allow-dropped-checks to convert it without this check"
    ) in result.stderr.splitlines()
    assert f"{out}: not written: no policy was converted" in result.stderr
    assert out.read_text() == "the policy in use\n"


def test_convert_into_a_place_it_cannot_write_is_an_error_line_not_a_traceback(
    tmp_path: Path,
) -> None:
    source = tmp_path / "batch.hcl"
    source.write_text(PROMETHEUS_ONLY)
    for out in (tmp_path / "missing" / "batch.yaml", tmp_path):  # no folder; a folder
        result = autoscaler("convert", str(source), "-o", str(out))
        assert result.returncode == 1
        assert f"error: {out}: cannot write the YAML: " in result.stderr
        assert "Traceback" not in result.stderr


def test_convert_exits_1_when_nothing_can_be_carried(tmp_path: Path) -> None:
    source = tmp_path / "only-apm.hcl"
    source.write_text(NOMAD_AUTOSCALER_FILE.replace('source = "prometheus"', 'source = "datadog"'))
    result = autoscaler("convert", str(source))
    assert result.returncode == 1
    assert "cannot convert: check 'queue': source 'datadog' is not read here" in result.stderr
    result = autoscaler("convert", str(source), "--allow-dropped-checks")
    assert result.returncode == 1
    assert "the converted policy is not valid: checks: needs at least one check" in result.stderr
    assert result.stdout == ""

    broken = tmp_path / "broken.hcl"
    broken.write_text("scaling {")
    result = autoscaler("convert", str(broken))
    assert result.returncode == 1 and "not valid HCL" in result.stderr


def test_convert_of_nothing_leaves_an_existing_output_file_alone(tmp_path: Path) -> None:
    # `-o policies/batch.yaml` with nothing converted emptied the file: the policy in use
    # was gone at the next reload.
    out = tmp_path / "batch.yaml"
    out.write_text("the policy in use\n")
    broken = tmp_path / "broken.hcl"
    broken.write_text("scaling {")
    result = autoscaler("convert", str(broken), "-o", str(out))
    assert result.returncode == 1
    assert f"{out}: not written: no policy was converted" in result.stderr
    assert out.read_text() == "the policy in use\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch.yaml", "broken.hcl"]


def test_convert_replaces_a_linked_file_in_place_keeping_its_mode(tmp_path: Path) -> None:
    # Renamed over it, the new file took the caller's umask (the service's user could no
    # longer read it) and a symbolic link became a file of its own.
    source = tmp_path / "batch.hcl"
    source.write_text(PROMETHEUS_ONLY)
    real = tmp_path / "real.yaml"
    real.write_text("old\n")
    real.chmod(0o640)
    link = tmp_path / "batch.yaml"
    link.symlink_to(real)
    result = autoscaler("convert", str(source), "-o", str(link))
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and "batch-workers" in real.read_text()
    assert real.stat().st_mode & 0o777 == 0o640


def test_convert_leaves_out_a_policy_whose_name_or_target_an_earlier_one_has(
    tmp_path: Path,
) -> None:
    """`validate` refuses a file with two policies of one name, or two enabled policies on
    one target: convert must not write one and exit 0."""
    eu, us = tmp_path / "web-eu.nomad", tmp_path / "web-us.nomad"
    job = JOB_FILE.replace("ENABLED", "true")
    eu.write_text(job.replace('job "web" {', 'job "web" {\n  region = "eu"'))
    us.write_text(job.replace('job "web" {', 'job "web" {\n  region = "us"'))
    batch, again = tmp_path / "batch.hcl", tmp_path / "batch-again.hcl"
    batch.write_text(PROMETHEUS_ONLY)
    again.write_text(PROMETHEUS_ONLY.replace('"batch_queue"', '"batch_again"'))
    out = tmp_path / "policies" / "all.yaml"
    out.parent.mkdir()
    result = autoscaler("convert", *map(str, (eu, us, batch, again)), "-o", str(out))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "cannot convert" in line]
    assert errors == [
        f'{us}: job "web" group "api": cannot convert: its name \'web-api\' is that of the '
        f'policy converted from job "web" group "api" in {eu}; names are unique: convert '
        "this file on its own and rename one",
        f'{again}: scaling "batch_again": cannot convert: aws-asg:batch-workers is already '
        f'scaled by the policy converted from scaling "batch_queue" in {batch}; two policies '
        "on one target would undo each other: merge their checks into one policy, or disable "
        "one",
    ]
    names = [doc["name"] for doc in yaml.safe_load_all(out.read_text())]
    assert names == ["web-api", "batch_queue"]
    validated = autoscaler("validate", str(out.parent))
    assert validated.returncode == 0, validated.stdout


def test_convert_names_a_group_as_discovery_does_when_its_name_is_taken_in_its_own_file(
    tmp_path: Path,
) -> None:
    # job "a-b" group "c" and job "a" group "b-c" are both `a-b-c`: the second was refused,
    # advising to convert the file on its own, which cannot part them.
    job = JOB_FILE.replace("ENABLED", "true")
    source = tmp_path / "jobs.nomad"
    source.write_text(
        job.replace('job "web"', 'job "a-b"').replace('group "api"', 'group "c"')
        + job.replace('job "web"', 'job "a"').replace('group "api"', 'group "b-c"')
    )
    out = tmp_path / "policies" / "jobs.yaml"
    out.parent.mkdir()
    result = autoscaler("convert", str(source), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f'{source}: job "a" group "b-c": not carried: named \'a.b-c\' as discovery names '
        'it: \'a-b-c\' is the policy converted from job "a-b" group "c"'
    ]
    documents = list(yaml.safe_load_all(out.read_text()))
    assert [(d["name"], d["target"]["job"]) for d in documents] == [
        ("a-b-c", "a-b"),
        ("a.b-c", "a"),
    ]
    validated = autoscaler("validate", str(out.parent))
    assert validated.returncode == 0, validated.stdout

    # Two policy files' labels cannot be told apart so: the advice is to rename one there.
    twice = tmp_path / "twice.hcl"
    twice.write_text(PROMETHEUS_ONLY + PROMETHEUS_ONLY.replace("batch-workers", "other"))
    result = autoscaler("convert", str(twice))
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "names are unique: give one of them another label in this file"
    )


def test_plan_shows_a_discovered_jobs_escape_sequence_escaped(
    tmp_path: Path, nomad_api: NomadApiStandIn, metrics: Metrics
) -> None:
    # Nomad refuses only a space and NUL in a job ID: whoever may submit a job could name
    # it so that the operator's `plan` clears the screen and prints a line of its own. A
    # template's names keep such a job out (its name would be invalid, and the problem
    # quoting it is escaped too); a job's own scaling policy names its job as it is.
    job = "w\x1b[2J\nforged"
    query = f"sum({metrics.push('q', 50)})"
    strategy = [{"target-value": [{"target": 10.0}]}]
    check = {"c": [{"source": "prometheus", "query": query, "strategy": strategy}]}
    nomad_api.register_job(
        job, {"api": 2}, scaling={"api": (1, 10)}, policies={"api": {"check": [check]}}
    )
    nomad_api.register_job("x\x1b[2J", {"web": 1}, meta={"autoscaler.enabled": "true"})
    (tmp_path / "web.yaml").write_text(NOMAD_TEMPLATE.format(metric="requests"))
    env = {**nomad_api.env, "AUTOSCALER_PROMETHEUS_URL": metrics.server.url}
    for output in ("table", "wide"):
        args = ("plan", str(tmp_path), "--nomad-scaling-policies", "-o", output)
        result = autoscaler(*args, env=env)
        assert result.returncode == 1, result.stdout + result.stderr  # the template's job
        assert "\x1b" not in result.stdout + result.stderr
        assert "nomad:w\\x1b[2J\\nforged/api (default)" in result.stdout, result.stdout
        assert "Nomad job 'x\\x1b[2J'" in result.stderr, result.stderr
        assert not any(line.startswith("forged") for line in result.stdout.splitlines())
    result = autoscaler("plan", str(tmp_path), "--nomad-scaling-policies", "-o", "json", env=env)
    assert [p["target"] for p in json.loads(result.stdout)] == [f"nomad:{job}/api (default)"]
