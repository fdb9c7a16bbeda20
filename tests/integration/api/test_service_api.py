"""The service's HTTP API, telemetry, logs and notifications, against one running service.

One `autoscaler run` subprocess for the module (real Prometheus and moto): policy `web`
scales its ASG from 2 to 4 on its first evaluation and then sits in a one-hour cooldown,
`idle` is disabled, and `broken.yaml` is invalid. Every test only reads, or does what the
steady state is unaffected by, so their order does not matter.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.aws import MotoServer
from tests.support.net import wait_until
from tests.support.prometheus import PrometheusServer, promtool_lint
from tests.support.service import (
    ServiceProcess,
    WebhookReceiver,
    create_asg,
    policy_yaml,
    serve_webhook_receiver,
)

# One xdist worker runs the whole module, so its service (module fixture) starts once.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("service-api")]

API_TOKEN = "api-token-5b1e9c0f"
AWS_SECRET = "aws-secret-0d4c7a91e2"
PROMETHEUS_SECRET = "prom-token-77aa31c8"
HOOK_SECRET = "hook-path-secret-9f3e"
SECRETS = (API_TOKEN, AWS_SECRET, PROMETHEUS_SECRET, HOOK_SECRET)


@dataclass
class Api:
    service: ServiceProcess
    moto: MotoServer
    asg: str
    receiver: WebhookReceiver


@pytest.fixture(scope="module")
def api(
    prometheus: PrometheusServer, moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    workdir: Path = tmp_path_factory.mktemp("service-api")
    metric = f"t{uuid.uuid4().hex[:10]}_load"
    prometheus.push(metric, 4)
    asg = create_asg(moto_server.url)
    idle = create_asg(moto_server.url)
    prometheus_token = workdir / "prometheus-token"
    prometheus_token.write_text(PROMETHEUS_SECRET)
    with serve_webhook_receiver() as receiver:
        service = ServiceProcess(
            workdir,
            prometheus_url=prometheus.url,
            env={**moto_server.env, "AWS_SECRET_ACCESS_KEY": AWS_SECRET},
            token=API_TOKEN,
            args=[
                f"--prometheus-token-file={prometheus_token}",
                f"--notify-url={receiver.url}/hooks/{HOOK_SECRET}",
            ],
        )
        web = policy_yaml(
            "web",
            asg=asg,
            query=f"sum({metric})",
            cooldown="1h",
            extra="triggers: {alerts: [WebSlow]}\n",
        )
        service.write_policy("web", web)
        service.write_policy(
            "idle", policy_yaml("idle", asg=idle, count=3, extra="enabled: false\n")
        )
        service.write_policy("broken", "name: broken\nmin: 5\nmax: 1\n")
        service.start()
        try:
            wait_until(
                lambda: moto_server.desired_capacity(asg) == 4,
                timeout=15,
                what="the first scaling action",
            )
            wait_until(lambda: len(service.decisions("web")) >= 3, timeout=30, what="3 decisions")
            yield Api(service=service, moto=moto_server, asg=asg, receiver=receiver)
        finally:
            service.kill()


def test_health_and_readiness(api: Api) -> None:
    assert api.service.get("/healthz").json() == {"status": "ok"}
    ready = api.service.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "reason": None, "role": "leader"}  # as the README shows


def test_policy_status_shows_counts_decision_schedule_cooldown_and_errors(api: Api) -> None:
    web = api.service.policy("web")
    assert web["target"] == f"aws-asg:{api.asg}"
    assert (web["current"], web["desired"]) == (4, 4)
    assert web["last_decision"]["reasons"]
    assert web["last_error"] is None
    assert web["triggers"] == ["WebSlow"]
    assert 3500 < web["cooldown_remaining"]["up_seconds"] <= 3600
    assert web["cooldown_remaining"]["last_scaled_at"] is not None
    assert web["next_evaluation_at"] is not None or web["evaluating"]
    assert web["load_errors"] == []

    listing = api.service.get("/v1/policies").json()
    assert {p["name"] for p in listing["policies"]} == {"web", "idle"}
    idle = next(p for p in listing["policies"] if p["name"] == "idle")
    assert idle["enabled"] is False
    assert idle["last_decision"] is None
    assert any(e["file"].endswith("broken.yaml") for e in listing["load_errors"])
    assert api.service.get("/v1/policies/nope").status_code == 404


def test_decisions_are_newest_first_filtered_and_limited(api: Api) -> None:
    decisions = api.service.decisions("web", limit=3)
    assert len(decisions) == 3
    times = [datetime.fromisoformat(d["time"]) for d in decisions]
    assert times == sorted(times, reverse=True)
    assert all(d["policy"] == "web" for d in decisions)
    oldest = api.service.decisions("web", limit=1000)[-1]
    assert (oldest["action"], oldest["current"], oldest["desired"]) == ("up", 2, 4)
    assert api.service.decisions("idle") == []
    assert api.service.get("/v1/decisions", limit=0).status_code == 422


def test_changing_endpoints_require_the_token(api: Api) -> None:
    body = {"alerts": [{"status": "firing", "labels": {"alertname": "WebSlow"}}]}
    for path, payload in [
        ("/v1/policies/web/evaluate", None),
        ("/v1/reload", None),
        ("/v1/alertmanager", body),
    ]:
        for token in (None, "wrong"):
            response = api.service.post(path, token=token, json_body=payload)
            assert response.status_code == 401, (path, token)
            assert response.headers["WWW-Authenticate"] == "Bearer"
    assert api.service.post("/v1/reload").status_code == 200


def test_a_webhook_body_without_a_json_content_type_is_a_415_without_the_body(api: Api) -> None:
    # It was a 422 echoing the whole body back as a string, where a body that is not JSON
    # is a 400 on every route, and nothing said which header was missing.
    body = b'{"alerts": [{"labels": {"alertname": "Unrouted", "note": "body-only-3c9e"}}]}'
    for headers in ({}, {"Content-Type": "text/plain"}):
        response = api.service.http.post(
            api.service.url + "/v1/alertmanager",
            data=body,
            headers={"Authorization": f"Bearer {API_TOKEN}", **headers},
            timeout=30,
        )
        assert response.status_code == 415, response.text
        assert "send Content-Type: application/json" in response.json()["detail"]
        assert "body-only-3c9e" not in response.text


def test_evaluate_now_applies_and_dry_run_only_previews(api: Api) -> None:
    applied = api.service.post("/v1/policies/web/evaluate")
    assert applied.status_code == 200
    result = applied.json()
    assert result["preview"] is False
    assert result["decision"]["current"] == 4
    assert result["decision"]["time"] in {d["time"] for d in api.service.decisions("web")}

    preview = api.service.post("/v1/policies/web/evaluate", dry_run="true").json()
    assert preview["preview"] is True
    assert preview["decision"]["time"] not in {d["time"] for d in api.service.decisions("web")}

    disabled = api.service.post("/v1/policies/idle/evaluate")
    assert disabled.status_code == 409
    assert api.service.post("/v1/policies/idle/evaluate", dry_run="true").status_code == 200
    assert api.service.post("/v1/policies/nope/evaluate").status_code == 404
    assert api.moto.desired_capacity(api.asg) == 4


def test_alertmanager_webhook_triggers_matching_policies(api: Api) -> None:
    def notify(alertname: str, status: str = "firing") -> list[str]:
        body = {
            "version": "4",
            "status": status,
            "receiver": "autoscaler",
            "alerts": [{"status": status, "labels": {"alertname": alertname}}],
        }
        response = api.service.post("/v1/alertmanager", json_body=body)
        assert response.status_code == 200
        triggered: list[str] = response.json()["triggered"]
        return triggered

    assert notify("WebSlow") == ["web"]
    assert notify("WebSlow", "resolved") == ["web"]
    assert notify("SomethingElse") == []
    assert api.service.post("/v1/alertmanager", json_body={"nope": 1}).status_code == 422
    assert api.service.metric("autoscaler_alerts_received_total", status="resolved") == 1


def test_reload_reports_load_errors(api: Api) -> None:
    result = api.service.post("/v1/reload").json()
    assert result["changed"] is False
    assert any(e["file"].endswith("broken.yaml") for e in result["load_errors"])


def test_metrics_follow_prometheus_naming(api: Api) -> None:
    service = api.service
    assert service.metric("autoscaler_evaluations_total", policy="web", result="ok")
    assert service.metric("autoscaler_current_capacity", policy="web") == 4
    assert service.metric("autoscaler_desired_capacity", policy="web") == 4
    actions = {"policy": "web", "direction": "up", "dry_run": "false"}
    assert service.metric("autoscaler_scaling_actions_total", **actions) == 1
    assert service.metric("autoscaler_policies_loaded") == 2
    problems = len(service.get("/v1/policies").json()["load_errors"])
    assert problems > 0
    assert service.metric("autoscaler_policy_load_errors") == problems
    assert service.metric("autoscaler_errors_total", kind="policy")
    assert service.metric("autoscaler_last_successful_evaluation_timestamp_seconds", policy="web")
    assert service.metric("autoscaler_query_duration_seconds_count", policy="web", check="load")
    assert service.metric("autoscaler_evaluation_duration_seconds_count", policy="web")
    assert service.metric("autoscaler_queries_total", mode="sent")
    names = {
        line.split(" ")[2]
        for line in service.get("/metrics").text.splitlines()
        if line.startswith("# TYPE")
    }
    assert names
    assert all(n.startswith(("autoscaler_", "process_", "python_")) for n in names)
    assert {"process_cpu_seconds_total", "process_open_fds", "python_info"} <= names


def test_each_check_exports_its_value_and_desired_count(api: Api) -> None:
    # `web` passes sum(load) = 4 through (strategy pass-through): the check wants 4.
    assert api.service.metric("autoscaler_check_value", policy="web", check="load") == 4
    wanted = api.service.metric("autoscaler_check_desired_capacity", policy="web", check="load")
    assert wanted == 4


def test_the_metrics_pass_promtool_check_metrics(api: Api) -> None:
    exposition = api.service.get("/metrics").text
    assert promtool_lint(exposition) == (0, "")


def _answers(service: ServiceProcess) -> dict[tuple[str, str, str], float]:
    """`autoscaler_http_requests_total` on `/metrics`: (route, method, status) -> count."""
    found = {}
    for family in text_string_to_metric_families(service.get("/metrics").text):
        if family.name == "autoscaler_http_requests":
            for sample in family.samples:
                labels = sample.labels
                found[labels["route"], labels["method"], labels["status"]] = sample.value
    return found


def test_every_answer_counts_by_route_template_method_and_status(api: Api) -> None:
    service = api.service
    before = _answers(service)
    assert service.get("/healthz").status_code == 200
    assert service.http.head(service.url + "/healthz", timeout=10).status_code == 200
    foreign = service.http.get(
        service.url + "/healthz", headers={"Host": "evil.example"}, timeout=10
    )
    assert foreign.status_code == 421
    assert service.post("/v1/reload", token="wrong-token").status_code == 401
    assert service.post("/v1/alertmanager", token=None, json_body={}).status_code == 401
    assert service.get("/no/such/path-4f2a").status_code == 404
    assert service.get("/v1/policies/no-such-policy-4f2a").status_code == 404
    after = _answers(service)
    grown = {
        labels: n - before.get(labels, 0)
        for labels, n in after.items()
        if n != before.get(labels, 0) and labels[0] != "/metrics"
    }
    assert grown == {
        ("/healthz", "GET", "200"): 1,
        ("/healthz", "HEAD", "200"): 1,
        ("/healthz", "GET", "421"): 1,
        ("/v1/reload", "POST", "401"): 1,
        ("/v1/alertmanager", "POST", "401"): 1,
        ("other", "GET", "404"): 1,
        ("/v1/policies/{name}", "GET", "404"): 1,
    }
    exposition = service.get("/metrics").text
    assert "4f2a" not in exposition  # no path a client sent becomes a label
    assert 'autoscaler_http_request_duration_seconds_count{route="/healthz"}' in exposition
    assert promtool_lint(exposition) == (0, "")


def test_openapi_documents_every_endpoint(api: Api) -> None:
    document = api.service.get("/openapi.json").json()
    assert set(document["paths"]) >= {
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/policies",
        "/v1/policies/{name}",
        "/v1/policies/{name}/evaluate",
        "/v1/decisions",
        "/v1/reload",
        "/v1/alertmanager",
    }
    assert "PolicyOut" in document["components"]["schemas"]
    assert api.service.get("/docs").status_code == 200


def test_scaling_action_is_notified_with_a_slack_text(api: Api) -> None:
    wait_until(lambda: bool(api.receiver.bodies), timeout=30, what="a notification")
    body = api.receiver.bodies[0]
    assert api.receiver.paths[0] == f"/hooks/{HOOK_SECRET}"
    assert body["decision"]["action"] == "up"
    assert body["decision"]["policy"] == "web"
    assert "from 2 to 4" in body["text"]
    assert api.service.metric("autoscaler_notifications_total", result="sent") == 1


def test_one_json_log_line_per_decision(api: Api) -> None:
    lines = [r for r in api.service.log_records() if r.get("logger") == "autoscaler.decisions"]
    first = lines[0]
    assert first["policy"] == "web"
    assert first["target"] == f"aws-asg:{api.asg}"
    assert (first["current"], first["desired"], first["action"]) == (2, 4, "up")
    assert first["dry_run"] is False
    assert first["reasons"]
    assert (first["check.load.value"], first["check.load.desired"]) == (4, 4)
    legacy = first["decision"]  # the earlier shape, still there
    assert (legacy["policy"], legacy["current"], legacy["desired"]) == ("web", 2, 4)


def test_no_secret_in_logs_or_api_output(api: Api) -> None:
    api.service.post("/v1/policies/web/evaluate")  # something happens with the token in use
    outputs = [api.service.log()]
    for path in ["/v1/policies", "/v1/decisions", "/metrics", "/openapi.json", "/readyz"]:
        outputs.append(api.service.get(path).text)
    text = "\n".join(outputs)
    for secret in SECRETS:
        assert not re.search(re.escape(secret), text), secret
