"""Operators' view of negotiations and agreements: start (or reuse), list, explain, decide."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.idempotency import IdempotencyKeyDep, idempotent
from api.negotiation.service import NegotiationService
from api.process_lists import (
    AwaitingParam,
    CounterPartyIdParam,
    LimitParam,
    RoleParam,
    page_answer,
    process_query,
)
from api.process_starts import STARTED_RESPONSES, started_answer
from api.security import ApiKeyDep
from api.state import app_state
from connector.core.errors import BadRequestError, NotFoundError
from connector.core.negotiation.decide import Decision
from connector.core.negotiation.record import NegotiationRecord
from connector.runtime.resources import Resources
from connector.stores import negotiations
from connector.stores.idempotency import Claimed
from workflows.contracts import OperatorDecision

# Postgres OFFSET is a bigint: anything larger fails in the driver (was a 500).
MAX_OFFSET = 2**63 - 1

router = APIRouter(prefix="/management/v1", tags=["negotiations"])


class NegotiationRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    counter_party_address: str = Field(
        alias="counterPartyAddress",
        description="The provider's DSP base (…/dsp/2025-1) or its root (version discovered).",
    )
    counter_party_id: str = Field(alias="counterPartyId", description="The provider's DID")
    offer: dict[str, Any] = Field(description="The catalog Offer (with @id, target, rules)")
    reuse: bool = Field(
        default=False,
        description="Return a valid agreement or join a running negotiation for the same "
        "counterparty and offer instead of starting another.",
    )


class DecisionRequest(BaseModel):
    """A person's decision on a held negotiation (decision 0012). Which decisions a negotiation
    takes now is in its `awaiting.decisions`; `terminate` is always possible before the end."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal[
        "agree", "offer", "finalize", "accept", "request", "counter", "verify", "terminate"
    ] = Field(
        description="provider: agree (REQUESTED, ACCEPTED), offer (REQUESTED: a counter-offer "
        "with `offer`), finalize (VERIFIED); consumer: accept (OFFERED), request or counter "
        "(OFFERED: a counter-request with `offer`), verify (AGREED); either: terminate"
    )
    offer: dict[str, Any] | None = Field(
        default=None,
        description="offer / request / counter: the ODRL policy to send (its @id, @type, "
        "target and assigner are filled in when absent)",
    )
    reason: str | None = Field(default=None, description="Why (kept in our timeline only)")


ServiceDep = Annotated[NegotiationService, Depends(app_state("negotiations"))]
ResourcesDep = Annotated[Resources, Depends(app_state("resources"))]


def view(record: NegotiationRecord, *, timeline: bool = False) -> dict[str, Any]:
    n = record.negotiation
    out: dict[str, Any] = {
        "id": record.own_pid,
        "role": n.role.value,
        "state": n.state.value,
        "consumerPid": n.consumer_pid,
        "providerPid": n.provider_pid,
        "counterPartyId": n.counterparty_id,
        "counterPartyAddress": n.counterparty_address,
        "dspVersion": record.dsp_version,
        "offerId": record.offer_id,
        "assetId": record.asset_id,
        "agreementId": (n.agreement or {}).get("@id"),
        "awaitingDecision": record.awaiting_decision,
        "awaiting": _awaiting(record),
        "version": n.version,
        "createdAt": n.created_at.isoformat(),
        "updatedAt": n.updated_at.isoformat(),
        "deadlineAt": record.deadline_at.isoformat() if record.deadline_at else None,
    }
    if n.termination_code or n.termination_reason:
        out["termination"] = {"code": n.termination_code, "reason": list(n.termination_reason)}
    if timeline:
        out["offer"] = n.offer
        out["agreement"] = n.agreement
        entries = [e.model_dump(mode="json") for e in n.timeline]
        # Operator decisions (decision 0012), in time order among the messages.
        entries += [
            {"direction": "operator", "kind": "decision", **d.model_dump(mode="json")}
            for d in record.decisions
        ]
        out["timeline"] = sorted(entries, key=lambda e: datetime.fromisoformat(e["at"]))
    return out


def _awaiting(record: NegotiationRecord) -> dict[str, Any] | None:
    held = record.awaiting
    if held is None:
        return None
    return {
        "kind": held.kind.value,
        "since": held.since.isoformat(),
        "deadline": held.deadline.isoformat(),
        "decisions": [d.value for d in held.decisions],
        "why": list(held.why),
    }


