"""How the bearer token is read from a request: one `Authorization` header, scheme in any
case, spaces around the token ignored; nowhere else (not in the query string)."""

from __future__ import annotations

import http.client
from collections.abc import Callable

import pytest

from tests.unit.api.conftest import Api

TOKEN = "s3cret-token"


def _post(api: Api, path: str, *authorizations: str, host: str = "127.0.0.1") -> tuple[int, str]:
    """POST `path` with one `Authorization` header per item (http.client sends each one)."""
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    try:
        conn.putrequest("POST", path, skip_host=True)
        conn.putheader("Host", host)
        conn.putheader("Content-Length", "0")
        for value in authorizations:
            conn.putheader("Authorization", value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER {TOKEN}", f"Bearer  {TOKEN} "],
    ids=["as-written", "lower-case-scheme", "upper-case-scheme", "extra-spaces"],
)
def test_the_token_is_accepted_in_the_variants_rfc_6750_allows(
    serve_api: Callable[..., Api], authorization: str
) -> None:
    api = serve_api(token=TOKEN)
    assert _post(api, "/v1/reload", authorization)[0] == 200
    assert api.backend.calls == ["reload"]


@pytest.mark.parametrize(
    ("path", "authorization"),
    [
        ("/v1/reload", f"Basic {TOKEN}"),
        ("/v1/reload", TOKEN),
        ("/v1/reload", f"Bearer {TOKEN}x"),
        ("/v1/reload", f"Bearer {TOKEN[:-1]}"),
        (f"/v1/reload?token={TOKEN}", ""),
        (f"/v1/reload?access_token={TOKEN}", ""),
    ],
    ids=["basic-scheme", "no-scheme", "longer", "shorter", "query-token", "query-access-token"],
)
def test_anything_but_the_bearer_token_in_its_header_is_a_401(
    serve_api: Callable[..., Api], path: str, authorization: str
) -> None:
    api = serve_api(token=TOKEN)
    status, _ = _post(api, path, *([authorization] if authorization else []))
    assert status == 401
    assert api.backend.calls == []


@pytest.mark.parametrize(
    "authorizations",
    [(f"Bearer {TOKEN}", "Bearer wrong"), ("Bearer wrong", f"Bearer {TOKEN}")],
    ids=["valid-first", "valid-last"],
)
def test_two_authorization_headers_are_a_400_whatever_their_order(
    serve_api: Callable[..., Api], authorizations: tuple[str, str]
) -> None:
    # The token check read the first header and the Host/Origin guard the last: a proxy in
    # front that reads another one than we do would authorize what we refuse, or the reverse.
    api = serve_api(token=TOKEN)
    status, body = _post(api, "/v1/reload", *authorizations)
    assert (status, "more than one Authorization header" in body) == (400, True), body
    assert api.backend.calls == []
    status, _ = _post(api, "/v1/reload", *authorizations, host="evil.example")
    assert status == 400
