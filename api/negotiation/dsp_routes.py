"""DSP contract negotiation endpoints, provider paths and consumer callbacks (dsp.md §5).

Our callback address is our DSP base, so both families share `/negotiations/{pid}/...`; the pid
(always ours, the receiver's) tells which side we play. One router per DSP version; only the
codec differs.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from api.body import DspMessageDep
from api.negotiation.service import NegotiationService
from api.security import CallerDep, ReaderDep
from api.state import app_state
from connector.core.dsp import (
    ContractAgreementMessage,
    ContractAgreementVerificationMessage,
    ContractNegotiation,
    ContractNegotiationEventMessage,
    ContractNegotiationTerminationMessage,
    ContractOfferMessage,
    ContractRequestMessage,
    DspModel,
    DspVersion,
)
from connector.core.jsonld import decode, encode
from connector.core.negotiation.record import NegotiationRecord
from connector.core.negotiation.states import NegotiationState, Role

ServiceDep = Annotated[NegotiationService, Depends(app_state("negotiations"))]
BodyDep = DspMessageDep


def ack(record: NegotiationRecord, version: DspVersion, status: int = 200) -> JSONResponse:
    n = record.negotiation
    state = n.state if n.state is not NegotiationState.INITIAL else NegotiationState.REQUESTED
    body = ContractNegotiation(
        provider_pid=n.provider_pid or "", consumer_pid=n.consumer_pid or "", state=state.value
    )
    return JSONResponse(encode(body, version), status_code=status)


def router(version: DspVersion) -> APIRouter:
    r = APIRouter(prefix=f"{version.path_segment}/negotiations", tags=[f"dsp {version.value}"])

    def parse(body: Any, model: type[DspModel]) -> Any:
        return decode(body, model, version)

    @r.post("/request", status_code=201, summary="Initial ContractRequestMessage (provider)")
    async def initial_request(
        caller: CallerDep, service: ServiceDep, body: BodyDep
    ) -> JSONResponse:
        msg = parse(body, ContractRequestMessage)
        return ack(await service.initial_request(msg, caller, version), version, 201)

    @r.post("/offers", status_code=201, summary="Initial ContractOfferMessage (consumer)")
    async def initial_offer(caller: CallerDep, service: ServiceDep, body: BodyDep) -> JSONResponse:
        msg = parse(body, ContractOfferMessage)
        return ack(await service.initial_offer(msg, caller, version), version, 201)

    @r.get("/{pid}", summary="A negotiation's state (provider path or consumer callback)")
    async def get_negotiation(pid: str, caller: ReaderDep, service: ServiceDep) -> JSONResponse:
        return ack(await service.owned(pid, caller), version)

    @r.post("/{pid}/request", summary="Counter ContractRequestMessage (provider)")
    async def counter_request(
        pid: str, caller: CallerDep, service: ServiceDep, body: BodyDep
    ) -> JSONResponse:
        msg = parse(body, ContractRequestMessage)
        return ack(await service.message(pid, msg, caller, Role.PROVIDER), version)

    @r.post("/{pid}/offers", summary="Counter ContractOfferMessage (consumer)")
    async def counter_offer(
        pid: str, caller: CallerDep, service: ServiceDep, body: BodyDep
    ) -> JSONResponse:
        msg = parse(body, ContractOfferMessage)
        return ack(await service.message(pid, msg, caller, Role.CONSUMER), version)

    @r.post("/{pid}/events", summary="ContractNegotiationEventMessage (ACCEPTED or FINALIZED)")
    async def event(
        pid: str, caller: CallerDep, service: ServiceDep, body: BodyDep
    ) -> JSONResponse:
        msg = parse(body, ContractNegotiationEventMessage)
        return ack(await service.message(pid, msg, caller, None), version)

    @r.post("/{pid}/agreement", summary="ContractAgreementMessage (consumer)")
    async def agreement(
        pid: str, caller: CallerDep, service: ServiceDep, body: BodyDep
    ) -> JSONResponse:
        msg = parse(body, ContractAgreementMessage)
        return ack(await service.message(pid, msg, caller, Role.CONSUMER), version)

    @r.post("/{pid}/agreement/verification", summary="ContractAgreementVerificationMessage")
    async def verification(
        pid: str, caller: CallerDep, service: ServiceDep, body: BodyDep
    ) -> JSONResponse:
        msg = parse(body, ContractAgreementVerificationMessage)
        return ack(await service.message(pid, msg, caller, Role.PROVIDER), version)

    @r.post("/{pid}/termination", summary="ContractNegotiationTerminationMessage")
    async def termination(
        pid: str, caller: CallerDep, service: ServiceDep, body: BodyDep
    ) -> JSONResponse:
        msg = parse(body, ContractNegotiationTerminationMessage)
        return ack(await service.message(pid, msg, caller, None), version)

    return r
