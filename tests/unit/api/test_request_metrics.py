"""Every answer of the API counts in `autoscaler_http_requests_total{route,method,status}`
and `autoscaler_http_request_duration_seconds{route}`, over a real socket: the admission's
refusals (401, 421) before any route, the router's 404, a HEAD as HEAD. The labels stay
bounded whatever a client sends: a route's template, never the path it was given."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from autoscaler.api.request_metrics import CountRequests, RequestMetrics
from autoscaler.service.telemetry import Telemetry
from tests.support.prometheus import promtool_lint
from tests.unit.api.conftest import Api

TOKEN = "metrics-token-4c1d"


def _scrape(requests: RequestMetrics) -> str:
    telemetry = Telemetry()
    telemetry.watch_http_requests(requests)
    return telemetry.render()[0].decode()


def _answers(text: str) -> dict[tuple[str, str, str], float]:
    """(route, method, status) -> count, of `autoscaler_http_requests_total`."""
    found = {}
    for family in text_string_to_metric_families(text):
        if family.name == "autoscaler_http_requests":
            for sample in family.samples:
                labels = sample.labels
                found[labels["route"], labels["method"], labels["status"]] = sample.value
    return found


def test_refusals_before_routing_unknown_paths_and_head_are_counted_with_bounded_labels(
    serve_api: Callable[..., Api],
) -> None:
    requests = RequestMetrics()
    api = serve_api(token=TOKEN, request_metrics=requests)
    assert api.request("GET", "/healthz").status_code == 200
    assert api.request("HEAD", "/healthz").status_code == 200
    assert api.request("GET", "/healthz", headers={"Host": "evil.example"}).status_code == 421
    assert api.request("POST", "/v1/reload").status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert api.request("POST", "/v1/policies/web/evaluate", headers=wrong).status_code == 401
    for path in ("/wp-login.php", "/admin/x1", "/admin/x2"):
        assert api.request("GET", path).status_code == 404
    assert api.request("GET", "/v1/policies/web-7f3a").status_code == 404  # no such policy
    assert api.request("BREW", "/healthz", headers=wrong).status_code == 401

    text = _scrape(requests)
    assert _answers(text) == {
        ("/healthz", "GET", "200"): 1,
        ("/healthz", "HEAD", "200"): 1,
        ("/healthz", "GET", "421"): 1,
        ("/v1/reload", "POST", "401"): 1,
        ("/v1/policies/{name}/evaluate", "POST", "401"): 1,
        ("other", "GET", "404"): 3,
        ("/v1/policies/{name}", "GET", "404"): 1,
        ("/healthz", "other", "401"): 1,
    }
    assert "web-7f3a" not in text
    assert "wp-login" not in text
    assert 'autoscaler_http_request_duration_seconds_count{route="/healthz"} 4.0' in text
    assert 'autoscaler_http_request_duration_seconds_count{route="other"} 3.0' in text
    assert promtool_lint(text) == (0, "")


def test_a_route_is_found_by_its_template_and_anything_else_is_other() -> None:
    from autoscaler.api.http import create_app
    from tests.unit.api.conftest import StubBackend

    app = create_app(StubBackend(), token=None)
    count = CountRequests(app, routes=app.router.routes, into=RequestMetrics())
    assert count.route_of("/healthz") == "/healthz"
    assert count.route_of("/v1/policies/a.b") == "/v1/policies/{name}"
    assert count.route_of("/v1/policies/a/evaluate") == "/v1/policies/{name}/evaluate"
    assert count.route_of("/v1/policies/a/b") == "other"
    assert count.route_of("/v1/policies/") == "other"  # the router redirects it
    assert count.route_of("/healthz/") == "other"


def test_durations_fall_in_the_first_bucket_that_holds_them() -> None:
    requests = RequestMetrics(buckets=(0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 5.0):
        requests.count("/v1/reload", "POST", 200, seconds)
    seen = requests.seen()
    counts, total = seen.durations["/v1/reload"]
    assert counts == [2, 1, 1]
    assert total == 5.65
    text = _scrape(requests)
    assert (
        'autoscaler_http_request_duration_seconds_bucket{le="0.1",route="/v1/reload"} 2.0' in text
    )
    assert (
        'autoscaler_http_request_duration_seconds_bucket{le="1.0",route="/v1/reload"} 3.0' in text
    )
    assert (
        'autoscaler_http_request_duration_seconds_bucket{le="+Inf",route="/v1/reload"} 4.0' in text
    )


def test_a_webhook_call_is_counted_under_its_route(serve_api: Callable[..., Api]) -> None:
    # Added from a router of its own, the webhook route was once counted as `other`.
    requests = RequestMetrics()
    api = serve_api(request_metrics=requests)
    body = {"version": "4", "alerts": [{"status": "firing", "labels": {"alertname": "X"}}]}
    assert api.request("POST", "/v1/alertmanager", json=body).status_code == 200
    # Counted once the answer is sent: the client may read it a moment before.
    deadline = time.monotonic() + 5.0
    while not requests.seen().answers and time.monotonic() < deadline:
        time.sleep(0.01)
    assert requests.seen().answers == {("/v1/alertmanager", "POST", "200"): 1}
