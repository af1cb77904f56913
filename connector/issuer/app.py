"""The development issuer's HTTP service (decision 0024), under the issuer's base URL path:

    GET  <did document path>        did.json (`/.well-known/did.json` or `/<path>/did.json`)
    POST <base>/credentials         CredentialRequestMessage -> 201, Location <base>/requests/<pid>
    GET  <base>/requests/<pid>      CredentialStatus (issuer or holder pid; the requester only)
    GET  <base>/status/<list id>    the revocation list, a VC JWT (application/vc+jwt)

Callers of the two protocol routes authenticate with a self-issued ID token (`aud` = our DID)
checked by the connector's `TokenVerifier`, trusting exactly the registered participants (read
from the store on every request, so `connector issuer participants add` needs no restart).
A token from a DID that is not a participant is refused with 403 before its DID is resolved;
any other token failure is 401; a malformed message 400; an unsupported credential type or
format is accepted (201) and the request is `REJECTED`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Final

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connector.core.errors import (
    ConnectorError,
    ErrorCode,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
)
from connector.core.guards import parse_json
from connector.core.identity.claims import VerifiedCaller
from connector.core.issuer.credentials import SUPPORTED_TYPES
from connector.core.issuer.messages import (
    JWT_FORMAT,
    RequestStatus,
    credential_status,
    parse_credential_request,
)
from connector.identity.did import DidDocumentSource, did_document_path
from connector.identity.tokens import TokenVerifier
from connector.identity.trust import TrustList
from connector.issuer.service import DevIssuer
from connector.issuer.store import RequestRecord
from connector.issuer.writeback import StorageWriter

__all__ = ["VC_JWT", "ExpiringReplayStore", "create_issuer_app"]

logger = logging.getLogger(__name__)

VC_JWT: Final = "application/vc+jwt"
MAX_BODY_BYTES: Final = 64 * 1024
_STATUS: Final = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.UNPROCESSABLE: 400,
    ErrorCode.CONFLICT: 409,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.UNAVAILABLE: 503,
}


class ExpiringReplayStore:
    """Seen `jti`s in this process until their token expires (one issuer process; a restart
    forgets them, and tokens live at most five minutes)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}

    async def claim(self, issuer: str, jti: str, *, ttl_seconds: int) -> None:
        now = time.monotonic()
        if len(self._seen) > 10_000:
            self._seen = {k: v for k, v in self._seen.items() if v > now}
        key = (issuer, jti)
        if self._seen.get(key, 0.0) > now:
            raise UnauthorizedError("token replayed (jti already used)")
        self._seen[key] = now + max(ttl_seconds, 1)


@dataclass
class _State:
    issuer: DevIssuer
    resolver: DidDocumentSource
    writer: StorageWriter
    replay: ExpiringReplayStore = field(default_factory=ExpiringReplayStore)
    tasks: set[asyncio.Task[bool]] = field(default_factory=set)

    def deliver_later(self, request: RequestRecord) -> None:
        task = asyncio.create_task(self.writer.deliver(request))
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[bool]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The request stays RECEIVED and is delivered again at the next start.
            logger.error("credential delivery crashed", exc_info=task.exception())


def _state(request: Request) -> _State:
    state: _State = request.app.state.issuer
    return state


StateDep = Annotated[_State, Depends(_state)]


def _unverified_issuer(header: str | None) -> str | None:
    """The `iss` a bearer token claims (unverified: only to tell strangers from participants)."""
    if not header:
        return None
    _scheme, _, token = header.strip().partition(" ")
    parts = token.strip().split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeError):
        return None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    return issuer if isinstance(issuer, str) else None


async def _caller(request: Request, state: StateDep) -> VerifiedCaller:
    header = request.headers.get("authorization")
    claimed = _unverified_issuer(header)
    store = state.issuer.store
    if claimed is not None and not store.is_participant(claimed):
        logger.info("issuer request from a non-participant", extra={"iss": claimed})
        raise ForbiddenError(f"{claimed} is not a participant of this data space")
    trust = TrustList.of([claimed] if claimed is not None else [])
    verifier = TokenVerifier(
        state.resolver, state.replay, trust, state.issuer.did, state.issuer.clock
    )
    return await verifier.verify(header)


CallerDep = Annotated[VerifiedCaller, Depends(_caller)]


def _error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConnectorError)  # noqa: S101 - registered for ConnectorError only
    status = _STATUS.get(exc.code, 500)
    if status == 401:
        logger.info("issuer caller rejected", extra={"reason": exc.reasons[0]})
        detail = "not authenticated"
    elif status == 500:
        error_id = str(uuid.uuid4())
        logger.error("issuer error", extra={"error_id": error_id}, exc_info=exc)
        detail = f"error id {error_id}"
    else:
        detail = "; ".join(exc.reasons)
    body = {"type": exc.code.value, "status": status, "detail": detail}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status, headers=headers, media_type="application/problem+json")


def create_issuer_app(
    issuer: DevIssuer, resolver: DidDocumentSource, writer: StorageWriter
) -> FastAPI:
    """The issuer service; pending requests are delivered again when it starts."""
    state = _State(issuer=issuer, resolver=resolver, writer=writer)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for pending in issuer.store.requests(status=RequestStatus.RECEIVED):
            state.deliver_later(pending)
        yield
        for task in list(state.tasks):
            task.cancel()
        await asyncio.gather(*state.tasks, return_exceptions=True)

    app = FastAPI(title="connector development issuer", lifespan=lifespan, openapi_url=None)
    app.state.issuer = state
    app.add_exception_handler(ConnectorError, _error)
    base = issuer.config.base_path

    @app.get(did_document_path(issuer.did))
    async def did_document() -> Response:
        return JSONResponse(issuer.did_document(), media_type="application/did+json")

    @app.post(f"{base}/credentials", status_code=201)
    async def request_credentials(request: Request, caller: CallerDep) -> Response:
        message = parse_credential_request(
            parse_json(await request.body(), max_bytes=MAX_BODY_BYTES)
        )
        refused = [
            c.credential_type
            for c in message.credentials
            if c.credential_type not in SUPPORTED_TYPES or c.format != JWT_FORMAT
        ]
        record = issuer.store.add_request(
            issuer_pid=f"urn:uuid:{uuid.uuid4()}",
            holder_pid=message.holder_pid,
            holder_did=caller.did,
            credential_types=tuple(c.credential_type for c in message.credentials),
            status=RequestStatus.REJECTED if refused else RequestStatus.RECEIVED,
            reason=f"not issued here: {', '.join(refused)}" if refused else None,
            now=issuer.clock(),
        )
        if record.status is RequestStatus.RECEIVED:
            state.deliver_later(record)
        body = credential_status(record.issuer_pid, record.holder_pid, record.status)
        location = f"{issuer.config.public_url}/requests/{record.issuer_pid}"
        return JSONResponse(body, 201, headers={"Location": location})

    @app.get(f"{base}/requests/{{pid}}")
    async def request_status(pid: str, caller: CallerDep) -> Response:
        record = issuer.store.find_request(pid, caller.did)
        if record is None:
            raise NotFoundError(f"no request {pid}")
        return JSONResponse(credential_status(record.issuer_pid, record.holder_pid, record.status))

    @app.get(f"{base}/status/{{status_list_id}}")
    async def status_list(status_list_id: str) -> Response:
        headers = {"Cache-Control": f"max-age={issuer.config.status_ttl_seconds}"}
        return Response(issuer.status_list(status_list_id), media_type=VC_JWT, headers=headers)

    return app
