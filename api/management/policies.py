"""Management API: ODRL policies (`/management/v1/policies`) and their dry-run evaluation.

Policies are stored in the canonical compact 2025-1 form (dsp.md §11); an invalid one is 422
problem+json whose `pointer` and `errors` name each problem's path in the request body. A
policy used by an offer cannot be deleted (409). `POST /{id}/evaluate` evaluates the policy for
a hypothetical caller and returns the Decision record (allowed, decided_by, reasons, trace)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from api.body import read_json
from api.catalog.service import CatalogServiceDep
from api.idempotency import IdempotencyKeyDep, created_once, idempotent
from api.management.models import (
    EvaluateIn,
    ListParamsDep,
    PolicyIn,
    PolicyOut,
    PolicyPage,
    created,
    parse_body,
    resolve_id,
    wire,
)
from api.security import ApiKeyDep
from connector.services.catalog import normalise_policy
from connector.stores.catalog import POLICY_FIELDS
from connector.stores.idempotency import Claimed

router = APIRouter(prefix="/policies", tags=["management: policies"])


@router.post("", status_code=201, response_model=PolicyOut, summary="Create a policy")
async def create_policy(
    request: Request,
    service: CatalogServiceDep,
    principal: ApiKeyDep,
    idempotency_key: IdempotencyKeyDep,
) -> Response:
    body = parse_body(PolicyIn, await read_json(request))
    policy_id = resolve_id(None, body.id)

    async def run(claimed: Claimed | None) -> JSONResponse:
        record = await created_once(
            claimed,
            lambda: service.policies.create(policy_id, normalise_policy(policy_id, body.policy)),
            lambda: service.policies.get(policy_id),
        )
        return created(PolicyOut.of(record))

    return await idempotent(request, principal, idempotency_key, wire(body), run)


@router.get("", response_model=PolicyPage, summary="List policies (filter, sort, cursor)")
async def list_policies(service: CatalogServiceDep, params: ListParamsDep) -> PolicyPage:
    page = await service.policies.list(params.query(POLICY_FIELDS))
    return PolicyPage(
        items=[PolicyOut.of(p) for p in page.items], total=page.total, next_cursor=page.next_cursor
    )


@router.get("/{policy_id}", response_model=PolicyOut, summary="Get a policy")
async def get_policy(policy_id: str, service: CatalogServiceDep) -> PolicyOut:
    return PolicyOut.of(await service.policies.get(policy_id))


@router.put("/{policy_id}", response_model=PolicyOut, summary="Replace a policy")
async def replace_policy(policy_id: str, request: Request, service: CatalogServiceDep) -> PolicyOut:
    body = parse_body(PolicyIn, await read_json(request))
    policy_id = resolve_id(policy_id, body.id)
    record = await service.policies.replace(policy_id, normalise_policy(policy_id, body.policy))
    return PolicyOut.of(record)


@router.delete("/{policy_id}", status_code=204, summary="Delete a policy")
async def delete_policy(policy_id: str, service: CatalogServiceDep) -> Response:
    await service.policies.delete(policy_id)
    return Response(status_code=204)


@router.post("/{policy_id}/evaluate", summary="Dry-run a policy for a hypothetical caller")
async def evaluate_policy(
    policy_id: str, request: Request, service: CatalogServiceDep
) -> dict[str, Any]:
    body = parse_body(EvaluateIn, await read_json(request))
    decision = await service.evaluate_policy(policy_id, body.facts(), body.scope, body.date_time)
    return decision.model_dump(mode="json")
