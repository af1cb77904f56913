"""Operators' view of negotiations and agreements: start (or reuse), list, explain, decide."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.idempotency import IdempotencyKeyDep, idempotent
from api.negotiation.gateway import NegotiationGateway
from api.negotiation.service import NegotiationService, derived_pid, new_pid
from api.process_gateway import StartedUnprojected
from api.security import ApiKeyDep
from api.state import app_state
from connector.core.dsp import DspVersion
from connector.core.errors import BadRequestError, NotFoundError, UnavailableError
from connector.core.negotiation.aggregate import new_negotiation
from connector.core.negotiation.decide import Decision
from connector.core.negotiation.record import NegotiationRecord
from connector.core.negotiation.states import Role
from connector.http.outbound import GuardedHttp
from connector.runtime.resources import Resources
from connector.stores import negotiations
from connector.stores.idempotency import Claimed
from workflows.contracts import NegotiationStart, OperatorDecision

# Postgres OFFSET is a bigint: anything larger fails in the driver (was a 500).
MAX_OFFSET = 2**63 - 1

# The creating POSTs' other success: the process was started, its record not yet readable.
STARTED_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Started, but the connector's database did not answer: the body is the "
        "record the process was started with (its id is final); read it again shortly."
    }
}

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


EdgeDep = Annotated[NegotiationService, Depends(app_state("negotiations"))]
GatewayDep = Annotated[NegotiationGateway, Depends(app_state("gateway"))]
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


async def _discover(http: GuardedHttp, address: str) -> tuple[str, DspVersion]:
    """(DSP base URL, version): as given, or picked from the peer's version document."""
    trimmed = address.rstrip("/")
    for version in (DspVersion.V2025_1, DspVersion.V0_8):
        if trimmed.endswith(version.path_segment):
            return trimmed, version
    try:
        resp = await http.request("GET", f"{trimmed}/.well-known/dspace-version")
        versions = resp.json().get("protocolVersions", []) if resp.status_code == 200 else []
    except (ValueError, OSError, TimeoutError) as exc:
        raise UnavailableError(f"cannot read the counterparty's DSP versions: {exc}") from None
    offered = {v.get("version"): v.get("path") for v in versions if isinstance(v, dict)}
    for version in (DspVersion.V2025_1, DspVersion.V0_8):
        path = offered.get(version.value)
        if isinstance(path, str):
            return trimmed + "/" + path.strip("/"), version
    raise BadRequestError("the counterparty serves neither DSP 2025-1 nor 0.8")


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
    edge: EdgeDep,
    gateway: GatewayDep,
    resources: ResourcesDep,
    request: Request,
) -> Response:
    offer_id = body.offer.get("@id")
    if not isinstance(offer_id, str):
        raise BadRequestError("offer needs an @id", pointer="/offer/@id")

    async def run(claimed: Claimed | None) -> JSONResponse:
        return await _start_negotiation(body, offer_id, claimed, edge, gateway, resources, request)

    return await idempotent(
        request, principal, idempotency_key, body.model_dump(mode="json", by_alias=True), run
    )


async def _start_negotiation(
    body: NegotiationRequest,
    offer_id: str,
    claimed: Claimed | None,
    edge: NegotiationService,
    gateway: NegotiationGateway,
    resources: Resources,
    request: Request,
) -> JSONResponse:
    if body.reuse:
        existing = await negotiations.find_reusable(resources.pool, body.counter_party_id, offer_id)
        if existing is not None:
            return JSONResponse({**view(existing), "reused": True}, status_code=200)
    http: GuardedHttp = request.app.state.identity.http
    base, version = await _discover(http, body.counter_party_address)
    await http.vet(base)
    if body.reuse:
        # Concurrent callers derive the same id and so join one workflow.
        round_ = await negotiations.count_terminated(
            resources.pool, body.counter_party_id, offer_id
        )
        consumer_pid = derived_pid("reuse", body.counter_party_id, offer_id, str(round_))
    elif claimed is not None:
        # A retry of this key (also after a crash) starts, and so joins, the same workflow.
        consumer_pid = derived_pid("idempotency", claimed.seed, "negotiation")
    else:
        consumer_pid = new_pid()
    now = datetime.now(UTC)
    offer = dict(body.offer)
    offer.setdefault("assigner", body.counter_party_id)
    record = NegotiationRecord(
        negotiation=new_negotiation(
            role=Role.CONSUMER,
            initiator=Role.CONSUMER,
            own_pid=consumer_pid,
            participant_id=edge.participant_id,
            counterparty_id=body.counter_party_id,
            counterparty_address=base,
            offer=offer,
            at=now,
        ),
        dsp_version=version.value,
        offer_id=offer_id,
        asset_id=offer.get("target") if isinstance(offer.get("target"), str) else None,
        deadline_at=edge.deadline(now),
    )
    start = NegotiationStart(
        record=record, callback_address=edge.callback_address(version), **edge.start_options()
    )
    try:
        started = await gateway.start(start)
    except StartedUnprojected as unprojected:
        # Started, but Postgres did not answer: never a 5xx after the side effect.
        return JSONResponse(view(unprojected.record), status_code=202)
    return JSONResponse(view(started), status_code=201)


@router.get("/negotiations", summary="Negotiations, newest first, filtered, with totals")
async def list_negotiations(
    _: ApiKeyDep,
    resources: ResourcesDep,
    state: str | None = None,
    role: Literal["provider", "consumer"] | None = None,
    counter_party_id: Annotated[str | None, Query(alias="counterPartyId")] = None,
    asset_id: Annotated[str | None, Query(alias="assetId")] = None,
    awaiting: Annotated[
        Literal["operator"] | None,
        Query(description="`operator`: only negotiations that wait for a person's decision"),
    ] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    try:
        page = await negotiations.list_page(
            resources.pool,
            state=state.upper() if state else None,
            role=role,
            counterparty_id=counter_party_id,
            asset_id=asset_id,
            awaiting_operator=True if awaiting == "operator" else None,
            cursor=cursor,
            limit=limit,
        )
    except ValueError as exc:
        raise BadRequestError(str(exc), pointer="/cursor") from None
    return {
        "items": [view(r) for r in page.items],
        "total": page.total,
        "nextCursor": page.next_cursor,
    }


@router.get("/negotiations/{negotiation_id}", summary="One negotiation with its timeline")
async def get_negotiation(
    negotiation_id: str, _: ApiKeyDep, resources: ResourcesDep, gateway: GatewayDep
) -> dict[str, Any]:
    record = await negotiations.get(resources.pool, negotiation_id)
    if record is None:
        raise NotFoundError(f"negotiation {negotiation_id} is unknown")
    out = view(record, timeline=True)
    if not record.negotiation.is_terminal:
        # What it is doing right now: a retrying send shows its last error and next attempt.
        out["workflow"] = await gateway.pending(record.negotiation.role, negotiation_id)
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
    resources: ResourcesDep,
    gateway: GatewayDep,
) -> dict[str, Any]:
    record = await negotiations.get(resources.pool, negotiation_id)
    if record is None:
        raise NotFoundError(f"negotiation {negotiation_id} is unknown")
    decided = await gateway.decide(
        record.negotiation.role,
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
