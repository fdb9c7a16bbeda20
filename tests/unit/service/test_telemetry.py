"""The service's own metrics: Prometheus naming conventions (and `promtool check metrics`),
what an evaluation records, per-check series bounded by the loaded policies, and a Grafana
dashboard that only uses metrics that exist."""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import promql_parser
import pytest
from prometheus_client import generate_latest

from autoscaler.api.request_metrics import RequestMetrics
from autoscaler.core.model import (
    Action,
    AsgTarget,
    Check,
    CheckResult,
    Decision,
    ForecastReading,
    ForecastSettings,
    Memory,
    Policy,
    Strategy,
)
from autoscaler.engine.evaluation import Evaluation
from autoscaler.errors import Problem
from autoscaler.service.discovery_sources import SourceHealth
from autoscaler.service.telemetry import Telemetry
from tests.support.prometheus import promtool_lint

DASHBOARD = Path(__file__).parents[3] / "dashboards" / "autoscaler.json"
SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
# The standard collectors' families (prometheus_client's process, platform and GC ones).
STANDARD = ("process_", "python_")


def _families(telemetry: Telemetry) -> dict[str, str]:
    """Exposed metric name (with `_total` for counters) -> type."""
    telemetry.watch_queries(lambda: (0, 0))
    telemetry.watch_state(lambda: True, dropped=lambda: 0)
    telemetry.watch_leader(lambda: True, lambda: {"elected": 1, "lapsed": 0})
    telemetry.watch_nomad_streams(lambda: [("default", "", True), ("batch", "eu", False)])
    telemetry.watch_discovery(lambda: [SourceHealth("Nomad jobs", True, 3, 2, 1, 1.0e9)])
    telemetry.watch_aws_requests(lambda: [("eu-west-3", "DescribeAutoScalingGroups", 4)])
    telemetry.watch_malformed_requests(lambda: {"invalid": 0, "unsupported_upgrade": 0})
    requests = RequestMetrics()
    requests.count("/healthz", "GET", 200, 0.001)
    telemetry.watch_http_requests(requests)
    found = {}
    for family in telemetry.registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        found[name] = family.type
    return found


def test_every_metric_follows_prometheus_naming() -> None:
    telemetry = Telemetry()
    families = _families(telemetry)
    assert families
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"} <= set(
        families
    )
    for name, kind in families.items():
        if name.startswith(STANDARD):
            continue
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


def _evaluation(
    action: Action,
    *,
    dry_run: bool = False,
    error: str | None = None,
    policy: str = "web",
    checks: tuple[CheckResult, ...] = (),
) -> Evaluation:
    decision = Decision(
        policy=policy,
        target="aws-asg:web",
        time=datetime.now(UTC),
        current=2,
        desired=4,
        action=action,
        dry_run=dry_run,
        reasons=("because",),
        checks=checks,
    )
    return Evaluation(
        decision=decision,
        error=error,
        error_kind="source" if error else None,
        scaled=action is Action.UP and not dry_run,
        duration=0.2,
        query_seconds=tuple((c.name, 0.01) for c in checks) or (("p95", 0.01),),
    )


