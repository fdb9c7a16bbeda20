"""Nomad Autoscaler policies in our terms: what is carried, what holds as unsupported, and a
line for every setting carried differently. Payloads have the shape Nomad stores
(`GET /v1/scaling/policy/:id`: blocks as lists of `{label: [body]}`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from autoscaler.core.decision import decide
from autoscaler.core.discovered import NomadScalingPolicy
from autoscaler.core.model import Action, Memory, NomadTarget, Observation, Strategy, TargetStatus
from autoscaler.policy.loader import load_data
from autoscaler.policy.nomad_autoscaler import (
    go_duration,
    policy_from_nomad,
    translate,
)
from autoscaler.policy.nomad_hcl import convert_hcl


def _check(name: str, strategy: str, config: dict[str, Any], **body: Any) -> dict[str, Any]:
    return {name: [{**body, "strategy": [{strategy: [config]}]}]}


def _stored(*checks: dict[str, Any], **policy: Any) -> NomadScalingPolicy:
    return NomadScalingPolicy(
        id="5e9f9ef2-5223-6d35-bac1-be0f3cb974ad",
        min=1,
        max=10,
        target={"Namespace": "shop", "Job": "web", "Group": "api"},
        policy={"check": list(checks), **policy},
        modify_index=12,
    )


def _policy(found: NomadScalingPolicy):  # type: ignore[no-untyped-def]
    policy, problems = policy_from_nomad(found, name="shop.web.api", file="<nomad>", load=load_data)
    assert problems == []
    assert policy is not None
    return policy


PROM = {"source": "prometheus", "query": "sum(rate(http_requests_total[1m]))"}


def test_a_target_value_prometheus_check_runs_as_ours() -> None:
    found = _stored(
        _check("rps", "target-value", {"target": 100.0, "precision": 0.05}, **PROM),
        evaluation_interval="15s",
        cooldown="2m",
    )
    policy = _policy(found)
    assert policy.target == NomadTarget(job="web", group="api", namespace="shop")
    assert (policy.min, policy.max) == (1, 10)
    assert policy.interval.total_seconds() == 15
    assert policy.cooldown.up.total_seconds() == policy.cooldown.down.total_seconds() == 120
    assert policy.stabilization.down.total_seconds() == 0  # Nomad Autoscaler has none
    (check,) = policy.checks
    assert (check.strategy, check.target, check.tolerance) == (Strategy.TARGET_VALUE, 100.0, 0.05)
    assert check.query == PROM["query"] and check.unsupported is None


def test_defaults_are_nomad_autoscalers() -> None:
    policy = _policy(_stored(_check("rps", "target-value", {"target": 5}, **PROM)))
    assert policy.interval.total_seconds() == 10
    assert policy.cooldown.down.total_seconds() == 300
    assert policy.checks[0].tolerance == 0.01


@pytest.mark.parametrize(
    ("strategy", "config", "expected"),
    [
        pytest.param("threshold", {"upper_bound": 10, "delta": -1}, "steps", id="threshold-delta"),
        pytest.param(
            "threshold", {"lower_bound": 80, "percentage": 50}, "steps", id="threshold-percent"
        ),
        pytest.param("fixed-value", {"value": 4}, "count", id="fixed-value"),
        pytest.param("pass-through", {}, "query", id="pass-through"),
    ],
)
def test_the_other_supported_strategies_are_carried(
    strategy: str, config: dict[str, Any], expected: str
) -> None:
    policy = _policy(_stored(_check("c", strategy, config, **PROM)))
    (check,) = policy.checks
    assert check.unsupported is None
    assert getattr(check, expected)


def test_threshold_bounds_become_one_step() -> None:
    policy = _policy(
        _stored(
            _check(
                "c", "threshold", {"lower_bound": 80, "upper_bound": 90, "percentage": 50}, **PROM
            )
        )
    )
    (step,) = policy.checks[0].steps
    assert (step.above, step.below, str(step.change)) == (80.0, 90.0, "+50%")


@pytest.mark.parametrize(
    ("check", "reason"),
    [
        pytest.param(
            _check("cpu", "target-value", {"target": 70}, query="avg_cpu"),
            "the Nomad APM (no source given) is not read here",
            id="nomad-apm",
        ),
        pytest.param(
            _check("q", "target-value", {"target": 70}, source="datadog", query="avg:x"),
            "source 'datadog' is not read here",
            id="other-apm",
        ),
        pytest.param(
            _check("q", "app-sizing-percentile", {}, **PROM),
            "strategy 'app-sizing-percentile' is not carried",
            id="other-strategy",
        ),
        pytest.param(
            _check("q", "threshold", {"upper_bound": 5, "value": 3}, **PROM),
            "absolute count",
            id="threshold-value",
        ),
        pytest.param(
            _check("q", "target-value", {"target": 0}, **PROM), "target 0", id="target-zero"
        ),
    ],
)
def test_what_cannot_be_carried_holds_as_unsupported(check: dict[str, Any], reason: str) -> None:
    supported = _check("rps", "target-value", {"target": 5}, **PROM)
    policy = _policy(_stored(supported, check))
    assert [c.unsupported is None for c in policy.checks] == [True, False]
    assert reason in (policy.checks[1].unsupported or "")
    assert "it holds scale-in" in (policy.checks[1].unsupported or "")


def test_two_labels_that_make_one_name_stay_two_checks_and_the_unsupported_one_holds() -> None:
    # `cpu %` is named `cpu` here too: read by name, the check we cannot run would have
    # been scored with the Prometheus check's value and scaled in (8 -> 2).
    found = _stored(
        _check("cpu", "target-value", {"target": 60}, **PROM),
        _check("cpu %", "target-value", {"target": 70}, query="avg_cpu"),  # the Nomad APM
    )
    policy = _policy(found)
    assert [c.name for c in policy.checks] == ["cpu", "cpu-2"]
    assert policy.checks[0].unsupported is None and policy.checks[1].unsupported
    assert "check 'cpu %' is named 'cpu-2' here" in policy.description
    outcome = decide(
        policy,
        status=TargetStatus(count=8),
        observations=[
            Observation(check="cpu", value=2.0),
            Observation(check="cpu-2", error=policy.checks[1].unsupported),
        ],
        memory=Memory(),
        now=datetime(2026, 6, 1, tzinfo=UTC),
    )
    assert (outcome.decision.action, outcome.decision.desired) == (Action.NONE, 8)
    assert any("scale-down blocked" in reason for reason in outcome.decision.reasons)


def test_a_policy_of_unsupported_checks_only_is_loaded_and_holds() -> None:
    policy = _policy(_stored(_check("cpu", "target-value", {"target": 70}, query="avg_cpu")))
    (check,) = policy.checks
    assert check.name == "cpu" and check.unsupported


def test_settings_carried_differently_are_listed_in_the_description() -> None:
    found = _stored(
        _check(
            "c", "threshold", {"upper_bound": 10, "delta": -1, "within_bounds_trigger": 3}, **PROM
        ),
        on_check_error="fail",
        cooldown_on_scale_up="30s",
    )
    policy = _policy(found)
    assert "within_bounds_trigger 3" in policy.description
    assert "on_check_error = fail" in policy.description
    assert "cooldown_on_scale_up" in policy.description
    assert policy.cooldown.up.total_seconds() == 30


def test_a_longer_cooldown_on_scale_up_holds_a_scale_in_after_a_scale_up_as_long() -> None:
    # Nomad Autoscaler scales nothing for 10m after a scale-up. Carried as {up: 10m,
    # down: 1m}, our cooldown.down (measured from any action) let a scale-in go 2m after it.
    found = _stored(
        _check("rps", "target-value", {"target": 50}, **PROM),
        cooldown="1m",
        cooldown_on_scale_up="10m",
    )
    policy = _policy(found)
    assert policy.cooldown.up.total_seconds() == policy.cooldown.down.total_seconds() == 600
    assert "cooldown.down is cooldown_on_scale_up 10m, the longer one" in policy.description
    now = datetime(2026, 6, 1, tzinfo=UTC)
    outcome = decide(
        policy,
        status=TargetStatus(count=4),
        observations=[Observation(check="rps", value=10.0)],  # asks for 1
        memory=Memory(last_scaled_at=now - timedelta(minutes=2)),  # the scale-up 2 -> 4
        now=now,
    )
    assert outcome.decision.action == Action.HOLD
    shorter = _policy(_stored(*found.policy["check"], cooldown="5m", cooldown_on_scale_up="1m"))
    assert (shorter.cooldown.up.total_seconds(), shorter.cooldown.down.total_seconds()) == (60, 300)


MEM = {"source": "prometheus", "query": "avg(mem)", "group": "mem"}
HIGH = _check("high", "threshold", {"lower_bound": 70, "upper_bound": 100, "delta": 1}, **MEM)
LOW = _check("low", "threshold", {"lower_bound": 0, "upper_bound": 30, "delta": -1}, **MEM)


def _decided(policy: Any, values: dict[str, float], count: int = 5) -> tuple[Action, int | None]:
    outcome = decide(
        policy,
        status=TargetStatus(count=count),
        observations=[Observation(check=name, value=value) for name, value in values.items()],
        memory=Memory(),
        now=datetime(2026, 6, 1, tzinfo=UTC),
    )
    return outcome.decision.action, outcome.decision.desired


def test_grouped_threshold_checks_on_one_query_decide_as_the_group_does() -> None:
    # Nomad Autoscaler reduces a group first (scale-out, then scale-in, win over nothing to
    # do): memory low scales in. Carried as two checks, "high" asked for the current count
    # whenever memory was not high, and the pair never scaled in.
    policy = _policy(_stored(LOW, HIGH))  # in either order, the step that adds comes first
    (check,) = policy.checks
    assert check.name == "mem" and check.query == "avg(mem)"
    assert [str(step.change) for step in check.steps] == ["+1", "-1"]
    assert "checks 'low', 'high' of group 'mem' are one threshold check 'mem'" in (
        policy.description
    )
    assert _decided(policy, {"mem": 20}) == (Action.DOWN, 4)
    assert _decided(policy, {"mem": 80}) == (Action.UP, 6)
    assert _decided(policy, {"mem": 50}) == (Action.NONE, 5)
    # The group then meets the other checks as one: a scale-in only when none asks more.
    cpu = _check("cpu", "target-value", {"target": 50}, **PROM)
    both = _policy(_stored(cpu, HIGH, LOW))
    assert [c.name for c in both.checks] == ["cpu", "mem"]
    assert _decided(both, {"cpu": 50, "mem": 20}) == (Action.NONE, 5)
    assert _decided(both, {"cpu": 10, "mem": 20}) == (Action.DOWN, 4)


def test_a_group_that_cannot_be_one_check_says_it_never_scales_in() -> None:
    other = _check("low", "threshold", {"upper_bound": 30, "delta": -1}, **{**MEM, "query": "x"})
    policy = _policy(_stored(HIGH, other))
    assert [c.name for c in policy.checks] == ["high", "low"]
    assert (
        "check group 'mem' ('high', 'low') is not carried: its checks read different queries"
    ) in policy.description
    assert "check 'high' never asks for fewer, so this policy never scales in" in (
        policy.description
    )


def test_a_policy_without_bounds_is_a_problem_not_a_crash() -> None:
    found = NomadScalingPolicy(
        id="x",
        max=None,
        target={"Job": "web", "Group": "api"},
        policy={"check": [_check("c", "pass-through", {}, **PROM)]},
    )
    policy, problems = policy_from_nomad(found, name="web.api", file="<nomad>", load=load_data)
    assert policy is None and problems


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5.0), ("1m30s", 90.0), ("1.5h", 5400.0), ("300ms", 0.3), ("0", 0.0), ("5", None)],
)
def test_go_durations(text: str, seconds: float | None) -> None:
    assert go_duration(text) == seconds


FILE_POLICY = """
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

    target "aws-asg" {
      dry-run             = "true"
      aws_asg_name        = "batch-workers"
      node_drain_deadline = "5m"
    }
  }
}
"""


def test_convert_reads_a_policy_file_with_an_asg_target() -> None:
    (converted,) = convert_hcl(FILE_POLICY)
    done = converted.translation
    assert converted.where == 'scaling "batch_queue"'
    assert done.errors == [] and done.unsupported == []
    assert done.data["target"] == {"type": "aws-asg", "asg": "batch-workers"}
    assert done.data["dry_run"] is True
    assert done.data["checks"][0]["query"] == 'sum(queue_depth{queue="batch"})'
    assert any("drained" in note for note in done.notes)


def test_convert_reads_group_scaling_blocks_of_a_job_file() -> None:
    job = """
