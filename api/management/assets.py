"""Management API: assets (`/management/v1/assets`), the datasets of our DSP catalog (dsp.md §7).

An asset is `{id, properties, dataAddress: {type: http|file|s3, ...}, distributions}`; list
query language in `api.management.models`. Deleting an asset named by an id-list offer is 409.
The data address is checked with the data plane's own rules (`connector.data_address`) before
anything is stored: 422 with the pointer of the bad field."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from api.body import read_json
from api.catalog.service import CatalogServiceDep
from api.idempotency import IdempotencyKeyDep, created_once, idempotent
from api.management.models import (
    AssetIn,
    AssetOut,
    AssetPage,
    ListParamsDep,
    created,
    parse_body,
    resolve_id,
    wire,
)
from api.security import ApiKeyDep
from connector.data_address import check_source
from connector.settings import Settings
from connector.stores.catalog import ASSET_FIELDS
from connector.stores.idempotency import Claimed

router = APIRouter(prefix="/assets", tags=["management: assets"])


async def _asset_in(request: Request) -> AssetIn:
    return parse_body(AssetIn, await read_json(request))


def _check_data_address(request: Request, body: AssetIn) -> None:
    """422 (pointer below /dataAddress) for an address the data plane would refuse."""
    settings: Settings = request.app.state.settings
    check_source(
        body.data_address.model_dump(), settings.dataplane, settings.outbound, at="/dataAddress"
    )


@router.post("", status_code=201, response_model=AssetOut, summary="Create an asset")
async def create_asset(
    request: Request,
    service: CatalogServiceDep,
    principal: ApiKeyDep,
    idempotency_key: IdempotencyKeyDep,
) -> Response:
    body = await _asset_in(request)
    asset_id = resolve_id(None, body.id)
    _check_data_address(request, body)

    async def run(claimed: Claimed | None) -> JSONResponse:
        record = await created_once(
            claimed,
            lambda: service.assets.create(
                asset_id, body.properties, body.data_address.model_dump(), body.distributions
            ),
            lambda: service.assets.get(asset_id),
        )
        return created(AssetOut.of(record))

    return await idempotent(request, principal, idempotency_key, wire(body), run)


@router.get("", response_model=AssetPage, summary="List assets (filter, sort, cursor)")
async def list_assets(service: CatalogServiceDep, params: ListParamsDep) -> AssetPage:
    page = await service.assets.list(params.query(ASSET_FIELDS))
    return AssetPage(
        items=[AssetOut.of(a) for a in page.items], total=page.total, next_cursor=page.next_cursor
    )


@router.get("/{asset_id}", response_model=AssetOut, summary="Get an asset")
async def get_asset(asset_id: str, service: CatalogServiceDep) -> AssetOut:
    return AssetOut.of(await service.assets.get(asset_id))


@router.put("/{asset_id}", response_model=AssetOut, summary="Replace an asset")
async def replace_asset(asset_id: str, request: Request, service: CatalogServiceDep) -> AssetOut:
    body = await _asset_in(request)
    asset_id = resolve_id(asset_id, body.id)
    _check_data_address(request, body)
    record = await service.assets.replace(
        asset_id,
        body.properties,
        body.data_address.model_dump(),
        body.distributions,
    )
    return AssetOut.of(record)


@router.delete("/{asset_id}", status_code=204, summary="Delete an asset")
async def delete_asset(asset_id: str, service: CatalogServiceDep) -> Response:
    await service.assets.delete(asset_id)
    return Response(status_code=204)
