"""`/docs`, the interactive API documentation (Swagger UI), served without any CDN.

FastAPI's own `/docs` page loads Swagger UI's script and stylesheet from a CDN, and its
`/redoc` page loads ReDoc and Google Fonts: in an air-gapped network both stay blank. Here
the page references only files of this server, taken from the `swagger-ui-bundle-v2`
package (Swagger UI 5, which renders FastAPI's OpenAPI 3.1), and Swagger UI's online
validator (which would send the document to validator.swagger.io) is switched off.
`/redoc` sends browsers to `/docs`.

Only the three files the page needs are served, by name: nothing else of the package's
folder (examples, source maps) is reachable.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from swagger_ui_bundle import swagger_ui_path

ASSETS = Path(str(swagger_ui_path))
PREFIX = "/docs/assets"
# The files served under PREFIX (same names as in the package), with their media types.
FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
PARAMETERS = {
    "validatorUrl": None,  # the default posts the document to validator.swagger.io
    "persistAuthorization": False,  # never keep the API token in the browser's storage
}


def add_docs(app: FastAPI) -> None:
    """Serve `/docs` and its assets from this process; `/redoc` redirects to `/docs`.

    `app` must have been created with `docs_url=None, redoc_url=None`.
    """

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - API documentation",
            swagger_js_url=f"{root}{PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{root}{PREFIX}/favicon-32x32.png",
            oauth2_redirect_url=None,  # the API uses a bearer token, not OAuth2
            swagger_ui_parameters=PARAMETERS,
        )

    @app.get(PREFIX + "/{name}", include_in_schema=False)
    def asset(name: str) -> FileResponse:
        media_type = FILES.get(name)
        if media_type is None:
            raise HTTPException(status_code=404, detail="no such documentation asset")
        return FileResponse(ASSETS / name, media_type=media_type)

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> RedirectResponse:
        return RedirectResponse("docs", status_code=308)
