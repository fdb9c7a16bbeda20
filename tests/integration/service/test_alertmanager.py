"""Alert-driven evaluation end to end: a Prometheus rule fires, Alertmanager calls the
service's webhook (with a bearer token), and the policy evaluates and scales at once, long
before its 5-minute interval; the resolved alert makes it evaluate again."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.support.alertmanager import (
    PROMETHEUS_ALERT_ARGS,
    AlertmanagerServer,
    prometheus_alerting,
)
from tests.support.aws import MotoServer
from tests.support.net import wait_until
from tests.support.prometheus import PrometheusServer
from tests.support.service import ServiceProcess, create_asg

pytestmark = pytest.mark.integration

TOKEN = "alertmanager-token-31d7"


def _policy(asg: str) -> str:
    return f"""
name: checkout
target: {{type: aws-asg, asg: {asg}}}
min: 1
max: 10
interval: 5m
cooldown: {{up: 0s, down: 0s}}
stabilization: {{up: 0s, down: 0s}}
triggers: {{alerts: [CheckoutSlow]}}
checks:
  - name: slow-alert
    query: count(ALERTS{{alertname="CheckoutSlow", alertstate="firing"}}) or vector(0)
    strategy: threshold
    steps:
      - {{above: 0.5, change: "+2"}}
      - {{below: 0.5, change: "-1"}}
"""


def test_a_firing_then_resolved_alert_makes_the_policy_evaluate_at_once(
    service_factory: Callable[..., ServiceProcess],
    prometheus_factory: Callable[..., PrometheusServer],
    alertmanager_factory: Callable[..., AlertmanagerServer],
    moto_server: MotoServer,
    tmp_path: Path,
) -> None:
    asg = create_asg(moto_server.url, desired=2)
    metric = f"t{uuid.uuid4().hex[:10]}_latency"
    service = service_factory(prometheus_url="http://127.0.0.1:9", env=moto_server.env, token=TOKEN)
    alertmanager = alertmanager_factory(webhook_url=f"{service.url}/v1/alertmanager", token=TOKEN)
    rules = tmp_path / "rules.yml"
    rule = {"alert": "CheckoutSlow", "expr": f"{metric} > 1", "for": "0s"}
    rules.write_text(yaml.safe_dump({"groups": [{"name": "checkout", "rules": [rule]}]}))
    prometheus = prometheus_factory(
        config={"rule_files": [str(rules)], **prometheus_alerting(alertmanager)},
        args=PROMETHEUS_ALERT_ARGS,
    )
    prometheus.push(metric, 0.2)
    service.prometheus_url = prometheus.url
    service.write_policy("checkout", _policy(asg))
    service.start()
    wait_until(lambda: bool(service.decisions("checkout")), timeout=15, what="the first evaluation")
    assert service.decisions("checkout")[0]["action"] == "down"  # no alert: -1
    wait_until(lambda: moto_server.desired_capacity(asg) == 1, timeout=15, what="scale to 1")

    prometheus.push(metric, 5)  # the rule fires at its next evaluation (every 1 s)
    wait_until(
        lambda: moto_server.desired_capacity(asg) == 3,
        timeout=20,
        what="the alert to scale the ASG up via Alertmanager",
    )
    assert service.metric(
        "autoscaler_triggered_evaluations_total", policy="checkout", source="alert"
    )
    assert alertmanager.alerts()

    prometheus.push(metric, 0.2)  # resolved: the policy evaluates again and scales down
    wait_until(
        lambda: moto_server.desired_capacity(asg) == 2,
        timeout=20,
        what="the resolved alert to trigger an evaluation",
    )
    assert service.metric("autoscaler_alerts_received_total", status="resolved")
    assert service.stop() == 0


def _fixed(name: str, asg: str, alert: str) -> str:
    return (
        f"name: {name}\ntarget: {{type: aws-asg, asg: {asg}}}\nmin: 1\nmax: 10\ninterval: 5m\n"
        f"triggers: {{alerts: [{alert}]}}\n"
        "checks:\n  - {name: fixed, strategy: fixed, count: 2}\n"
    )


def test_alerts_alertmanager_leaves_out_for_max_alerts_are_counted_and_logged(
    service_factory: Callable[..., ServiceProcess],
    alertmanager_factory: Callable[..., AlertmanagerServer],
    moto_server: MotoServer,
) -> None:
    """With `max_alerts`, Alertmanager sends the first alerts of a group and only the number
    of the others (`truncatedAlerts`): a policy that only those name cannot be woken. That
    was silent; it is logged, naming the setting, and counted."""
    service = service_factory(prometheus_url="http://127.0.0.1:9", env=moto_server.env, token=TOKEN)
    service.write_policy("alpha", _fixed("alpha", create_asg(moto_server.url), "AlphaHigh"))
    service.write_policy("beta", _fixed("beta", create_asg(moto_server.url), "BetaHigh"))
    service.start()
    alertmanager = alertmanager_factory(
        webhook_url=f"{service.url}/v1/alertmanager",
        token=TOKEN,
        group_by=["cluster"],  # both alerts in one group, one of them sent
        max_alerts=1,
    )
    alertmanager.post_alerts(
        {"alertname": "AlphaHigh", "cluster": "c1"}, {"alertname": "BetaHigh", "cluster": "c1"}
    )
    wait_until(
        lambda: bool(service.metric("autoscaler_alerts_truncated_total")),
        timeout=20,
        what="a notification with an alert left out",
    )
    warnings = [r for r in service.log_records() if "max_alerts" in r.get("message", "")]
    assert warnings, service.log()
    assert warnings[0]["level"] == "warning"
    assert "1 alert" in warnings[0]["message"]
    assert service.stop() == 0
