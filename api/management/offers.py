"""Management API: offers (`/management/v1/offers`), EDC's contract definitions.

An offer publishes the assets its `assetSelector` picks (a list of asset ids, or criteria
`{operandLeft: id | properties.<key>, operator: = | in | like, operandRight}`, ANDed) to callers
admitted by `accessPolicyId` (scope catalog), offering `contractPolicyId` as the DSP Offer.
Unknown policies or assets are 422 with the pointer of the offending field."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from api.body import read_json
from api.catalog.service import CatalogServiceDep
from api.idempotency import IdempotencyKeyDep, created_once, idempotent
from api.management.models import (
    ListParamsDep,
    OfferIn,
    OfferOut,
    OfferPage,
    created,
    parse_body,
    resolve_id,
    wire,
)
from api.security import ApiKeyDep
from connector.stores.catalog import OFFER_FIELDS, parse_selector
from connector.stores.idempotency import Claimed

router = APIRouter(prefix="/offers", tags=["management: offers"])


@router.post("", status_code=201, response_model=OfferOut, summary="Create an offer")
async def create_offer(
    request: Request,
    service: CatalogServiceDep,
    principal: ApiKeyDep,
    idempotency_key: IdempotencyKeyDep,
) -> Response:
    body = parse_body(OfferIn, await read_json(request))
    offer_id = resolve_id(None, body.id)
    selector = parse_selector(body.asset_selector)

    async def run(claimed: Claimed | None) -> JSONResponse:
        record = await created_once(
            claimed,
            lambda: service.offers.create(
                offer_id,
                selector,
                body.access_policy_id,
                body.contract_policy_id,
                body.provider_decision,
            ),
            lambda: service.offers.get(offer_id),
        )
        return created(OfferOut.of(record))

    return await idempotent(request, principal, idempotency_key, wire(body), run)


@router.get("", response_model=OfferPage, summary="List offers (filter, sort, cursor)")
async def list_offers(service: CatalogServiceDep, params: ListParamsDep) -> OfferPage:
    page = await service.offers.list(params.query(OFFER_FIELDS))
    return OfferPage(
        items=[OfferOut.of(o) for o in page.items], total=page.total, next_cursor=page.next_cursor
    )


@router.get("/{offer_id}", response_model=OfferOut, summary="Get an offer")
async def get_offer(offer_id: str, service: CatalogServiceDep) -> OfferOut:
    return OfferOut.of(await service.offers.get(offer_id))


@router.put("/{offer_id}", response_model=OfferOut, summary="Replace an offer")
async def replace_offer(offer_id: str, request: Request, service: CatalogServiceDep) -> OfferOut:
    body = parse_body(OfferIn, await read_json(request))
    record = await service.offers.replace(
        resolve_id(offer_id, body.id),
        parse_selector(body.asset_selector),
        body.access_policy_id,
        body.contract_policy_id,
        body.provider_decision,
    )
    return OfferOut.of(record)


@router.delete("/{offer_id}", status_code=204, summary="Delete an offer")
async def delete_offer(offer_id: str, service: CatalogServiceDep) -> Response:
    await service.offers.delete(offer_id)
    return Response(status_code=204)
