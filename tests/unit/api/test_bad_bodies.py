"""Bad JSON bodies are a 4xx with a clear message, never a 500: numbers JSON cannot carry
(`NaN`, `Infinity`, `1e999`) anywhere in a body, on every route that takes a POST."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from autoscaler.api.admission import MAX_PROBLEMS
from tests.unit.api.conftest import Api

BODIES = [
    pytest.param('{"alerts": [], "version": NaN}', id="nan-in-a-string-field"),
    pytest.param('{"alerts": 1e999}', id="overflowing-number-as-the-list"),
    pytest.param('{"alerts": [{"status": NaN}]}', id="nan-in-an-alert"),
    pytest.param('{"alerts": [{"labels": {"alertname": 1e999}}]}', id="overflow-in-labels"),
    pytest.param('{"alerts": [{"labels": {}, "x": -Infinity}]}', id="infinity-in-an-extra-field"),
    pytest.param("NaN", id="nan-alone"),
    pytest.param("1e999", id="overflow-alone"),
    pytest.param('{"alerts": [], "x": [1, 2, 3e400]}', id="overflow-deep-inside"),
]
ROUTES = ["/v1/alertmanager", "/v1/reload", "/v1/policies/web/evaluate"]


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("body", BODIES)
def test_a_body_with_a_number_json_cannot_carry_is_a_400(
    serve_api: Callable[..., Api], body: str, path: str
) -> None:
    api = serve_api()
    response = api.request("POST", path, data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert "not valid JSON" in detail
    assert "finite" in detail
    assert api.backend.calls == []


def test_a_body_that_is_not_json_at_all_is_a_400(serve_api: Callable[..., Api]) -> None:
    api = serve_api()
    response = api.request(
        "POST", "/v1/alertmanager", data="{alerts: [", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400


def test_a_webhook_of_the_wrong_shape_is_a_422_with_the_problems(
    serve_api: Callable[..., Api],
) -> None:
    api = serve_api()
    response = api.request("POST", "/v1/alertmanager", json={"alerts": "all of them"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "alerts"]


def test_a_valid_webhook_still_reaches_the_service(serve_api: Callable[..., Api]) -> None:
    api = serve_api()
    body = {"version": "4", "alerts": [{"status": "firing", "labels": {"alertname": "X"}}]}
    response = api.request("POST", "/v1/alertmanager", json=body)
    assert response.status_code == 200
    assert response.json() == {"received": 1, "triggered": []}


@pytest.mark.parametrize(
    ("headers", "given"),
    [
        pytest.param({}, "no Content-Type", id="none"),
        pytest.param(
            {"Content-Type": "application/x-www-form-urlencoded"},
            "Content-Type 'application/x-www-form-urlencoded'",
            id="form",
        ),
        pytest.param({"Content-Type": "text/plain"}, "Content-Type 'text/plain'", id="text"),
    ],
)
def test_a_webhook_body_sent_as_another_type_than_json_is_a_415_that_says_so(
    serve_api: Callable[..., Api], headers: dict[str, str], given: str
) -> None:
    # FastAPI answered 422 "Input should be a valid dictionary", echoing the whole body as
    # a string (and so whatever it held), and never named the header to add.
    api = serve_api()
    body = '{"alerts": [{"labels": {"alertname": "Hot", "team": "body-only-7f2a"}}]}'
    response = api.request("POST", "/v1/alertmanager", data=body, headers=headers)
    assert response.status_code == 415, response.text
    detail = response.json()["detail"]
    assert detail == (
        f"the body is JSON: send Content-Type: application/json (this request has {given})"
    )
    assert api.backend.calls == []


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/x+json",
    ],
)
def test_a_webhook_of_a_json_content_type_reaches_the_service(
    serve_api: Callable[..., Api], content_type: str
) -> None:
    api = serve_api()
    body = '{"alerts": [{"status": "firing", "labels": {"alertname": "X"}}]}'
    response = api.request(
        "POST", "/v1/alertmanager", data=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"alerts": [{"labels": {"alertname": 1}}] * 100_000}, id="100000-problems"),
        pytest.param([{"labels": {"alertname": "x" * 100}}] * 30_000, id="a-list-not-an-object"),
        pytest.param({"alerts": "x" * 3_000_000}, id="a-3MB-string-as-the-list"),
    ],
)
def test_a_422_lists_a_few_problems_and_never_echoes_a_large_body(
    serve_api: Callable[..., Api], body: object
) -> None:
    # FastAPI listed every problem with its input: 100,000 bad alerts (3 MB) got a 12 MB
    # answer, and encoding it held the event loop (and /healthz) for seconds.
    api = serve_api()
    # Checking 100,000 alerts takes the server 3 s alone here: under coverage on a busy
    # machine it may take longer than the 10 s other requests are given.
    response = api.request(
        "POST",
        "/v1/alertmanager",
        json=body,
        headers={"Content-Type": "application/json"},
        timeout=120,
    )
    assert response.status_code == 422, response.text[:200]
    assert len(response.content) < 10_000
    detail = response.json()["detail"]
    assert 1 <= len(detail) <= MAX_PROBLEMS + 1
    assert all({"loc", "msg", "type"} <= set(problem) for problem in detail)
    if len(detail) > MAX_PROBLEMS:
        assert detail[-1]["msg"] == f"and {100_000 - MAX_PROBLEMS} more problems, not shown"
    assert api.backend.calls == []
