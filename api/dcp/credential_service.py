"""`/dcp/presentations/query` and `/dcp/credentials` (DCP 1.0 §5.4 and §6.5; decision 0023).

The checks live in `connector.identity.holder`; this module reads the body, answers, and tells
the credential request workflow that its credential arrived (signal `credential.received`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.body import read_json
from api.state import app_state
from connector.core.identity.dcp_holder import UnsupportedQueryError
from connector.identity.holder import CredentialHolder, Delivered
from connector.runtime.logging import get_logger
from workflows import names
from workflows.credential_contracts import CredentialReceived

log = get_logger(__name__)

router = APIRouter(prefix="/dcp", tags=["DCP credential service"])

HolderDep = Annotated[CredentialHolder, Depends(app_state("credential_holder"))]
AuthorizationDep = Annotated[str | None, Header(alias="Authorization")]


@router.post("/presentations/query", summary="DCP Presentation API: query our credentials")
async def query_presentations(
    request: Request, holder: HolderDep, authorization: AuthorizationDep = None
) -> Response:
    body = await read_json(request)
    try:
        answer = await holder.present(authorization, body)
    except UnsupportedQueryError as exc:
        return JSONResponse({"error": "not_implemented", "reasons": [str(exc)]}, status_code=501)
    return JSONResponse(answer)


@router.post("/credentials", summary="DCP Storage API: an issuer writes credentials to us")
async def store_credentials(
    request: Request, holder: HolderDep, authorization: AuthorizationDep = None
) -> Response:
    delivered = await holder.receive(authorization, await read_json(request))
    await _tell_request(request.app.state.resources.temporal, delivered)
    return Response(status_code=200)


async def _tell_request(client: Client, delivered: Delivered) -> None:
    """Signal the request's workflow; a credential nobody asked for (or whose request ended) is
    still stored, and a lost signal is covered by the workflow's status poll."""
    message = delivered.message
    handle = client.get_workflow_handle(names.credential_request_workflow_id(message.holder_pid))
    signal = CredentialReceived(
        status="ISSUED" if message.status == "ISSUED" else "REJECTED",
        credential_ids=list(delivered.credential_ids),
        issuer_did=delivered.issuer_did,
    )
    try:
        await handle.signal(names.SIG_CREDENTIAL_RECEIVED, signal)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            log.info("credentials stored for no running request", holder_pid=message.holder_pid)
        else:
            log.warning(
                "credential request not signalled", holder_pid=message.holder_pid, error=str(exc)
            )
