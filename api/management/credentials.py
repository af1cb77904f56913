"""Management API: the verifiable credentials we hold as DCP holder, and our requests for them
(decision 0023).

    GET  /management/v1/credentials            held credentials (never their payloads)
    POST /management/v1/credentials/requests   {issuerDid, credentialType} -> 201, the request
    GET  /management/v1/credentials/requests   requests, newest first (renewals: `renewalOf`)
    GET  /management/v1/credentials/requests/{holderPid}
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from api.idempotency import IdempotencyKeyDep, idempotent
from api.security import ApiKeyDep
from api.state import app_state
from connector.core.errors import ConnectorError, UnprocessableError
from connector.identity.did import did_web_to_url
from connector.identity.trust import TrustList
from connector.runtime.resources import Resources
from connector.settings import Settings
from connector.stores import credentials
from connector.stores.idempotency import Claimed
from workflows import names
from workflows.credential_contracts import CredentialRequestStart, CredentialRequestView

__all__ = ["credential_view", "request_view", "router", "start_request"]

router = APIRouter(prefix="/management/v1/credentials", tags=["credentials"])

ResourcesDep = Annotated[Resources, Depends(app_state("resources"))]
_PID_NAMESPACE = uuid.UUID("6f1c7a52-5f0e-4f6e-9a43-1f0c4d1e2b77")


class CredentialRequestIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    issuer_did: str = Field(alias="issuerDid", description="The issuer's did:web")
    credential_type: str = Field(
        alias="credentialType",
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="e.g. MembershipCredential",
    )


def credential_view(c: credentials.HeldCredential) -> dict[str, Any]:
    return {
        "id": c.credential_id,
        "types": list(c.types),
        "issuerDid": c.issuer_did,
        "issuedAt": c.issued_at.isoformat(),
        "expiresAt": c.expires_at.isoformat() if c.expires_at else None,
        "status": c.status,
        "holderPid": c.holder_pid,
        "createdAt": c.created_at.isoformat() if c.created_at else None,
    }


def request_view(r: credentials.CredentialRequestRow | CredentialRequestView) -> dict[str, Any]:
    return {
        "holderPid": r.holder_pid,
        "issuerDid": r.issuer_did,
        "credentialType": r.credential_type,
        "status": r.status,
        "issuerPid": r.issuer_pid,
        "renewalOf": r.renewal_of,
        "credentialIds": list(r.credential_ids),
        "error": r.error,
        "version": r.version,
        "deadlineAt": r.deadline_at.isoformat(),
        "createdAt": r.created_at.isoformat(),
        "updatedAt": r.updated_at.isoformat(),
        "workflowId": names.credential_request_workflow_id(r.holder_pid),
    }


def check_request(settings: Settings, issuer_did: str, credential_type: str) -> None:
    """Raises: UnprocessableError: not a did:web, or not trusted to issue that type."""
    try:
        did_web_to_url(issuer_did, allow_http=True, allow_ip=True)
    except ConnectorError as exc:
        raise UnprocessableError(exc.reasons[0], pointer="/issuerDid") from None
    if not TrustList.from_config(settings.identity.trust).trusts_issuer(
        issuer_did, [credential_type]
    ):
        raise UnprocessableError(
            f"{issuer_did} is not a trusted issuer of {credential_type} "
            "(identity.trust.trusted_issuers); our Storage API would refuse what it writes",
            pointer="/issuerDid",
        )


async def start_request(
    client: Client, settings: Settings, issuer_did: str, credential_type: str, holder_pid: str
) -> CredentialRequestView:
    """Start (or join, for the same `holder_pid`) a `dcp.credential_request` workflow."""
    c = settings.credentials
    start = CredentialRequestStart(
        holder_pid=holder_pid,
        issuer_did=issuer_did,
        credential_type=credential_type,
        deadline_seconds=c.request_deadline_seconds,
        poll_interval_seconds=c.poll_interval_seconds,
    )
    await client.start_workflow(
        names.WF_CREDENTIAL_REQUEST,
        start,
        id=names.credential_request_workflow_id(holder_pid),
        task_queue=settings.temporal.task_queues.control,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )
    now = datetime.now(UTC)
    return CredentialRequestView(
        holder_pid=holder_pid,
        issuer_did=issuer_did,
        credential_type=credential_type,
        status="REQUESTED",
        deadline_at=now + timedelta(seconds=c.request_deadline_seconds),
        version=1,
        created_at=now,
        updated_at=now,
    )


@router.get("", summary="Credentials we hold (no payloads)")
async def list_credentials(_: ApiKeyDep, resources: ResourcesDep) -> dict[str, Any]:
    held = await credentials.list_held(resources.pool)
    return {"items": [credential_view(c) for c in held]}


@router.post("/requests", status_code=201, summary="Request a credential from an issuer")
async def request_credential(
    body: CredentialRequestIn,
    principal: ApiKeyDep,
    idempotency_key: IdempotencyKeyDep,
    resources: ResourcesDep,
    request: Request,
) -> Response:
    settings: Settings = request.app.state.settings
    check_request(settings, body.issuer_did, body.credential_type)
    client = resources.temporal
    if client is None:  # pragma: no cover - the control plane always has one
        raise RuntimeError("the control plane needs a Temporal client")

    async def run(claimed: Claimed | None) -> JSONResponse:
        # Under an Idempotency-Key a retry (also after a crash) joins the same workflow.
        seed = claimed.seed if claimed is not None else uuid.uuid4().hex
        holder_pid = f"urn:uuid:{uuid.uuid5(_PID_NAMESPACE, seed)}"
        started = await start_request(
            client, settings, body.issuer_did, body.credential_type, holder_pid
        )
        return JSONResponse(request_view(started), status_code=201)

    return await idempotent(
        request, principal, idempotency_key, body.model_dump(mode="json", by_alias=True), run
    )


@router.get("/requests", summary="Our credential requests, newest first, renewals included")
async def list_requests(
    _: ApiKeyDep,
    resources: ResourcesDep,
    renewals: Annotated[bool, Query(description="Only renewals")] = False,
) -> dict[str, Any]:
    rows = await credentials.list_requests(resources.pool, renewals_only=renewals)
    return {"items": [request_view(r) for r in rows]}


@router.get("/requests/{holder_pid}", summary="One credential request")
async def get_request(holder_pid: str, _: ApiKeyDep, resources: ResourcesDep) -> dict[str, Any]:
    return request_view(await credentials.get_request(resources.pool, holder_pid))
