"""The service's own metrics: Prometheus naming conventions, what an evaluation records, and
a Grafana dashboard that only uses metrics that exist."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import promql_parser
import pytest

from autoscaler.core.model import (
    Action,
    AsgTarget,
    Check,
    CheckResult,
    Decision,
    ForecastReading,
    Policy,
    Strategy,
)
from autoscaler.engine.reconciler import Evaluation
from autoscaler.service.telemetry import Telemetry

DASHBOARD = Path(__file__).parents[3] / "dashboards" / "autoscaler.json"
SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


def _families(telemetry: Telemetry) -> dict[str, str]:
    """Exposed metric name (with `_total` for counters) -> type."""
    telemetry.watch_queries(lambda: (0, 0))
    telemetry.watch_state(lambda: True)
    found = {}
    for family in telemetry.registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        found[name] = family.type
    return found


def test_every_metric_follows_prometheus_naming() -> None:
    telemetry = Telemetry()
    families = _families(telemetry)
    assert families
    for name, kind in families.items():
        assert name.startswith("autoscaler_"), name
        assert SNAKE.match(name), name
        assert name.endswith("_total") == (kind == "counter"), name
        if kind == "histogram":
            assert name.endswith("_seconds"), name
        if "timestamp" in name:
            assert name.endswith("_timestamp_seconds"), name
        assert "millis" not in name, name
    for family in telemetry.registry.collect():
        for sample in family.samples:
            assert all(SNAKE.match(label) for label in sample.labels), sample


def _evaluation(action: Action, *, dry_run: bool = False, error: str | None = None) -> Evaluation:
    decision = Decision(
        policy="web",
        target="aws-asg:web",
        time=datetime.now(UTC),
        current=2,
        desired=4,
        action=action,
        dry_run=dry_run,
        reasons=("because",),
    )
    return Evaluation(
        decision=decision,
        error=error,
        error_kind="source" if error else None,
        scaled=action is Action.UP and not dry_run,
        duration=0.2,
        query_seconds=(("p95", 0.01),),
    )


def test_an_evaluation_updates_counts_durations_and_actions() -> None:
    telemetry = Telemetry()
    telemetry.observe(_evaluation(Action.UP), at=1234.0)
    telemetry.observe(_evaluation(Action.UP, dry_run=True, error="Prometheus unreachable"))
    value = telemetry.registry.get_sample_value
    assert value("autoscaler_evaluations_total", {"policy": "web", "result": "ok"}) == 1
    assert value("autoscaler_evaluations_total", {"policy": "web", "result": "error"}) == 1
    assert value("autoscaler_current_count", {"policy": "web"}) == 2
    assert value("autoscaler_desired_count", {"policy": "web"}) == 4
    up = {"policy": "web", "direction": "up"}
    assert value("autoscaler_scaling_actions_total", {**up, "dry_run": "false"}) == 1
    assert value("autoscaler_scaling_actions_total", {**up, "dry_run": "true"}) == 1
    assert value("autoscaler_errors_total", {"kind": "source"}) == 1
    assert value("autoscaler_evaluation_duration_seconds_count", {"policy": "web"}) == 2
    labels = {"policy": "web", "check": "p95"}
    assert value("autoscaler_query_duration_seconds_count", labels) == 2
    last = value("autoscaler_last_successful_evaluation_timestamp_seconds", {"policy": "web"})
    assert last == 1234.0


def test_a_forecast_is_exported_with_its_lead_and_error_and_forgotten_with_its_policy() -> None:
    telemetry = Telemetry()
    reading = ForecastReading(value=83.0, lead=timedelta(seconds=150), error=0.12)
    check = CheckResult(
        name="rps", query="sum(rps)", value=50.0, desired=9, error=None, forecast=reading
    )
    evaluation = _evaluation(Action.UP)
    evaluation = replace(evaluation, decision=replace(evaluation.decision, checks=(check,)))
    telemetry.observe(evaluation)
    value = telemetry.registry.get_sample_value
    labels = {"policy": "web", "check": "rps"}
    assert value("autoscaler_check_forecast", labels) == 83.0
    assert value("autoscaler_check_forecast_lead_seconds", labels) == 150.0
    assert value("autoscaler_check_forecast_error_ratio", labels) == 0.12
    none = replace(check, forecast=ForecastReading(value=None, lead=reading.lead, reason="new"))
    telemetry.observe(replace(evaluation, decision=replace(evaluation.decision, checks=(none,))))
    assert math.isnan(value("autoscaler_check_forecast", labels) or 0.0)
    telemetry.loaded([], problems=0, removed=["web"])
    assert value("autoscaler_check_forecast", labels) is None
    assert value("autoscaler_check_forecast_lead_seconds", labels) is None


def test_the_state_gauge_follows_whether_decisions_are_durable() -> None:
    telemetry = Telemetry()
    durable = [True]
    telemetry.watch_state(lambda: durable[0])
    assert telemetry.registry.get_sample_value("autoscaler_state_durable") == 1
    durable[0] = False
    assert telemetry.registry.get_sample_value("autoscaler_state_durable") == 0


def test_a_reload_counts_problems_and_forgets_removed_policies() -> None:
    telemetry = Telemetry()
    telemetry.observe(_evaluation(Action.NONE))
    policy = Policy(
        name="api",
        target=AsgTarget(asg="api"),
        min=1,
        max=2,
        checks=(Check(name="c", strategy=Strategy.FIXED, count=1),),
        interval=timedelta(seconds=5),
    )
    telemetry.loaded([policy], problems=2, removed=["web"])
    value = telemetry.registry.get_sample_value
    assert value("autoscaler_policies_loaded") == 1
    assert value("autoscaler_policy_load_errors") == 2
    assert value("autoscaler_reloads_total", {"result": "failure"}) == 1
    assert value("autoscaler_current_count", {"policy": "web"}) is None
    assert value("autoscaler_evaluations_total", {"policy": "web", "result": "ok"}) == 1


def test_a_policy_that_never_succeeds_still_ages_for_the_staleness_alert() -> None:
    telemetry = Telemetry()
    policy = Policy(
        name="api",
        target=AsgTarget(asg="api"),
        min=1,
        max=2,
        checks=(Check(name="c", strategy=Strategy.FIXED, count=1),),
    )
    before = datetime.now(UTC).timestamp()
    telemetry.loaded([policy], problems=0, removed=[])
    stamp = telemetry.registry.get_sample_value(
        "autoscaler_last_successful_evaluation_timestamp_seconds", {"policy": "api"}
    )
    assert stamp is not None
    assert before <= stamp <= datetime.now(UTC).timestamp()
    telemetry.loaded([policy], problems=0, removed=[])  # a reload does not restart the clock
    assert (
        telemetry.registry.get_sample_value(
            "autoscaler_last_successful_evaluation_timestamp_seconds", {"policy": "api"}
        )
        == stamp
    )


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"]]
    return exprs


@pytest.mark.parametrize("expr", _dashboard_exprs())
def test_the_dashboard_queries_parse_and_use_existing_metrics(expr: str) -> None:
    names = set(_families(Telemetry()))
    concrete = (
        expr.replace("$__rate_interval", "5m").replace("$__range", "1h").replace("$policy", ".*")
    )
    promql_parser.parse(concrete)
    for used in re.findall(r"\bautoscaler_[a-z0-9_]+", expr):
        base = re.sub(r"_(bucket|sum|count)$", "", used)
        assert used in names or base in names, used


def test_the_dashboard_covers_every_metric() -> None:
    used = " ".join(_dashboard_exprs())
    missing = [n for n in _families(Telemetry()) if n not in used and n != "autoscaler_build_info"]
    assert missing == []