@router.post(
    "/negotiations",
    status_code=201,
    summary="Start (or reuse) a negotiation",
    responses=STARTED_RESPONSES,
)
async def start_negotiation(
    body: NegotiationRequest,
    principal: ApiKeyDep,
    idempotency_key: IdempotencyKeyDep,
    service: ServiceDep,
    request: Request,
) -> Response:
    offer_id = body.offer.get("@id")
    if not isinstance(offer_id, str):
        raise BadRequestError("offer needs an @id", pointer="/offer/@id")

    async def run(claimed: Claimed | None) -> JSONResponse:
        return await _start_negotiation(body, offer_id, claimed, service)

    return await idempotent(
        request, principal, idempotency_key, body.model_dump(mode="json", by_alias=True), run
    )


async def _start_negotiation(
    body: NegotiationRequest, offer_id: str, claimed: Claimed | None, service: NegotiationService
) -> JSONResponse:
    if body.reuse:
        existing = await service.reusable(body.counter_party_id, offer_id)
        if existing is not None:
            return JSONResponse({**view(existing), "reused": True}, status_code=200)
    start = service.request_offer(
        counterparty_address=body.counter_party_address,
        counterparty_id=body.counter_party_id,
        offer=body.offer,
        offer_id=offer_id,
        reuse=body.reuse,
        # A retry of this key (also after a crash) starts, and so joins, the same workflow.
        seed=claimed.seed if claimed is not None else None,
    )
    return await started_answer(start, view)


@router.get("/negotiations", summary="Negotiations, newest first, filtered, with totals")
async def list_negotiations(
    _: ApiKeyDep,
    resources: ResourcesDep,
    state: str | None = None,
    role: RoleParam = None,
    counter_party_id: CounterPartyIdParam = None,
    asset_id: Annotated[str | None, Query(alias="assetId")] = None,
    awaiting: Annotated[
        AwaitingParam,
        Query(description="`operator`: only negotiations that wait for a person's decision"),
    ] = None,
    cursor: str | None = None,
    limit: LimitParam = 50,
) -> dict[str, Any]:
    query = process_query(
        state=state,
        role=role,
        counter_party_id=counter_party_id,
        awaiting=awaiting,
        cursor=cursor,
        limit=limit,
    )
    return await page_answer(negotiations.list_page(resources.pool, query, asset_id=asset_id), view)


@router.get("/negotiations/{negotiation_id}", summary="One negotiation with its timeline")
async def get_negotiation(
    negotiation_id: str, _: ApiKeyDep, resources: ResourcesDep, service: ServiceDep
) -> dict[str, Any]:
    record = await negotiations.get(resources.pool, negotiation_id)
    if record is None:
        raise NotFoundError(f"negotiation {negotiation_id} is unknown")
    out = view(record, timeline=True)
    if not record.negotiation.is_terminal:
        # What it is doing right now: a retrying send shows its last error and next attempt.
        out["workflow"] = await service.pending(record.negotiation.role, negotiation_id)
        pending = out["workflow"].get("pendingActivities") or []
        errors = [p["lastError"] for p in pending if p.get("lastError")]
        out["lastError"] = errors[-1] if errors else None
        retries = [p["nextRetryAt"] for p in pending if p.get("nextRetryAt")]
        out["nextRetryAt"] = retries[-1] if retries else None
    return out


@router.post(
    "/negotiations/{negotiation_id}/decision",
    summary="Decide on a held negotiation: agree, offer, finalize, accept, counter, verify, "
    "terminate",
    responses={
        400: {"description": "The decision lacks what it needs (an offer)"},
        409: {"description": "The negotiation does not wait for that decision (or has ended)"},
    },
)
async def decide(
    negotiation_id: str,
    body: DecisionRequest,
    principal: ApiKeyDep,
    service: ServiceDep,
) -> dict[str, Any]:
    decided = await service.decide(
        negotiation_id,
        OperatorDecision(
            decision=Decision(body.decision),
            offer=body.offer,
            reason=body.reason,
            operator=principal,
        ),
    )
    return view(decided)


@router.get("/agreements", summary="Agreements this connector is party to")
async def list_agreements(
    _: ApiKeyDep,
    resources: ResourcesDep,
    role: Literal["provider", "consumer"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, Any]:
    items, total = await negotiations.list_agreements(
        resources.pool, role=role, limit=limit, offset=offset
    )
    return {"items": items, "total": total}


@router.get("/agreements/{agreement_id}", summary="One agreement")
async def get_agreement(agreement_id: str, _: ApiKeyDep, resources: ResourcesDep) -> dict[str, Any]:
    found = await negotiations.get_agreement(resources.pool, agreement_id)
    if found is None:
        raise NotFoundError(f"agreement {agreement_id} is unknown")
    return found
