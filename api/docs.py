"""The API docs pages, served entirely by the connector, and the OpenAPI security schemes
(issue 16, finding 7).

- `/docs` (Swagger UI) and `/redoc` (ReDoc) load their scripts, styles and icon from
  `/docs/assets/` (the files the `fastapi-offline` wheel ships, MIT), never from a CDN: the pages
  work on an edge node without Internet access, and no third party serves code into a page
  that holds an operator's key. ReDoc without Google Fonts; Swagger UI without its online
  validator badge.
- The OpenAPI document declares how each operation authenticates, so the docs page's
  "Authorize" button works: `ApiKey` (header `X-Api-Key`) on the management API, plus
  `OidcBearer` (an access token of `management.oidc.issuer`) when OIDC is configured; `DspToken`
  (the participant's self-issued did:web JWT, `Authorization: Bearer`) on the DSP routes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from connector.settings import Settings

__all__ = ["ASSETS_PATH", "DOCS_PATHS", "install_docs", "security_schemes"]

ASSETS_PATH: Final = "/docs/assets"
SWAGGER_PATH: Final = "/docs"
OAUTH2_REDIRECT_PATH: Final = "/docs/oauth2-redirect"
REDOC_PATH: Final = "/redoc"
#: The pages (the management listener serves them too, `api.listeners`).
DOCS_PATHS: Final = frozenset({SWAGGER_PATH, OAUTH2_REDIRECT_PATH, REDOC_PATH})
_STATIC: Final = Path(fastapi_offline.__file__).parent / "static"
_BODY_OPERATIONS: Final = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})


def security_schemes(settings: Settings) -> dict[str, dict[str, Any]]:
    """`components.securitySchemes` of the control plane's OpenAPI document."""
    schemes: dict[str, dict[str, Any]] = {
        "ApiKey": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Api-Key",
            "description": "A management API key (`management.api_keys`, or the edge key in "
            "`<data dir>/management-api-key`).",
        },
        "DspToken": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "The calling participant's self-issued token: ES256 JWT, `iss` = "
            "`sub` = its did:web DID, `aud` = ours (docs/security.md §2).",
        },
    }
    oidc = settings.management.oidc
    if oidc is not None:
        schemes["OidcBearer"] = {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": f"An access token of the OIDC issuer {oidc.issuer} for the "
            "management API (`management.oidc`).",
        }
    return schemes


def _with_security(document: dict[str, Any], settings: Settings) -> dict[str, Any]:
    schemes = security_schemes(settings)
    document.setdefault("components", {})["securitySchemes"] = schemes
    management: list[dict[str, list[str]]] = [{"ApiKey": []}]
    if "OidcBearer" in schemes:
        management.append({"OidcBearer": []})  # either way in (alternatives)
    for path, item in document.get("paths", {}).items():
        requirement: list[dict[str, list[str]]]
        if path.startswith("/management/"):
            requirement = management
        elif path.startswith("/dsp/"):
            requirement = [{"DspToken": []}]
        else:
            continue
        for method, operation in item.items():
            if method in _BODY_OPERATIONS and isinstance(operation, dict):
                operation["security"] = requirement
    return document


def install_docs(app: FastAPI, settings: Settings) -> None:
    """Swagger UI, ReDoc and their assets on `app` (created with `docs_url=None,
    redoc_url=None`), and the security schemes in its OpenAPI document."""
    app.mount(ASSETS_PATH, StaticFiles(directory=_STATIC), name="docs-assets")
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _with_security(generate(), settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    def asset(request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '')}{ASSETS_PATH}/{name}"

    def openapi_url(request: Request) -> str:
        return f"{request.scope.get('root_path', '')}{app.openapi_url}"

    @app.get(SWAGGER_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url(request),
            title=f"{app.title} — API",
            swagger_js_url=asset(request, "swagger-ui-bundle.js"),
            swagger_css_url=asset(request, "swagger-ui.css"),
            swagger_favicon_url=asset(request, "favicon.png"),
            oauth2_redirect_url=OAUTH2_REDIRECT_PATH,
            # No validator badge (an outside call); the key is not kept in localStorage.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False},
        )

    @app.get(OAUTH2_REDIRECT_PATH, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_PATH, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url(request),
            title=f"{app.title} — API",
            redoc_js_url=asset(request, "redoc.standalone.js"),
            redoc_favicon_url=asset(request, "favicon.png"),
            with_google_fonts=False,
        )
