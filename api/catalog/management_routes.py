"""Management API: catalog tools (`/management/v1/catalog`).

* `POST /catalog/explain` — for a dataset and a hypothetical caller, every covering offer's access
  (scope catalog) and contract (scope negotiation) Decision: "why can't partner X see dataset Y".
* `POST /catalog/request` — consumer side: fetch a counterparty's DSP catalog
  (`{counterPartyAddress, counterPartyId, filter?, limit?}`) through the SSRF-guarded client with
  our token for `counterPartyId`; answered as a 2025-1 Catalog (dsp.md §7)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.body import read_json
from api.catalog.service import CatalogServiceDep
from api.management.models import CatalogRequestIn, ExplainIn, parse_body
from connector.identity.runtime import Identity
from connector.services.catalog import request_catalog

router = APIRouter(prefix="/catalog", tags=["management: catalog"])


@router.post("/explain", summary="Explain a dataset's visibility for a hypothetical caller")
async def explain(request: Request, service: CatalogServiceDep) -> dict[str, Any]:
    body = parse_body(ExplainIn, await read_json(request))
    return await service.explain(body.dataset_id, body.facts(), body.date_time)


@router.post("/request", summary="Fetch a counterparty's catalog (consumer side)")
async def request_remote_catalog(request: Request) -> dict[str, Any]:
    body = parse_body(CatalogRequestIn, await read_json(request))
    identity: Identity = request.app.state.identity
    return await request_catalog(
        identity.http,
        lambda: identity.authorization(body.counter_party_id),
        body.counter_party_address,
        filter=body.filter,
        limit=body.limit,
    )
