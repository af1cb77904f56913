"""DSP transfer process endpoints, provider paths and consumer callbacks (dsp.md §5).

Our callback address is our DSP base, so both families share `/transfers/{pid}/...`; the pid
(always ours, the receiver's) tells which side we play. One router per DSP version; only the
codec differs. Errors carry the pids the request named (TransferError, dsp.md §10).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from api.body import read_json
from api.security import CallerDep, ReaderDep
from api.state import app_state
from api.transfer.service import TransferService, with_pids
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
from connector.core.errors import ConnectorError
from connector.core.jsonld import decode, encode
from connector.core.transfer.messages import MessageKind
from connector.core.transfer.record import TransferRecord
from connector.core.transfer.states import TransferState

EdgeDep = Annotated[TransferService, Depends(app_state("transfers"))]
BodyDep = Annotated[Any, Depends(read_json)]


def ack(record: TransferRecord, version: DspVersion, status: int = 200) -> JSONResponse:
    t = record.transfer
    state = t.state if t.state is not TransferState.INITIAL else TransferState.REQUESTED
    body = TransferProcess(
        provider_pid=t.provider_pid or "", consumer_pid=t.consumer_pid or "", state=state.value
    )
    return JSONResponse(encode(body, version), status_code=status)


@asynccontextmanager
async def _pids_of(body: Any, path_pid: str | None = None) -> AsyncIterator[None]:
    try:
        yield
    except ConnectorError as exc:
        raw = body if isinstance(body, dict) else {}

        def pick(key: str) -> str | None:
            value = raw.get(key, raw.get(f"dspace:{key}"))
            return value if isinstance(value, str) else None

        with_pids(exc, pick("consumerPid"), pick("providerPid") or None)
        raise


_MESSAGES: dict[str, tuple[type[DspModel], MessageKind]] = {
    "start": (TransferStartMessage, MessageKind.TRANSFER_START),
    "completion": (TransferCompletionMessage, MessageKind.TRANSFER_COMPLETION),
    "suspension": (TransferSuspensionMessage, MessageKind.TRANSFER_SUSPENSION),
    "termination": (TransferTerminationMessage, MessageKind.TRANSFER_TERMINATION),
}


def router(version: DspVersion) -> APIRouter:
    r = APIRouter(prefix=f"{version.path_segment}/transfers", tags=[f"dsp {version.value}"])

    @r.post("/request", status_code=201, summary="TransferRequestMessage (provider)")
    async def request_transfer(caller: CallerDep, edge: EdgeDep, body: BodyDep) -> JSONResponse:
        async with _pids_of(body):
            msg = decode(body, TransferRequestMessage, version)
            return ack(await edge.initial_request(msg, caller, version), version, 201)

    @r.get("/{pid}", summary="A transfer's state (provider path or consumer callback)")
    async def get_transfer(pid: str, caller: ReaderDep, edge: EdgeDep) -> JSONResponse:
        return ack(await edge.owned(pid, caller), version)

    def add(suffix: str, model: type[DspModel], kind: MessageKind) -> None:
        async def post(pid: str, caller: CallerDep, edge: EdgeDep, body: BodyDep) -> JSONResponse:
            async with _pids_of(body):
                msg = decode(body, model, version)
                return ack(await edge.message(pid, msg, caller, kind), version)

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
