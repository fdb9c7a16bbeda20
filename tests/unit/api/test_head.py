"""HEAD on every GET route: the status and headers GET gets, no body. Load balancers and
uptime checks send `HEAD /healthz`; FastAPI routed HEAD to no GET route (405, `Allow:
GET`). The admission rules (Host, Origin, Authorization) apply to HEAD as to GET."""

from __future__ import annotations

import http.client
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Route

from autoscaler.api.http import create_app
from tests.unit.api.conftest import Api, StubBackend

TOKEN = "head-token-77a1"
# The GET routes with path parameters, as requested (the stub backend has no policy: 404).
FILLED = {
    "/docs/assets/{name}": "/docs/assets/swagger-ui.css",
    "/v1/policies/{name}": "/v1/policies/web",
}


def _get_paths() -> list[str]:
    """Every GET route of the app, its parameters filled in."""
    app = create_app(StubBackend(), token=TOKEN)
    paths = []
    for route in app.routes:
        if isinstance(route, APIRoute | Route) and "GET" in (route.methods or ()):
            assert "{" not in route.path or route.path in FILLED, f"fill in {route.path}"
            paths.append(FILLED.get(route.path, route.path))
    return paths


GET_PATHS = _get_paths()


def _exchange(
    api: Api, requests: list[tuple[str, str, Mapping[str, str]]]
) -> list[tuple[int, list[tuple[str, str]], bytes]]:
    """The requests one after the other on one kept-alive connection: a body sent after a
    HEAD's head would be read as the next answer (and break it)."""
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    answers = []
    try:
        for method, path, headers in requests:
            conn.putrequest(method, path, skip_host="Host" in headers)
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            response = conn.getresponse()
            body = response.read()
            kept = sorted((k.lower(), v) for k, v in response.getheaders() if k.lower() != "date")
            answers.append((response.status, kept, body))
    finally:
        conn.close()
    return answers


def test_every_get_route_is_listed() -> None:
    assert {"/healthz", "/readyz", "/metrics", "/v1/policies", "/docs"} <= set(GET_PATHS)


@pytest.mark.parametrize("path", GET_PATHS)
def test_head_answers_as_get_without_the_body(serve_api: Callable[..., Api], path: str) -> None:
    api = serve_api(token=TOKEN)
    (head_status, head_headers, head_body), (get_status, get_headers, get_body) = _exchange(
        api, [("HEAD", path, {}), ("GET", path, {})]
    )
    assert head_status == get_status
    assert head_status != 405
    assert head_headers == get_headers  # Content-Length too: GET's
    assert head_body == b""
    assert get_body or 300 <= get_status < 400  # /redoc: a redirect without a body
    half = len(api.backend.calls) // 2
    assert api.backend.calls[:half] == api.backend.calls[half:]  # the same work was done


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({"Host": "evil.example"}, 421, id="foreign-host"),
        pytest.param(
            {"Host": "evil.example", "Authorization": f"Bearer {TOKEN}"},
            200,
            id="foreign-host-token",
        ),
        # Two headers (a dict keeps both spellings; http.client sends each).
        pytest.param(
            {"Authorization": "Bearer a", "authorization": "Bearer b"}, 400, id="two-auth"
        ),
        pytest.param({"Origin": "http://evil.example"}, 200, id="foreign-origin"),
        pytest.param({"Authorization": "Bearer wrong"}, 200, id="wrong-token"),
    ],
)
def test_the_admission_rules_are_the_same_for_head_and_get(
    serve_api: Callable[..., Api], path: str, headers: dict[str, str], status: int
) -> None:
    api = serve_api(token=TOKEN)
    head, get = _exchange(api, [("HEAD", path, headers), ("GET", path, headers)])
    assert head[0] == get[0] == status
    assert head[1] == get[1]
    assert head[2] == b""


def test_head_to_a_changing_route_is_what_get_gets_there(serve_api: Callable[..., Api]) -> None:
    api = serve_api(token=TOKEN)
    head, get = _exchange(api, [("HEAD", "/v1/reload", {}), ("GET", "/v1/reload", {})])
    assert head[0] == get[0] == 405
    assert head[1] == get[1]
    assert ("allow", "POST") in head[1]
    assert api.backend.calls == []


def test_head_as_get_drops_the_body_at_the_asgi_level() -> None:
    # Over a socket uvicorn itself sends no body for a HEAD (its scope still says HEAD),
    # so the test above cannot see what HeadAsGet drops: here, with no server between.
    import asyncio

    from autoscaler.api.http import HeadAsGet

    seen_methods: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen_methods.append(scope["method"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        await send({"type": "http.response.body", "body": b"rest"})

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    asyncio.run(HeadAsGet(app)({"type": "http", "method": "HEAD"}, receive, send))
    assert seen_methods == ["GET"]
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[1]["body"] == b""
