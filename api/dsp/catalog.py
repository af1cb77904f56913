"""DSP Catalog Protocol, provider side (dsp.md §5 "Catalog - Provider", §7), 2025-1 and 0.8.

`POST <base>/catalog/request` (CatalogRequestMessage -> Catalog) and
`GET <base>/catalog/datasets/{id}` (-> Dataset), `<base>` = `/dsp/2025-1` or `/dsp/0.8`.
The caller must present a valid token (401 CatalogError otherwise); a dataset the caller may not
see is 404. Pages: `?limit=` (1..200, default 50) and the opaque `?continuationToken=` from the
`Link` header (`rel="next"` / `rel="previous"`, Web Linking as the binding requires)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from api.body import read_json
from api.catalog_service import CatalogServiceDep
from api.security import CallerDep
from connector.catalog import DEFAULT_PAGE_SIZE, CatalogPage
from connector.core.dsp import CatalogRequestMessage
from connector.core.dsp.version import DspVersion
from connector.core.jsonld import decode
from connector.stores.catalog import MAX_PAGE_SIZE

router = APIRouter(tags=["dsp: catalog"])

LimitQuery = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="page size")]
TokenQuery = Annotated[str | None, Query(alias="continuationToken", max_length=2048)]


def link_header(request: Request, page: CatalogPage, limit: int) -> str | None:
    links = []
    for token, rel in ((page.next_token, "next"), (page.previous_token, "previous")):
        if token is not None:
            url = request.url.include_query_params(limit=limit, continuationToken=token)
            links.append(f'<{url}>; rel="{rel}"')
    return ", ".join(links) or None


def _register(version: DspVersion) -> None:
    base = version.path_segment

    @router.post(f"{base}/catalog/request", summary=f"Catalog request (DSP {version.value})")
    async def catalog_request(
        request: Request,
        caller: CallerDep,
        service: CatalogServiceDep,
        limit: LimitQuery = DEFAULT_PAGE_SIZE,
        token: TokenQuery = None,
    ) -> Response:
        message = decode(await read_json(request), CatalogRequestMessage, version)
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
