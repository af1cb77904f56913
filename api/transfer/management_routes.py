"""Operators' (and integrators') view of transfer processes: start, list, explain, suspend,
resume, terminate, complete, and the EDR (endpoint + token) of a pull.

A provider in `approve` mode (`transfer.provider_start`) holds each transfer request for a
person: `GET /management/v1/transfers?awaiting=operator` lists what waits (what for, since when,
until when), `POST /management/v1/transfers/{id}/start` or `/terminate` decides (decision 0013).

`POST /management/v1/transfers` takes an agreement, or an offer instead: then it reuses a
FINALIZED agreement for that counterparty and offer, or negotiates one first inside the same
durable workflow (get-or-negotiate, decision 0005).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.idempotency import IdempotencyKeyDep, idempotent
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
from api.transfer.service import TransferService, endpoint_property
from connector.core.errors import NotFoundError
from connector.core.transfer.aggregate import JsonObject
from connector.core.transfer.record import PENDING_AGREEMENT, TransferRecord
from connector.runtime.resources import Resources
from connector.stores import transfers
from connector.stores.idempotency import Claimed
from workflows.contracts import TransferCommand

router = APIRouter(prefix="/management/v1", tags=["transfers"])

_SECRET_PROPERTIES = frozenset({"authorization", "refreshToken", "refresh_token"})
COMMAND_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Done: the counterparty acknowledged the message the command sent"},
    202: {"description": "Accepted: the message is still on its way to the counterparty"},
    409: {
        "description": "Illegal now (state, nothing awaits a start, another command pending)",
        "content": {"application/problem+json": {}},
    },
}


class TransferRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    counter_party_address: str = Field(
        alias="counterPartyAddress",
        description="The provider's DSP base (…/dsp/2025-1) or its root (version discovered).",
    )
    counter_party_id: str = Field(alias="counterPartyId", description="The provider's DID")
    agreement_id: str | None = Field(default=None, alias="agreementId")
    offer: dict[str, Any] | None = Field(
        default=None, description="A catalog Offer instead of an agreement: get-or-negotiate."
    )
    format: str = Field(description="One of the dataset's distributions, e.g. HttpData-PULL")
    data_destination: dict[str, Any] | None = Field(
        default=None,
        alias="dataDestination",
        description="Push: a DSP DataAddress (endpointType, endpoint, endpointProperties).",
    )


class CommandRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = None


ServiceDep = Annotated[TransferService, Depends(app_state("transfers"))]
ResourcesDep = Annotated[Resources, Depends(app_state("resources"))]


def redacted(address: JsonObject | dict[str, Any] | None) -> dict[str, Any] | None:
    """A DataAddress without its credentials (tokens only via the explicit EDR call)."""
    if address is None:
        return None
    out = dict(address)
    props = out.get("endpointProperties")
    if isinstance(props, list):
        out["endpointProperties"] = [
            {**p, "value": "**********"}
            if isinstance(p, dict) and p.get("name") in _SECRET_PROPERTIES
            else p
            for p in props
        ]
    return out


def view(record: TransferRecord, *, timeline: bool = False) -> dict[str, Any]:
    t = record.transfer
    out: dict[str, Any] = {
        "id": record.own_pid,
        "role": t.role.value,
        "state": t.state.value,
        "consumerPid": t.consumer_pid,
        "providerPid": t.provider_pid,
        "agreementId": None if t.agreement_id == PENDING_AGREEMENT else t.agreement_id,
        "format": t.format,
        "flowType": "PUSH" if record.push else "PULL",
        "counterPartyId": t.counterparty_id,
        "counterPartyAddress": t.counterparty_address,
        "dspVersion": record.dsp_version,
        "assetId": record.asset_id,
        "negotiationId": record.negotiation_id,
        "version": t.version,
        "createdAt": t.created_at.isoformat(),
        "updatedAt": t.updated_at.isoformat(),
    }
    if t.code or t.reason:
        out["stateReason"] = {"code": t.code, "reason": list(t.reason)}
    awaiting = record.awaiting
    out["awaiting"] = (
        None
        if awaiting is None
        else {
            "kind": awaiting.kind,
            "since": awaiting.since.isoformat(),
            "deadline": awaiting.deadline.isoformat(),
            "commands": list(awaiting.commands),
        }
    )
    if timeline:
        out["dataAddress"] = redacted(t.data_address)
        out["timeline"] = [e.model_dump(mode="json") for e in t.timeline]
    return out


@router.post(
    "/transfers",
    status_code=201,
    summary="Start a transfer (or negotiate, then start)",
    responses=STARTED_RESPONSES,
)
async def start_transfer(
    body: TransferRequest,
    principal: ApiKeyDep,
    idempotency_key: IdempotencyKeyDep,
    service: ServiceDep,
    request: Request,
) -> Response:
    async def run(claimed: Claimed | None) -> JSONResponse:
        return await _start_transfer(body, claimed, service)

    return await idempotent(
        request, principal, idempotency_key, body.model_dump(mode="json", by_alias=True), run
    )


async def _start_transfer(
    body: TransferRequest, claimed: Claimed | None, service: TransferService
) -> JSONResponse:
    start = service.request_transfer(
        counterparty_address=body.counter_party_address,
        counterparty_id=body.counter_party_id,
        agreement_id=body.agreement_id,
        offer=body.offer,
        format=body.format,
        data_destination=body.data_destination,
        seed=claimed.seed if claimed is not None else None,
    )
    return await started_answer(start, view)


@router.get("/transfers", summary="Transfers, newest first, filtered, with totals")
async def list_transfers(
    _: ApiKeyDep,
    resources: ResourcesDep,
    state: str | None = None,
    role: RoleParam = None,
    awaiting: Annotated[
        AwaitingParam,
        Query(description="`operator`: only the transfers held for a person (the queue)"),
    ] = None,
    agreement_id: Annotated[str | None, Query(alias="agreementId")] = None,
    counter_party_id: CounterPartyIdParam = None,
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
    listed = transfers.list_page(resources.pool, query, agreement_id=agreement_id)
    return await page_answer(listed, view)


async def _get(resources: Resources, transfer_id: str) -> TransferRecord:
    record = await transfers.get(resources.pool, transfer_id)
    if record is None:
        raise NotFoundError(f"transfer {transfer_id} is unknown")
    return record


@router.get("/transfers/{transfer_id}", summary="One transfer with its timeline")
async def get_transfer(transfer_id: str, _: ApiKeyDep, resources: ResourcesDep) -> dict[str, Any]:
    return view(await _get(resources, transfer_id), timeline=True)


@router.post(
    "/transfers/{transfer_id}/{command}",
    summary="start (a held request), suspend, resume, terminate or complete",
    responses=COMMAND_RESPONSES,
)
async def command_transfer(
    transfer_id: str,
    command: Literal["start", "suspend", "resume", "terminate", "complete"],
    principal: ApiKeyDep,
    service: ServiceDep,
    body: CommandRequest | None = None,
) -> JSONResponse:
    record, acknowledged = await service.command(
        transfer_id,
        TransferCommand(command=command, reason=body.reason if body else None, operator=principal),
    )
    return JSONResponse(view(record), status_code=200 if acknowledged else 202)


@router.get("/transfers/{transfer_id}/edr", summary="Endpoint and token of a pull (consumer)")
async def get_edr(
    transfer_id: str, _: ApiKeyDep, service: ServiceDep, refresh: bool = False
) -> dict[str, Any]:
    address, expires_at = await service.edr(transfer_id, refresh=refresh)
    return {
        "transferId": transfer_id,
        "endpoint": address.get("endpoint"),
        "endpointType": address.get("endpointType"),
        "authorization": endpoint_property(address, "authorization"),
        "authType": endpoint_property(address, "authType") or "bearer",
        "expiresAt": expires_at.isoformat() if expires_at else None,
    }