def test_an_evaluation_updates_counts_durations_and_actions() -> None:
    telemetry = Telemetry()
    telemetry.observe(_evaluation(Action.UP), at=1234.0)
    telemetry.observe(_evaluation(Action.UP, dry_run=True, error="Prometheus unreachable"))
    value = telemetry.registry.get_sample_value
    assert value("autoscaler_evaluations_total", {"policy": "web", "result": "ok"}) == 1
    assert value("autoscaler_evaluations_total", {"policy": "web", "result": "error"}) == 1
    assert value("autoscaler_current_capacity", {"policy": "web"}) == 2
    assert value("autoscaler_desired_capacity", {"policy": "web"}) == 4
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
    assert value("autoscaler_check_forecast_value", labels) == 83.0
    assert value("autoscaler_check_forecast_lead_seconds", labels) == 150.0
    assert value("autoscaler_check_forecast_error_ratio", labels) == 0.12
    none = replace(check, forecast=ForecastReading(value=None, lead=reading.lead, reason="new"))
    telemetry.observe(replace(evaluation, decision=replace(evaluation.decision, checks=(none,))))
    assert math.isnan(value("autoscaler_check_forecast_value", labels) or 0.0)
    telemetry.loaded([], problems=(), removed=["web"], files_read=True)
    assert value("autoscaler_check_forecast_value", labels) is None
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
    telemetry.loaded(
        [policy], problems=[_problem("a"), _problem("b")], removed=["web"], files_read=True
    )
    value = telemetry.registry.get_sample_value
    assert value("autoscaler_policies_loaded") == 1
    assert value("autoscaler_policy_load_errors") == 2
    assert value("autoscaler_reloads_total", {"result": "failure"}) == 1
    assert value("autoscaler_current_capacity", {"policy": "web"}) is None
    # Its counters and durations go with it (they outlive a reload, not their policy):
    # discovery churning targets grew /metrics without end.
    assert value("autoscaler_evaluations_total", {"policy": "web", "result": "ok"}) is None
    assert value("autoscaler_decisions_total", {"policy": "web", "action": "none"}) is None
    assert value("autoscaler_evaluation_duration_seconds_count", {"policy": "web"}) is None
    assert value("autoscaler_errors_total", {"kind": "policy"}) == 2


