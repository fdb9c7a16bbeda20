"""`/docs` works air-gapped: the page and its stylesheet reference this server only, the
assets come from the installed Swagger UI package, and nothing else of it is served."""

from __future__ import annotations

import re
from collections.abc import Callable

from autoscaler.api.docs import ASSETS, FILES, PREFIX
from tests.unit.api.conftest import Api

# src="...", href="...", url: '...', url(...): every way the page can load something.
REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\s*[:(]\s*["']?([^"')\s]+)""")


def _references(text: str) -> list[str]:
    return [a or b for a, b in REFERENCE.findall(text)]


def test_the_docs_page_references_no_external_url(serve_api: Callable[..., Api]) -> None:
    api = serve_api()
    page = api.request("GET", "/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    references = _references(page.text)
    assert f"{PREFIX}/swagger-ui-bundle.js" in references
    assert f"{PREFIX}/swagger-ui.css" in references
    assert "/openapi.json" in references
    for url in references:
        assert url.startswith("/") and not url.startswith("//"), url
    # No scheme anywhere in the page: nothing (validator, fonts, CDN) is fetched elsewhere.
    assert not re.search(r"https?://", page.text), page.text
    assert '"validatorUrl": null' in page.text


def test_the_assets_are_served_from_the_package(serve_api: Callable[..., Api]) -> None:
    api = serve_api()
    for name, media_type in FILES.items():
        response = api.request("GET", f"{PREFIX}/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == media_type
        assert response.content == (ASSETS / name).read_bytes()
    css = api.request("GET", f"{PREFIX}/swagger-ui.css").text
    external = [u for u in _references(css) if not u.startswith("data:")]
    assert external == []


def test_swagger_ui_renders_the_openapi_version_fastapi_writes(
    serve_api: Callable[..., Api],
) -> None:
    """FastAPI writes OpenAPI 3.1, which Swagger UI renders from version 5 on only."""
    api = serve_api()
    assert api.request("GET", "/openapi.json").json()["openapi"].startswith("3.1")
    version = re.fullmatch(r"swagger-ui-(\d+)\.(\d+)\.(\d+)", ASSETS.name)
    assert version is not None
    assert int(version.group(1)) >= 5


def test_only_the_pages_assets_are_served(serve_api: Callable[..., Api]) -> None:
    api = serve_api()
    for name in ["index.html", "swagger-initializer.js", "swagger-ui-bundle.js.map", "..%2F..%2Fx"]:
        assert api.request("GET", f"{PREFIX}/{name}").status_code == 404, name


def test_redoc_which_needs_a_cdn_sends_browsers_to_docs(serve_api: Callable[..., Api]) -> None:
    api = serve_api()
    response = api.request("GET", "/redoc", allow_redirects=False)
    assert response.status_code == 308
    followed = api.request("GET", "/redoc")
    assert followed.url.endswith("/docs")
    assert "swagger-ui" in followed.text
