"""DSP Catalog Protocol, provider side (dsp.md §5 "Catalog - Provider", §7), 2025-1 and 0.8.

`POST <base>/catalog/request` (CatalogRequestMessage -> Catalog) and
`GET <base>/catalog/datasets/{id}` (-> Dataset), `<base>` = `/dsp/2025-1` or `/dsp/0.8`.
The caller must present a valid token (401 CatalogError otherwise); a dataset the caller may not
see is 404. Pages: `?limit=` (1..200, default 50) and the opaque `?continuationToken=` from the
`Link` header (`rel="next"` / `rel="previous"`, Web Linking as the binding requires)."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import URL

from api.body import read_json
from api.catalog.service import CatalogServiceDep, catalog_service
from api.security import CallerDep, require_caller
from connector.core.dsp.version import DspVersion
from connector.core.errors import BadRequestError
from connector.services.catalog import DEFAULT_PAGE_SIZE, CatalogPage, decode_catalog_request
from connector.stores.catalog import MAX_PAGE_SIZE

router = APIRouter(tags=["dsp: catalog"])

MAX_TOKEN_LENGTH = 2048
# Documented here, parsed by `page_params` (the hot path skips FastAPI's parameter machinery).
PAGE_PARAMETERS: dict[str, Any] = {
    "parameters": [
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": 50},
            "description": "page size",
        },
        {
            "name": "continuationToken",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "maxLength": MAX_TOKEN_LENGTH},
            "description": "opaque; taken from a Link header",
        },
    ]
}


CATALOG_REQUEST_PARAMETERS: dict[str, Any] = {
    "parameters": [
        {
            "name": "authorization",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "the caller's participant token (`Bearer ...`)",
        },
        *PAGE_PARAMETERS["parameters"],
    ]
}


def page_params(request: Request) -> tuple[int, str | None]:
    """(`limit`, `continuationToken`) from the query string; 400 CatalogError when invalid."""
    query = request.query_params
    raw_limit = query.get("limit")
    limit = DEFAULT_PAGE_SIZE
    if raw_limit is not None:
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE_SIZE:
            raise BadRequestError(f"limit must be an integer in 1..{MAX_PAGE_SIZE}")
        limit = int(raw_limit)
    token = query.get("continuationToken")
    if token is not None and len(token) > MAX_TOKEN_LENGTH:
        raise BadRequestError("continuationToken too long")
    return limit, token


def link_header(request: Request, page: CatalogPage, limit: int) -> str | None:
    if page.next_token is None and page.previous_token is None:
        return None
    scope = request.scope
    server = scope.get("server")
    return _links(
        scope.get("scheme", "http"),
        request.headers.get("host"),
        tuple(server) if server else None,
        scope.get("root_path", ""),
        scope["path"],
        scope.get("query_string", b""),
        limit,
        page.next_token,
        page.previous_token,
    )


@functools.lru_cache(maxsize=1024)
def _links(
    scheme: str,
    host: str | None,
    server: tuple[Any, ...] | None,
    root_path: str,
    path: str,
    query: bytes,
    limit: int,
    next_token: str | None,
    previous_token: str | None,
) -> str | None:
    """The Link header for a page; the same request asks for the same links again and again."""
    headers = [(b"host", host.encode("latin-1"))] if host is not None else []
    scope = {
        "type": "http",
        "scheme": scheme,
        "server": server,
        "root_path": root_path,
        "path": path,
        "query_string": query,
        "headers": headers,
    }
    url = URL(scope=scope)
    links = []
    for token, rel in ((next_token, "next"), (previous_token, "previous")):
        if token is not None:
            target = url.include_query_params(limit=limit, continuationToken=token)
            links.append(f'<{target}>; rel="{rel}"')
    return ", ".join(links) or None


def _register(version: DspVersion) -> None:
    base = version.path_segment

    @router.post(
        f"{base}/catalog/request",
        summary=f"Catalog request (DSP {version.value})",
        openapi_extra=CATALOG_REQUEST_PARAMETERS,
    )
    async def catalog_request(request: Request) -> Response:
        # The caller is resolved here rather than as a dependency: FastAPI's dependency
        # machinery was a seventh of this route's CPU (the header is documented below).
        caller = await require_caller(request, request.headers.get("authorization"))
        limit, token = page_params(request)
        message = decode_catalog_request(await read_json(request), version)
        service = catalog_service(request)
        page = await service.catalog_page(caller, version, message, token=token, limit=limit)
        link = link_header(request, page, limit)
        headers = {"Link": link} if link else None
        return Response(page.body, media_type="application/json", headers=headers)

    @router.get(f"{base}/catalog/datasets/{{dataset_id:path}}", summary="Dataset request")
    async def dataset_request(
        dataset_id: str, caller: CallerDep, service: CatalogServiceDep
    ) -> JSONResponse:
        return JSONResponse(await service.dataset(caller, version, dataset_id))

    catalog_request.__name__ = f"catalog_request_{version.name.lower()}"
    dataset_request.__name__ = f"dataset_request_{version.name.lower()}"


for _version in DspVersion:
    _register(_version)