def test_an_evaluation_a_reload_overtakes_makes_no_series_of_the_removed_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An evaluation's result is being recorded, its policy found loaded, when a reload
    removes the policy in another thread: the reload waits, and forgets what was counted.
    (Before, it went ahead, and the evaluation's counts made the series again for good.)"""
    telemetry = Telemetry()
    telemetry.loaded([_policy("web", "c")], problems=[], removed=[], files_read=True)
    inside, reloaded = threading.Event(), threading.Event()
    count = telemetry.evaluations.inc

    def overtaken(labels: tuple[str, ...], amount: float = 1.0) -> None:
        inside.set()  # the policy was found loaded; now the reload comes
        reloaded.wait(timeout=0.5)  # (it cannot finish first now: it waits for us)
        count(labels, amount)

    monkeypatch.setattr(telemetry.evaluations, "inc", overtaken)

    def reload() -> None:
        inside.wait(timeout=5)
        telemetry.loaded([], problems=[], removed=["web"], files_read=True)
        reloaded.set()

    reloader = threading.Thread(target=reload)
    reloader.start()
    telemetry.observe(_evaluation(Action.UP))
    reloader.join(timeout=5)
    assert reloaded.is_set()
    value = telemetry.registry.get_sample_value
    assert value("autoscaler_evaluations_total", {"policy": "web", "result": "ok"}) is None
    assert value("autoscaler_decisions_total", {"policy": "web", "action": "up"}) is None


def test_a_removed_policys_triggers_and_actions_are_forgotten_too() -> None:
    telemetry = Telemetry()
    telemetry.observe(_evaluation(Action.UP))
    telemetry.triggered.labels("web", "api").inc()
    telemetry.loaded([_policy("api", "c")], problems=[], removed=["web"], files_read=True)
    value = telemetry.registry.get_sample_value
    up = {"policy": "web", "direction": "up", "dry_run": "false"}
    assert value("autoscaler_scaling_actions_total", up) is None
    assert (
        value("autoscaler_triggered_evaluations_total", {"policy": "web", "source": "api"}) is None
    )


def test_a_disabled_policy_has_no_last_success_to_age() -> None:
    # Its "last success" aged for ever: the stale-policy alert fired for a policy switched
    # off on purpose.
    telemetry = Telemetry()
    web = _policy("web", "c")
    telemetry.loaded([web], problems=[], removed=[], files_read=True)
    name = "autoscaler_last_successful_evaluation_timestamp_seconds"
    assert telemetry.registry.get_sample_value(name, {"policy": "web"}) is not None
    telemetry.loaded([replace(web, enabled=False)], problems=[], removed=[], files_read=True)
    assert telemetry.registry.get_sample_value(name, {"policy": "web"}) is None
    telemetry.loaded([web], problems=[], removed=[], files_read=True)  # enabled again: ages
    assert telemetry.registry.get_sample_value(name, {"policy": "web"}) is not None


def test_a_problem_counts_as_an_error_once_when_it_appears() -> None:
    telemetry = Telemetry()
    value = telemetry.registry.get_sample_value
    policy, broken, colliding = _policy("web", "p95"), _problem("a"), _problem("b")

    def load(*problems: Problem, files_read: bool) -> float | None:
        telemetry.loaded([policy], problems, removed=[], files_read=files_read)
        return value("autoscaler_errors_total", {"kind": "policy"})

    assert load(broken, files_read=True) == 1
    assert load(broken, files_read=True) == 1  # another file saved: still the one problem
    assert load(broken, files_read=False) == 1  # a discovery change finds it again
    assert load(broken, colliding, files_read=False) == 2  # a new one appears
    assert load(files_read=True) == 2  # both fixed
    assert load(broken, files_read=True) == 3  # broken again: it appears again
    assert value("autoscaler_policy_load_errors") == 1


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
    telemetry.loaded([policy], problems=(), removed=[], files_read=True)
    stamp = telemetry.registry.get_sample_value(
        "autoscaler_last_successful_evaluation_timestamp_seconds", {"policy": "api"}
    )
    assert stamp is not None
    assert before <= stamp <= datetime.now(UTC).timestamp()
    # a reload does not restart the clock
    telemetry.loaded([policy], problems=(), removed=[], files_read=True)
    assert (
        telemetry.registry.get_sample_value(
            "autoscaler_last_successful_evaluation_timestamp_seconds", {"policy": "api"}
        )
        == stamp
    )


def _policy(name: str, *checks: str) -> Policy:
    return Policy(
        name=name,
        target=AsgTarget(asg=name),
        min=1,
        max=9,
        checks=tuple(Check(name=c, strategy=Strategy.FIXED, count=1) for c in checks),
    )


def _problem(file: str) -> Problem:
    return Problem(f"{file}.yaml", 3, "max", "expected a whole number")


def _result(name: str, value: float | None, desired: int | None) -> CheckResult:
    error = None if value is not None else "no series"
    return CheckResult(name=name, query="q", value=value, desired=desired, error=error)


def test_each_check_exports_its_value_and_desired_count() -> None:
    telemetry = Telemetry()
    telemetry.loaded([_policy("web", "p95", "queue")], problems=(), removed=[], files_read=True)
    checks = (_result("p95", 0.41, 7), _result("queue", None, None))
    telemetry.observe(_evaluation(Action.UP, checks=checks))
    value = telemetry.registry.get_sample_value
    assert value("autoscaler_check_value", {"policy": "web", "check": "p95"}) == 0.41
    assert value("autoscaler_check_desired_capacity", {"policy": "web", "check": "p95"}) == 7
    # A failed check shows a gap (NaN), never its last good value as if it were current.
    failed = {"policy": "web", "check": "queue"}
    assert math.isnan(value("autoscaler_check_value", failed) or 0.0)
    assert math.isnan(value("autoscaler_check_desired_capacity", failed) or 0.0)


def test_the_series_of_a_policy_share_one_label_tuple_across_families_and_reloads() -> None:
    # One tuple per series key, not one per family: 2 MB at 10,000 policies.
    telemetry = Telemetry()
    telemetry.loaded([_policy("web", "p95")], problems=(), removed=[], files_read=True)
    telemetry.observe(_evaluation(Action.UP, checks=(_result("p95", 0.4, 3),)))
    # a reload keeps them
    telemetry.loaded([_policy("web", "p95")], problems=(), removed=[], files_read=True)
    telemetry.observe(_evaluation(Action.UP, checks=(_result("p95", 0.5, 3),)))

    per_check = (telemetry.check_value, telemetry.check_desired, telemetry.query_seconds)
    (pair,) = telemetry.check_value.series()
    assert pair == ("web", "p95")
    assert all(next(iter(f.series())) is pair for f in per_check)
    per_policy = (
        telemetry.current,
        telemetry.desired,
        telemetry.last_success,
        telemetry.evaluation_seconds,
    )
    (one,) = telemetry.current.series()
    assert one == ("web",)
    assert all(next(iter(f.series())) is one for f in per_policy)


def _series(telemetry: Telemetry, name: str) -> set[tuple[str, ...]]:
    """(policy, check) of each sample of `name`."""
    return _samples(telemetry, name, "check")


def test_a_reload_removes_the_series_of_removed_policies_and_checks() -> None:
    telemetry = Telemetry()
    telemetry.loaded(
        [_policy("web", "p95", "queue"), _policy("api", "rps")], (), removed=[], files_read=True
    )
    web = (_result("p95", 1, 2), _result("queue", 3, 4))
    telemetry.observe(_evaluation(Action.NONE, checks=web))
    telemetry.observe(_evaluation(Action.NONE, policy="api", checks=(_result("rps", 5, 6),)))
    everything = {("web", "p95"), ("web", "queue"), ("api", "rps")}
    assert _series(telemetry, "autoscaler_check_value") == everything
    # queue dropped too
    telemetry.loaded([_policy("web", "p95")], problems=(), removed=["api"], files_read=True)
    for name in [
        "autoscaler_check_value",
        "autoscaler_check_desired_capacity",
        "autoscaler_query_duration_seconds_count",
    ]:
        assert _series(telemetry, name) == {("web", "p95")}, name


def test_an_evaluation_of_a_replaced_version_adds_no_series_back() -> None:
    """An evaluation still running during a reload must not resurrect a removed check."""
    telemetry = Telemetry()
    telemetry.loaded([_policy("web", "p95")], problems=(), removed=[], files_read=True)
    late = _evaluation(Action.NONE, checks=(_result("p95", 1, 2), _result("gone", 3, 4)))
    telemetry.observe(late)
    assert _series(telemetry, "autoscaler_check_value") == {("web", "p95")}
    assert _series(telemetry, "autoscaler_query_duration_seconds_count") == {("web", "p95")}


def test_an_evaluation_ending_after_its_policy_was_removed_adds_no_series_back() -> None:
    """A policy removed by a reload (or discovery) while its evaluation ran: the gauges
    the reload dropped stay dropped (its last-success timestamp would age forever, and the
    stale-policy alert fire for a policy that is gone)."""
    telemetry = Telemetry()
    telemetry.loaded([_policy("web", "p95")], problems=(), removed=[], files_read=True)
    telemetry.loaded([], problems=(), removed=["web"], files_read=True)
    telemetry.observe(_evaluation(Action.NONE, checks=(_result("p95", 1, 2),)))
    for name in (
        "autoscaler_current_capacity",
        "autoscaler_desired_capacity",
        "autoscaler_last_successful_evaluation_timestamp_seconds",
    ):
        assert telemetry.registry.get_sample_value(name, {"policy": "web"}) is None, name
    telemetry.loaded([_policy("web", "p95")], problems=(), removed=[], files_read=True)
    telemetry.observe(_evaluation(Action.NONE, checks=(_result("p95", 1, 2),)))
    labels = {"policy": "web"}
    stamp = "autoscaler_last_successful_evaluation_timestamp_seconds"
    assert telemetry.registry.get_sample_value(stamp, labels) is not None  # back once re-added


def test_a_reload_that_drops_a_checks_forecast_drops_its_forecast_series() -> None:
    forecasting = replace(
        _policy("web", "rps"),
        checks=(Check(name="rps", strategy=Strategy.PASS_THROUGH, query="q", forecast=None),),
    )
    settings = ForecastSettings()
    with_forecast = replace(
        forecasting, checks=(replace(forecasting.checks[0], forecast=settings),)
    )
    telemetry = Telemetry()
    telemetry.loaded([with_forecast], problems=(), removed=[], files_read=True)
    reading = ForecastReading(value=83.0, lead=timedelta(seconds=150), error=0.12)
    result = replace(_result("rps", 50.0, 50), forecast=reading)
    telemetry.observe(_evaluation(Action.NONE, checks=(result,)))
    assert _series(telemetry, "autoscaler_check_forecast_value") == {("web", "rps")}
    telemetry.loaded([forecasting], problems=(), removed=[], files_read=True)
    for name in [
        "autoscaler_check_forecast_value",
        "autoscaler_check_forecast_lead_seconds",
        "autoscaler_check_forecast_error_ratio",
    ]:
        assert _series(telemetry, name) == set(), name
    assert _series(telemetry, "autoscaler_check_value") == {("web", "rps")}


def _exposition_of_a_busy_controller() -> str:
    telemetry = Telemetry()
    telemetry.watch_queries(lambda: (3, 1))
    telemetry.watch_state(lambda: True, dropped=lambda: 2)
    telemetry.watch_leader(lambda: True, lambda: {"elected": 2, "taken_over": 1})
    telemetry.watch_nomad_streams(lambda: [("default", "", True), ("batch", "eu", False)])
    telemetry.watch_aws_requests(
        lambda: [
            ("eu-west-3", "DescribeAutoScalingGroups", 20),
            ("eu-west-3", "SetDesiredCapacity", 2),
        ]
    )
    telemetry.watch_malformed_requests(lambda: {"invalid": 3, "unsupported_upgrade": 1})
    telemetry.watch_http_connections(lambda: {"closed_idle": 2, "refused": 1}, lambda: 1)
    requests = RequestMetrics()
    requests.count("/healthz", "GET", 200, 0.001)
    requests.count("other", "GET", 404, 0.002)
    telemetry.watch_http_requests(requests)
    telemetry.watch_discovery(
        lambda: [
            SourceHealth("Nomad jobs", True, 50, 7, 0, 1.7e9),
            SourceHealth("AWS Auto Scaling Groups (eu-west-3; team=web)", False, 0, 0, 4, None),
        ]
    )
    telemetry.loaded(
        [_policy("web", "p95", "queue")], problems=[_problem("a")], removed=[], files_read=True
    )
    forecast = ForecastReading(value=0.5, lead=timedelta(minutes=3), error=None)
    checks = (replace(_result("p95", 0.41, 7), forecast=forecast), _result("queue", None, None))
    telemetry.observe(_evaluation(Action.UP, checks=checks))
    telemetry.observe(_evaluation(Action.UP, dry_run=True, error="boom", checks=checks))
    telemetry.crashed("web")
    telemetry.observe(_without_data("web", datetime(2026, 12, 4, 10, 0, tzinfo=UTC)))
    telemetry.alerts.labels("firing").inc()
    telemetry.triggered.labels("web", "alert").inc()
    telemetry.notified("sent")
    telemetry.notified("dropped")
    return telemetry.render()[0].decode()


def test_promtool_finds_nothing_to_say_about_the_exposition() -> None:
    """`promtool check metrics` (Prometheus' own linter) reports every convention we break."""
    text = _exposition_of_a_busy_controller()
    assert "autoscaler_check_value" in text
    assert "autoscaler_check_forecast_error_ratio" in text
    assert "process_resident_memory_bytes" in text
    assert 'autoscaler_discovery_reads_total{result="error",source="AWS Auto' in text
    assert 'autoscaler_nomad_event_stream_up{namespace="batch",region="eu"} 0.0' in text
    assert (
        'autoscaler_aws_requests_total{action="SetDesiredCapacity",region="eu-west-3"} 2.0' in text
    )
    assert promtool_lint(text) == (0, "")


def test_promtool_would_flag_a_gauge_named_like_a_histogram_count() -> None:
    """The lint test above is worth something: the old `_count` gauge names fail it."""
    text = "# HELP autoscaler_current_count x\n# TYPE autoscaler_current_count gauge\n"
    text += 'autoscaler_current_count{policy="web"} 2\n'
    code, said = promtool_lint(text)
    assert code != 0
    assert '"_count" suffix' in said


def _dashboard() -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(DASHBOARD.read_text()))