job "web" {
  namespace = "shop"
  group "api" {
    count = 2
    scaling {
      min = 1
      max = 10
      policy {
        check "rps" {
          source = "prometheus"
          query  = "sum(rate(http_requests_total[1m]))"
          strategy "target-value" { target = 100 }
        }
      }
    }
  }
  group "bounds-only" {
    scaling { max = 3 }
  }
}
"""
    (converted,) = convert_hcl(job)
    data = converted.translation.data
    assert converted.where == 'job "web" group "api"'
    assert data["name"] == "shop-web-api"
    assert data["target"] == {"type": "nomad", "job": "web", "group": "api", "namespace": "shop"}


def test_convert_refuses_what_is_not_hcl_or_has_no_policy() -> None:
    with pytest.raises(ValueError, match="not valid HCL"):
        convert_hcl("scaling {")
    with pytest.raises(ValueError, match="no scaling policy"):
        convert_hcl('job "x" { group "g" { count = 1 } }')


def test_an_unknown_target_plugin_cannot_be_carried() -> None:
    done = translate(
        "x",
        enabled=True,
        min_count=1,
        max_count=3,
        policy={"check": [], "target": [{"gce-mig": [{"project": "p"}]}]},
    )
    assert any("gce-mig" in e for e in done.errors)


JOB_FILE = """
job "web" {
  group "api" {
    scaling {
      enabled = ENABLED
      min     = 1
      max     = 10
      policy {
        check "rps" {
          source = "prometheus"
          query  = "sum(rate(http_requests_total[1m]))"
          strategy "target-value" { target = 100 }
        }
      }
    }
  }
}
"""


@pytest.mark.parametrize("text", [FILE_POLICY, JOB_FILE], ids=["policy file", "job file"])
@pytest.mark.parametrize(
    ("written", "enabled"),
    [
        pytest.param('"false"', False, id="string false"),
        pytest.param("false", False, id="false"),
        pytest.param('"true"', True, id="string true"),
        pytest.param("true", True, id="true"),
    ],
)
def test_enabled_is_read_as_hcl_reads_it_so_a_switched_off_policy_stays_off(
    text: str, written: str, enabled: bool
) -> None:
    source = text.replace("enabled = true", "enabled = ENABLED").replace("ENABLED", written)
    (converted,) = convert_hcl(source)
    assert converted.translation.errors == []
    assert converted.translation.data.get("enabled", True) is enabled


@pytest.mark.parametrize("written", ['"yes"', "1", '"False"'])
def test_an_enabled_that_is_not_a_boolean_is_refused(written: str) -> None:
    (converted,) = convert_hcl(JOB_FILE.replace("ENABLED", written))
    (error,) = converted.translation.errors
    assert error.startswith("enabled = ") and "is not a boolean: write true or false" in error
    assert converted.where == 'job "web" group "api"'


def test_a_job_files_region_is_the_targets_so_a_same_named_job_elsewhere_is_not_scaled() -> None:
    job = JOB_FILE.replace("ENABLED", "true").replace('job "web" {', 'job "web" {\n  region = "eu"')
    (converted,) = convert_hcl(job)
    data = converted.translation.data
    assert data["target"] == {"type": "nomad", "job": "web", "group": "api", "region": "eu"}
    policy, problems = load_data(data, "<converted>")
    assert problems == [] and policy is not None
    assert policy.target == NomadTarget(job="web", group="api", region="eu")


@pytest.mark.parametrize("kind", ['type = "cluster"', 'type = "horizontal"', ""])
def test_a_cluster_policy_file_with_an_asg_target_is_carried(kind: str) -> None:
    (converted,) = convert_hcl(FILE_POLICY.replace("enabled = true", f"enabled = true\n  {kind}"))
    assert converted.translation.errors == []
    assert converted.translation.data["target"] == {"type": "aws-asg", "asg": "batch-workers"}


def test_a_vertical_policy_file_is_refused_with_its_type_named() -> None:
    text = FILE_POLICY.replace("enabled = true", 'enabled = true\n  type = "vertical_cpu"')
    (converted,) = convert_hcl(text)
    (error,) = converted.translation.errors
    assert error.startswith("type 'vertical_cpu' is not carried: only policies that scale a count")


def test_one_job_in_two_namespaces_makes_two_policy_names() -> None:
    in_default = JOB_FILE.replace("ENABLED", "true")
    in_apps = in_default.replace('job "web" {', 'job "web" {\n  namespace = "apps"')
    names = [c.translation.data["name"] for c in convert_hcl(in_default + in_apps)]
    assert names == ["web-api", "apps-web-api"]


def _job_query(query: str) -> str:
    """JOB_FILE with the check's query written as `query` (HCL, quotes included)."""
    job = JOB_FILE.replace("ENABLED", "true")
    return job.replace('"sum(rate(http_requests_total[1m]))"', query)


