"""The API answers only requests meant for it: a `Host` that does not name the server is
421 (DNS rebinding), a changing request from a web page of another origin is 403 (CSRF);
the valid bearer token is accepted from anywhere. Prometheus and Alertmanager, which use
the server's address and send no Origin, are unaffected."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.unit.api.conftest import Api

TOKEN = "guard-token-5e1f"
CHANGING = [("POST", "/v1/reload"), ("POST", "/v1/policies/web/evaluate")]
READING = [("GET", "/v1/policies"), ("GET", "/v1/decisions"), ("GET", "/metrics")]


@pytest.mark.parametrize(("method", "path"), CHANGING + READING)
@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", "localhost.evil"]
)
def test_a_host_that_does_not_name_the_server_is_421(
    serve_api: Callable[..., Api], method: str, path: str, host: str
) -> None:
    api = serve_api()
    response = api.request(method, path, headers={"Host": host})
    assert response.status_code == 421, response.text
    assert "--allowed-host" in response.json()["detail"]
    assert api.backend.calls == []


@pytest.mark.parametrize(("method", "path"), CHANGING)
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Origin": "http://evil.example"}, id="foreign-origin"),
        pytest.param({"Origin": "null"}, id="opaque-origin"),
        pytest.param({"Origin": "http://127.0.0.1:1"}, id="same-host-other-port"),
        pytest.param({"Origin": "https://127.0.0.1"}, id="other-scheme"),
        pytest.param({"Sec-Fetch-Site": "cross-site"}, id="cross-site-without-origin"),
    ],
)
def test_a_changing_request_from_another_origin_is_403(
    serve_api: Callable[..., Api], method: str, path: str, headers: dict[str, str]
) -> None:
    api = serve_api()
    response = api.request(method, path, headers=headers)
    assert response.status_code == 403, response.text
    assert "cross-origin request refused" in response.json()["detail"]
    assert api.backend.calls == []


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        pytest.param(None, None, id="scripts-send-no-origin"),
        pytest.param(None, "own", id="own-origin"),
        pytest.param("localhost:{port}", "http://localhost:{port}", id="localhost"),
        pytest.param("localhost:2222", "http://localhost:2222", id="tunnelled-port"),
        pytest.param("[::1]:{port}", None, id="ipv6-loopback-literal"),
        pytest.param("LOCALHOST.", None, id="any-case-trailing-dot"),
    ],
)
def test_requests_to_the_server_by_its_own_names_are_answered(
    serve_api: Callable[..., Api], host: str | None, origin: str | None
) -> None:
    api = serve_api()
    headers = {}
    if host is not None:
        headers["Host"] = host.format(port=api.port)
    if origin is not None:
        headers["Origin"] = api.url if origin == "own" else origin.format(port=api.port)
    assert api.request("POST", "/v1/reload", headers=headers).status_code == 200
    assert api.request("GET", "/metrics", headers=headers).status_code == 200


def test_a_read_from_another_origin_is_answered_as_browsers_keep_it_from_the_page(
    serve_api: Callable[..., Api],
) -> None:
    api = serve_api()
    response = api.request("GET", "/v1/policies", headers={"Origin": "http://evil.example"})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_allowed_host_names_are_answered(serve_api: Callable[..., Api]) -> None:
    api = serve_api(allowed_hosts=["autoscaler", "Ops.Example.COM"])
    for host in ("autoscaler:8080", "ops.example.com", "autoscaler"):
        assert api.request("GET", "/metrics", headers={"Host": host}).status_code == 200, host
    origin = {"Host": "autoscaler:8080", "Origin": "http://autoscaler:8080"}
    assert api.request("POST", "/v1/reload", headers=origin).status_code == 200
    assert api.request("GET", "/metrics", headers={"Host": "other"}).status_code == 421


def test_a_star_allows_every_host_but_still_checks_origins(serve_api: Callable[..., Api]) -> None:
    api = serve_api(allowed_hosts=["*"])
    assert api.request("GET", "/metrics", headers={"Host": "anything"}).status_code == 200
    foreign = {"Host": "anything", "Origin": "http://evil.example"}
    assert api.request("POST", "/v1/reload", headers=foreign).status_code == 403


def test_the_valid_token_is_accepted_from_any_host_and_origin(
    serve_api: Callable[..., Api],
) -> None:
    api = serve_api(token=TOKEN)
    foreign = {"Host": "evil.example", "Origin": "http://evil.example"}
    good = {**foreign, "Authorization": f"Bearer {TOKEN}"}
    assert api.request("POST", "/v1/reload", headers=good).status_code == 200
    assert api.request("GET", "/metrics", headers=good).status_code == 200
    wrong = {**foreign, "Authorization": "Bearer nope"}
    assert api.request("POST", "/v1/reload", headers=wrong).status_code == 421
    assert api.request("GET", "/metrics", headers=foreign).status_code == 421
    assert api.request("POST", "/v1/reload").status_code == 401  # the token is still required


def test_a_server_on_every_interface_answers_any_ip_and_localhost(
    serve_api: Callable[..., Api],
) -> None:
    api = serve_api(listen="0.0.0.0:0", token=TOKEN)
    for host in ("10.1.2.3:8080", "192.168.0.7", "[fd00::1]:80", "localhost:8080"):
        assert api.request("GET", "/metrics", headers={"Host": host}).status_code == 200, host
    assert api.request("GET", "/metrics", headers={"Host": "evil.example"}).status_code == 421


def test_a_server_listening_on_a_name_answers_that_name(serve_api: Callable[..., Api]) -> None:
    api = serve_api(listen="localhost:0")
    assert api.request("GET", "/metrics", headers={"Host": "localhost"}).status_code == 200