def _dashboard_exprs() -> list[str]:
    dashboard = _dashboard()
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
    for used in re.findall(r"\b(?:autoscaler|process|python)_[a-z0-9_]+", expr):
        base = re.sub(r"_(bucket|sum|count)$", "", used)
        assert used in names or base in names, used


def test_the_dashboard_covers_every_metric() -> None:
    used = " ".join(_dashboard_exprs())
    missing = [
        n
        for n in _families(Telemetry())
        if n not in used and n != "autoscaler_build_info" and not n.startswith(STANDARD)
    ]
    assert missing == []


def test_the_dashboard_overlays_each_checks_value_with_the_counts() -> None:
    """One panel per policy (a repeat over `$policy`) with the checks and both counts."""
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    overlays = [
        p for p in dashboard["panels"] if "autoscaler_check_value" in json.dumps(p.get("targets"))
    ]
    assert len(overlays) == 1
    panel = overlays[0]
    assert variables[panel["repeat"]]["multi"] is True
    exprs = " ".join(t["expr"] for t in panel["targets"])
    for name in [
        "autoscaler_check_value",
        "autoscaler_check_desired_capacity",
        "autoscaler_current_capacity",
        "autoscaler_desired_capacity",
    ]:
        assert f'{name}{{policy=~"$policy"}}' in exprs, name


