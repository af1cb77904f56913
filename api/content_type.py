"""415 for a request body that is not JSON on the control plane's JSON routes (issue 16,
finding 7; RFC 9110 §15.5.16).

Every DSP route and every management route reads JSON: a body must come as `application/json`
or `application/ld+json` (parameters such as `charset` allowed). Anything else, a body without a
`Content-Type` included, is answered 415 in the surface's error shape before the route runs, so
a `text/plain` or form post (which a browser sends cross-site without a CORS preflight) is never
parsed as JSON. Only requests that carry a body and that a route would serve are judged: a wrong
path or method still gets its 404 or 405. The codec endpoint for the Temporal UI
(`/management/codec`, `api.codec`) answers with its own CORS headers and is left to itself.
"""

from __future__ import annotations

from typing import Final

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from connector.core.errors import UnsupportedMediaTypeError
from connector.http.errors import error_response

__all__ = ["JSON_MEDIA_TYPES", "JsonBodyMiddleware", "is_json"]

JSON_MEDIA_TYPES: Final = frozenset({"application/json", "application/ld+json"})
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
_JSON_ROUTES: Final = ("/dsp/", "/management/")
_LEFT_ALONE: Final = ("/management/codec/",)


def is_json(content_type: str | None) -> bool:
    """Whether a `Content-Type` value names one of the JSON media types (any parameters)."""
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() in JSON_MEDIA_TYPES


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in headers


class JsonBodyMiddleware:
    """Pure ASGI: the common case (a JSON body, or none) costs one header lookup."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in _BODY_METHODS
            and scope["path"].startswith(_JSON_ROUTES)
            and not scope["path"].startswith(_LEFT_ALONE)
        ):
            headers = Headers(scope=scope)
            content_type = headers.get("content-type")
            if _has_body(headers) and not is_json(content_type) and _served(scope):
                shown = (content_type or "none").split(";", 1)[0].strip()[:100]
                error = UnsupportedMediaTypeError(
                    f"request body of type {shown!r}; send application/json or application/ld+json"
                )
                await error_response(Request(scope), error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _served(scope: Scope) -> bool:
    """Whether a route serves this path and method (else the router answers 404 or 405)."""
    routes = getattr(getattr(scope.get("app"), "router", None), "routes", ())
    return any(route.matches(scope)[0] is Match.FULL for route in routes)
