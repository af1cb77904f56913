"""DSP transfer process endpoints, provider paths and consumer callbacks (dsp.md §5).

Our callback address is our DSP base, so both families share `/transfers/{pid}/...`; the pid
(always ours, the receiver's) tells which side we play. One router per DSP version; only the
codec differs. Errors carry the pids the request named (TransferError, dsp.md §10;
`api.body.read_dsp_message`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from api.body import DspMessageDep
from api.security import CallerDep, ReaderDep
from api.state import app_state
from api.transfer.service import TransferService
from connector.core.dsp import (
    DspModel,
    DspVersion,
    TransferCompletionMessage,
    TransferProcess,
    TransferRequestMessage,
    TransferStartMessage,
    TransferSuspensionMessage,
    TransferTerminationMessage,
)
from connector.core.jsonld import decode, encode
from connector.core.transfer.messages import MessageKind
from connector.core.transfer.record import TransferRecord
from connector.core.transfer.states import TransferState

ServiceDep = Annotated[TransferService, Depends(app_state("transfers"))]
BodyDep = DspMessageDep


def ack(record: TransferRecord, version: DspVersion, status: int = 200) -> JSONResponse:
    t = record.transfer
    state = t.state if t.state is not TransferState.INITIAL else TransferState.REQUESTED
    body = TransferProcess(
        provider_pid=t.provider_pid or "", consumer_pid=t.consumer_pid or "", state=state.value
    )
    return JSONResponse(encode(body, version), status_code=status)


_MESSAGES: dict[str, tuple[type[DspModel], MessageKind]] = {
    "start": (TransferStartMessage, MessageKind.TRANSFER_START),
    "completion": (TransferCompletionMessage, MessageKind.TRANSFER_COMPLETION),
    "suspension": (TransferSuspensionMessage, MessageKind.TRANSFER_SUSPENSION),
    "termination": (TransferTerminationMessage, MessageKind.TRANSFER_TERMINATION),
}


def router(version: DspVersion) -> APIRouter:
    r = APIRouter(prefix=f"{version.path_segment}/transfers", tags=[f"dsp {version.value}"])

    @r.post("/request", status_code=201, summary="TransferRequestMessage (provider)")
    async def request_transfer(
        caller: CallerDep, service: ServiceDep, body: BodyDep
    ) -> JSONResponse:
        msg = decode(body, TransferRequestMessage, version)
        return ack(await service.initial_request(msg, caller, version), version, 201)

    @r.get("/{pid}", summary="A transfer's state (provider path or consumer callback)")
    async def get_transfer(pid: str, caller: ReaderDep, service: ServiceDep) -> JSONResponse:
        return ack(await service.owned(pid, caller), version)

    def add(suffix: str, model: type[DspModel], kind: MessageKind) -> None:
        async def post(
            pid: str, caller: CallerDep, service: ServiceDep, body: BodyDep
        ) -> JSONResponse:
            msg = decode(body, model, version)
            return ack(await service.message(pid, msg, caller, kind), version)

        r.add_api_route(
            f"/{{pid}}/{suffix}",
            post,
            methods=["POST"],
            summary=f"{kind.wire_name} (either side)",
            name=f"transfer_{suffix}_{version.value}",
        )

    for suffix, (model, kind) in _MESSAGES.items():
        add(suffix, model, kind)
    return r
