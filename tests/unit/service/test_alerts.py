"""Which policies an Alertmanager notification wakes up (pure matching)."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.core.model import AsgTarget, Check, Policy, Strategy, Triggers
from autoscaler.service.alerts import Alert, from_webhook, matches, policies_to_trigger


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
    assert matches(POLICIES[3], alert)
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