def test_the_dashboard_panels_do_not_overlap() -> None:
    taken: dict[tuple[int, int], int] = {}
    for panel in _dashboard()["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in taken, (panel["id"], taken[(x, y)])
                taken[(x, y)] = panel["id"]


def test_total_histograms_have_no_policy_label_and_count_every_evaluation() -> None:
    """`--metrics-histograms total`: one histogram per family, whatever the policies; the
    other per-policy series stay as they are, and a reload prunes nothing of them."""
    telemetry = Telemetry(per_policy_histograms=False)
    telemetry.loaded(
        [_policy("web", "p95"), _policy("api", "rps")], (), removed=[], files_read=True
    )
    for policy, check in (("web", "p95"), ("api", "rps"), ("web", "p95")):
        evaluation = replace(
            _evaluation(Action.NONE, policy=policy, checks=(_result(check, 1, 2),)),
            duration=0.2,
            query_seconds=((check, 0.003),),
        )
        telemetry.observe(evaluation)
    telemetry.loaded([_policy("web", "p95")], (), removed=["api"], files_read=True)
    samples = [s for family in telemetry.registry.collect() for s in family.samples]
    for name in (
        "autoscaler_evaluation_duration_seconds_count",
        "autoscaler_query_duration_seconds_count",
    ):
        (count,) = [s for s in samples if s.name == name]
        assert (count.labels, count.value) == ({}, 3.0)
    buckets = {
        s.labels["le"]: s.value
        for s in samples
        if s.name == "autoscaler_evaluation_duration_seconds_bucket"
    }
    assert (buckets["0.1"], buckets["0.25"], buckets["+Inf"]) == (0.0, 3.0, 3.0)
    assert _series(telemetry, "autoscaler_check_value") == {("web", "p95")}
    assert promtool_lint(generate_latest(telemetry.registry).decode()) == (0, "")


def test_the_rendered_body_is_what_generate_latest_writes_of_the_registry() -> None:
    """`render` writes the per-policy families' text itself (fast); every line and its
    place are those `generate_latest` gives (the standard process and GC series aside,
    which move between two reads)."""
    telemetry = Telemetry()
    _families(telemetry)  # the scrape-time collectors too
    check = CheckResult(
        name="rps",
        query="sum(rps)",
        value=50.0,
        desired=9,
        error=None,
        forecast=ForecastReading(value=83.0, lead=timedelta(seconds=150), error=0.12),
    )
    for policy in ("web", 'we"b\\2', "api"):
        telemetry.observe(_evaluation(Action.UP, policy=policy, checks=(check,)), at=1234.0)
        telemetry.observe(_evaluation(Action.NONE, policy=policy, error="Prometheus down"))
    telemetry.crashed("api")

    def steady(body: bytes) -> list[bytes]:
        return [line for line in body.splitlines() if not re.search(rb"\b(process|python)_", line)]

    body, content_type = telemetry.render()
    assert steady(body) == steady(generate_latest(telemetry.registry))
    assert (
        b'autoscaler_query_duration_seconds_bucket{check="rps",le="0.01",policy="web"} 1.0' in body
    )
    assert content_type.startswith("text/plain")


def test_an_evaluation_in_flight_when_its_policy_went_brings_none_of_its_series_back() -> None:
    # The run in flight finished after the reload: it set the removed policy's counters
    # (never removed again) and a disabled one's last success (the stale alert fired).
    telemetry = Telemetry()
    web = _policy("web", "c")
    telemetry.loaded([web], problems=[], removed=[], files_read=True)
    telemetry.loaded([replace(web, enabled=False)], problems=[], removed=[], files_read=True)
    telemetry.observe(_evaluation(Action.NONE))
    value = telemetry.registry.get_sample_value
    assert (
        value("autoscaler_last_successful_evaluation_timestamp_seconds", {"policy": "web"}) is None
    )
    telemetry.loaded([], problems=[], removed=["web"], files_read=True)
    telemetry.observe(_evaluation(Action.UP))
    telemetry.crashed("web")
    assert value("autoscaler_evaluations_total", {"policy": "web", "result": "ok"}) is None
    assert value("autoscaler_evaluations_total", {"policy": "web", "result": "error"}) is None
    up = {"policy": "web", "direction": "up", "dry_run": "false"}
    assert value("autoscaler_scaling_actions_total", up) is None
    assert value("autoscaler_evaluation_duration_seconds_count", {"policy": "web"}) is None


def test_decisions_dropped_unwritten_are_counted() -> None:
    telemetry = Telemetry()
    dropped = [0]
    telemetry.watch_state(lambda: False, dropped=lambda: dropped[0])
    assert telemetry.registry.get_sample_value("autoscaler_state_decisions_dropped_total") == 0
    dropped[0] = 7
    assert telemetry.registry.get_sample_value("autoscaler_state_decisions_dropped_total") == 7


def _without_data(policy: str, since: datetime | None, streak: int = 1) -> Evaluation:
    """An evaluation whose decision the core made with this memory (every check failed
    `streak` times in a row since `since`, or data came back: 0)."""
    memory = Memory(missing_data_streak=streak if since else 0, missing_data_since=since)
    checks = (_result("p95", None, None),) if since else (_result("p95", 0.4, 2),)
    return replace(_evaluation(Action.HOLD, policy=policy, checks=checks), memory=memory)


def test_a_policy_without_data_says_since_when_until_data_comes_back() -> None:
    # Its evaluations are no errors (no series is not a failure to evaluate): the policy
    # held for hours, its last success fresh, and nothing to alert on but NaN check values.
    telemetry = Telemetry()
    telemetry.loaded([_policy("web", "p95")], problems=(), removed=[], files_read=True)
    name = "autoscaler_missing_data_since_timestamp_seconds"
    value = telemetry.registry.get_sample_value
    since = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
    telemetry.observe(_without_data("web", since))
    assert value(name, {"policy": "web"}) == since.timestamp()
    telemetry.observe(_without_data("web", since, streak=5))  # still since then
    assert value(name, {"policy": "web"}) == since.timestamp()
    # The target unreadable: no decision was made, so what is known of the data stays.
    telemetry.observe(replace(_evaluation(Action.HOLD, error="gone"), memory=None))
    assert value(name, {"policy": "web"}) == since.timestamp()
    telemetry.observe(_without_data("web", None))
    assert value(name, {"policy": "web"}) is None


def test_the_missing_data_series_goes_with_its_policy_and_while_it_is_disabled() -> None:
    telemetry = Telemetry()
    web, api = _policy("web", "p95"), _policy("api", "p95")
    telemetry.loaded([web, api], problems=(), removed=[], files_read=True)
    since = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
    telemetry.observe(_without_data("web", since))
    telemetry.observe(_without_data("api", since))
    telemetry.loaded([replace(web, enabled=False)], problems=(), removed=["api"], files_read=True)
    assert _samples(telemetry, "autoscaler_missing_data_since_timestamp_seconds") == set()


def test_evaluation_errors_are_counted_per_policy_and_kind_and_go_with_the_policy() -> None:
    # `autoscaler_errors_total{kind}` has no policy: "which policy cannot scale" had no
    # answer but the logs.
    telemetry = Telemetry()
    telemetry.loaded(
        [_policy("web", "p95"), _policy("api", "p95")], (), removed=[], files_read=True
    )
    telemetry.observe(replace(_evaluation(Action.HOLD, error="x"), error_kind="scale"))
    telemetry.observe(replace(_evaluation(Action.HOLD, error="x"), error_kind="scale"))
    telemetry.observe(
        replace(_evaluation(Action.HOLD, error="x", policy="api"), error_kind="target")
    )
    telemetry.crashed("api")
    telemetry.observe(_evaluation(Action.NONE))
    value = telemetry.registry.get_sample_value
    name = "autoscaler_evaluation_errors_total"
    assert value(name, {"policy": "web", "kind": "scale"}) == 2
    assert value(name, {"policy": "api", "kind": "target"}) == 1
    assert value(name, {"policy": "api", "kind": "crash"}) == 1
    assert _samples(telemetry, name, "kind") == {
        ("web", "scale"),
        ("api", "target"),
        ("api", "crash"),
    }
    telemetry.loaded([_policy("api", "p95")], (), removed=["web"], files_read=True)
    assert _samples(telemetry, name, "kind") == {("api", "target"), ("api", "crash")}


def _samples(telemetry: Telemetry, name: str, *labels: str) -> set[tuple[str, ...]]:
    """The `policy` label and then `labels` of each sample of `name`."""
    return {
        tuple(s.labels[label] for label in ("policy", *labels))
        for family in telemetry.registry.collect()
        for s in family.samples
        if s.name == name
    }


def test_each_enabled_policy_exports_its_interval_until_disabled_or_removed() -> None:
    # The staleness alert compared the age of the last success with 5 minutes for every
    # policy: one evaluated every 10 minutes fired between each two evaluations.
    telemetry = Telemetry()
    web = replace(_policy("web", "p95"), interval=timedelta(minutes=10))
    api = replace(_policy("api", "p95"), interval=timedelta(seconds=15))
    telemetry.loaded([web, api], problems=(), removed=[], files_read=True)
    name = "autoscaler_policy_interval_seconds"
    assert telemetry.registry.get_sample_value(name, {"policy": "web"}) == 600
    assert telemetry.registry.get_sample_value(name, {"policy": "api"}) == 15
    telemetry.loaded([replace(web, enabled=False)], problems=(), removed=["api"], files_read=True)
    assert _samples(telemetry, name) == set()


def test_connections_over_the_api_limit_are_counted_by_what_was_done() -> None:
    telemetry = Telemetry()
    timeouts = [0]
    telemetry.watch_http_connections(
        lambda: {"closed_idle": 3, "closed_stalled": 2, "refused": 1}, lambda: timeouts[0]
    )
    value = telemetry.registry.get_sample_value
    name = "autoscaler_http_connections_over_limit_total"
    assert value(name, {"action": "closed_idle"}) == 3
    assert value(name, {"action": "closed_stalled"}) == 2
    assert value(name, {"action": "refused"}) == 1
    assert value("autoscaler_http_send_timeouts_total", {}) == 0
    timeouts[0] = 4  # read at each scrape
    assert value("autoscaler_http_send_timeouts_total", {}) == 4
