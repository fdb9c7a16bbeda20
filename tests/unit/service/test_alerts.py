"""Which policies an Alertmanager notification wakes up (pure matching)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from autoscaler.api.models import AlertmanagerWebhook
from autoscaler.core.model import AsgTarget, Check, Policy, Strategy, Triggers
from autoscaler.service.alerts import (
    Alert,
    from_webhook,
    group_key,
    left_out,
    policies_to_trigger,
)


def _policy(name: str, *alerts: str, enabled: bool = True) -> Policy:
    return Policy(
        name=name,
        target=AsgTarget(asg=name),
        min=1,
        max=5,
        checks=(Check(name="c", strategy=Strategy.FIXED, count=2),),
        enabled=enabled,
        triggers=Triggers(alerts=alerts),
    )


def _webhook(*alerts: tuple[str, dict[str, str]], status: str = "firing") -> dict[str, Any]:
    return {
        "version": "4",
        "status": status,
        "alerts": [{"status": s, "labels": labels} for s, labels in alerts],
    }


POLICIES = [
    _policy("checkout", "CheckoutSlow", "CheckoutErrors"),
    _policy("search", "SearchSlow"),
    _policy("quiet"),
    _policy("off", "CheckoutSlow", enabled=False),
]


@pytest.mark.parametrize(
    ("alerts", "expected"),
    [
        pytest.param([("firing", {"alertname": "CheckoutSlow"})], ["checkout"], id="firing"),
        pytest.param([("resolved", {"alertname": "CheckoutSlow"})], ["checkout"], id="resolved"),
        pytest.param(
            [("firing", {"alertname": "SearchSlow"}), ("firing", {"alertname": "CheckoutErrors"})],
            ["checkout", "search"],
            id="several-in-policy-order",
        ),
        pytest.param(
            [
                ("firing", {"alertname": "CheckoutSlow", "instance": "a"}),
                ("firing", {"alertname": "CheckoutSlow", "instance": "b"}),
            ],
            ["checkout"],
            id="each-policy-once",
        ),
        pytest.param([("firing", {"alertname": "Unrelated"})], [], id="no-match"),
        pytest.param([("firing", {"severity": "page"})], [], id="no-alertname"),
        pytest.param([("firing", {"alertname": "checkoutslow"})], [], id="case-sensitive"),
    ],
)
def test_policies_to_trigger(alerts: list[tuple[str, dict[str, str]]], expected: list[str]) -> None:
    parsed = from_webhook(_webhook(*alerts))
    assert policies_to_trigger(parsed, POLICIES) == expected


def test_a_disabled_policy_is_never_triggered() -> None:
    alert = Alert(status="firing", labels={"alertname": "CheckoutSlow"})
    # It would be triggered, were it enabled:
    assert "off" in policies_to_trigger([alert], [replace(POLICIES[3], enabled=True)])
    assert "off" not in policies_to_trigger([alert], POLICIES)


def test_alert_status_defaults_to_the_notification_status() -> None:
    payload = {"status": "resolved", "alerts": [{"labels": {"alertname": "X"}}]}
    assert from_webhook(payload) == [Alert(status="resolved", labels={"alertname": "X"})]


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({}, id="no-alerts"),
        pytest.param({"alerts": "x"}, id="alerts-not-a-list"),
        pytest.param({"alerts": [1]}, id="alert-not-an-object"),
        pytest.param({"alerts": [{"labels": ["a"]}]}, id="labels-not-an-object"),
    ],
)
def test_a_body_that_is_not_a_webhook_is_rejected(payload: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="alerts"):
        from_webhook(payload)


def test_an_alert_without_status_takes_the_notifications_as_the_endpoint_reads_it() -> None:
    """The endpoint's model gave an alert without `status` "firing", so the notification's
    "resolved" was never used and the alert was counted as firing."""
    body = {"version": "4", "status": "resolved", "alerts": [{"labels": {"alertname": "X"}}]}
    payload = AlertmanagerWebhook.model_validate(body).model_dump()
    assert from_webhook(payload) == [Alert(status="resolved", labels={"alertname": "X"})]


@pytest.mark.parametrize(
    ("truncated", "expected"),
    [(3, 3), (0, 0), (None, 0), (-1, 0), ("3", 0), (True, 0)],
)
def test_alerts_left_out_are_alertmanagers_truncated_alerts(truncated: Any, expected: int) -> None:
    assert left_out({"alerts": [], "truncatedAlerts": truncated}) == expected


def test_a_group_key_is_quoted_and_cut_short_for_the_log() -> None:
    assert group_key({"groupKey": '{}:{alertname="A"}\nforged'}).startswith("'{}:{alertname=")
    assert "\n" not in group_key({"groupKey": "a\nb"})
    assert len(group_key({"groupKey": "x" * 1000})) == 201
    assert group_key({}) == "(no groupKey)"


def test_a_large_notification_at_thousands_of_policies_is_matched_at_once() -> None:
    """Each policy was matched against each alert: 5,000 alerts at 10,000 policies took
    about 8 s of CPU, holding the interpreter's lock from evaluations and health checks."""
    policies = [_policy(f"p{i}", f"Alert{i}") for i in range(10_000)]
    payload = _webhook(*[("firing", {"alertname": f"Other{k}"}) for k in range(5_000)])
    payload["alerts"].append({"status": "firing", "labels": {"alertname": "Alert9999"}})
    parsed = from_webhook(payload)
    started = time.process_time()
    assert policies_to_trigger(parsed, policies) == ["p9999"]
    assert time.process_time() - started < 1