@pytest.mark.parametrize(
    ("written", "read"),
    [
        pytest.param('"x{job=\\"$${NOMAD_JOB_NAME}\\"}"', 'x{job="${NOMAD_JOB_NAME}"}', id="$${"),
        pytest.param('"x{a=\\"%%{b}\\"}"', 'x{a="%{b}"}', id="%%{"),
        pytest.param('"x{a=\\"$$${b}\\"}"', 'x{a="$${b}"}', id="$ then $${"),
        pytest.param('"x{a=\\"$\\"}"', 'x{a="$"}', id="$ alone"),
        pytest.param('<<EOT\nx{a="$${b}"}\nEOT', 'x{a="${b}"}', id="heredoc"),
    ],
)
def test_hcl_template_escapes_are_undone_as_hcl_does(written: str, read: str) -> None:
    # python-hcl2 keeps `$${` as written: the query matched `$${...}` literally, i.e. nothing.
    (converted,) = convert_hcl(_job_query(written))
    assert converted.translation.errors == []
    assert converted.translation.data["checks"][0]["query"] == read


@pytest.mark.parametrize(
    ("written", "template"),
    [
        pytest.param('"x{job=\\"${var.job}\\"}"', "interpolation ${var.job}", id="variable"),
        pytest.param(
            '"x{job=\\"${NOMAD_JOB_NAME}\\"}"', "interpolation ${NOMAD_JOB_NAME}", id="env"
        ),
        pytest.param('"%{ if true }x%{ endif }"', "directive %{ if true }", id="directive"),
    ],
)
def test_an_hcl_template_is_refused_naming_where_it_is(written: str, template: str) -> None:
    # It was copied into the query as written, and convert exited 0 with a query that
    # matches nothing.
    (converted,) = convert_hcl(_job_query(written))
    (error,) = converted.translation.errors
    assert error.startswith('scaling policy check "rps" query ')
    assert f"holds the HCL {template}: convert does not evaluate HCL expressions" in error
    assert converted.where == 'job "web" group "api"'


@pytest.mark.parametrize(
    ("written", "target", "tolerance"),
    [
        pytest.param("target = 1e3", 1000, 0.01, id="1e3"),
        pytest.param("target = 1.5E+2", 150, 0.01, id="1.5E+2"),
        pytest.param("target = 70\n precision = 5e-2", 70, 0.05, id="precision 5e-2"),
    ],
)
def test_numbers_with_an_exponent_are_numbers(
    written: str, target: float, tolerance: float
) -> None:
    # python-hcl2 gives `1e3` as the string '${1e3}': the check was left out, "target-value
    # needs a numeric target, got '${1e3}'".
    (converted,) = convert_hcl(JOB_FILE.replace("ENABLED", "true").replace("target = 100", written))
    done = converted.translation
    assert done.errors == [] and done.unsupported == []
    (check,) = done.data["checks"]
    assert (check["target"], check["tolerance"]) == (target, tolerance)
    (bounded,) = convert_hcl(
        JOB_FILE.replace("ENABLED", "true").replace("min     = 1", "min = 1e0")
    )
    assert bounded.translation.data["min"] == 1
