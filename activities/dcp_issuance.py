"""DCP 1.0 Credential Issuance Protocol, our side as holder (decision 0023): send a
CredentialRequestMessage, ask for a request's status, list credentials due for renewal, project
requests.

The issuer's service base is the `IssuerService` entry of its DID document. Errors are translated
here: the issuer's 4xx is final (`dcp_issuer_rejected`), an address the SSRF guard refuses is
final (`dsp_outbound_refused`), a DID document without an issuer service is final
(`bad_request`); transport errors, 5xx and an unresolvable DID are retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Protocol

import asyncpg
import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from connector.core.errors import ConnectorError, UnauthorizedError
from connector.core.identity.dcp import DCP_CONTEXT
from connector.core.identity.dcp_holder import CREDENTIAL_FORMAT
from connector.http.outbound import GuardedHttp, OutboundRefusedError
from connector.identity.did import DidDocumentSource
from connector.stores import credentials
from workflows import names
from workflows.credential_contracts import (
    CredentialRequestView,
    CredentialStatusAnswer,
    CredentialStatusQuery,
    ExpiringAnswer,
    ExpiringCredential,
    ExpiringQuery,
    SendCredentialRequest,
    SentCredentialRequest,
)

__all__ = ["DcpIssuanceActivities", "issuer_service_base", "request_row"]

ISSUER_SERVICE: Final = "IssuerService"
_ISSUER_STATUSES: Final = frozenset({"RECEIVED", "ISSUED", "REJECTED"})


class SelfIssuedTokens(Protocol):
    def issue(self, audience: str, *, extra_claims: Mapping[str, object] | None = None) -> str: ...


def issuer_service_base(document: Mapping[str, object]) -> str | None:
    """The `serviceEndpoint` of the first `IssuerService` in a DID document."""
    services = document.get("service", [])
    if not isinstance(services, list):
        return None
    for service in services:
        if isinstance(service, dict) and service.get("type") == ISSUER_SERVICE:
            endpoint = service.get("serviceEndpoint")
            if isinstance(endpoint, str) and endpoint:
                return endpoint.rstrip("/")
    return None


class DcpIssuanceActivities:
    def __init__(
        self,
        http: GuardedHttp,
        tokens: SelfIssuedTokens,
        resolver: DidDocumentSource,
        pool: asyncpg.Pool,
    ) -> None:
        self._http = http
        self._tokens = tokens
        self._resolver = resolver
        self._pool = pool

    async def _issuer_base(self, issuer_did: str) -> str:
        try:
            document = await self._resolver.resolve(issuer_did)
        except UnauthorizedError as exc:  # the issuer's DID document is unreachable for now
            raise ApplicationError(
                f"issuer DID: {exc.reasons[0]}", type=names.ERR_PEER_UNREACHABLE
            ) from None
        base = issuer_service_base(document)
        if base is None:
            raise ApplicationError(
                f"{issuer_did} publishes no {ISSUER_SERVICE}",
                type=names.ERR_BAD_REQUEST,
                non_retryable=True,
            )
        return base

    async def _call(
        self, method: str, url: str, issuer_did: str, body: object = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self._tokens.issue(issuer_did)}"}
        try:
            response = await self._http.request(
                method, url, headers=headers, json=body, follow_redirects=False
            )
        except OutboundRefusedError as exc:
            raise ApplicationError(
                f"issuer address refused: {exc.reasons[0]}",
                type=names.ERR_OUTBOUND_REFUSED,
                non_retryable=True,
            ) from None
        except (httpx.HTTPError, OSError, ConnectorError) as exc:
            raise ApplicationError(
                f"issuer unreachable: {type(exc).__name__}", type=names.ERR_PEER_UNREACHABLE
            ) from None
        if response.status_code >= 500 or response.status_code == 429:
            raise ApplicationError(
                f"issuer answered {response.status_code}", type=names.ERR_PEER_UNREACHABLE
            )
        return response

    @activity.defn(name=names.ACT_REQUEST_CREDENTIAL)
    async def request_credential(self, request: SendCredentialRequest) -> SentCredentialRequest:
        """POST a CredentialRequestMessage to the issuer service (201 + Location expected)."""
        base = await self._issuer_base(request.issuer_did)
        body = {
            "@context": [DCP_CONTEXT],
            "type": "CredentialRequestMessage",
            "holderPid": request.holder_pid,
            "credentials": [
                {"credentialType": request.credential_type, "format": CREDENTIAL_FORMAT}
            ],
        }
        response = await self._call("POST", f"{base}/credentials", request.issuer_did, body)
        if response.status_code not in (200, 201, 202):
            raise ApplicationError(
                f"issuer refused the request: {response.status_code}",
                type=names.ERR_ISSUER_REJECTED,
                non_retryable=True,
            )
        location = response.headers.get("location", "")
        issuer_pid = location.rstrip("/").rsplit("/", 1)[-1] if "/requests/" in location else None
        return SentCredentialRequest(issuer_pid=issuer_pid or None)

    @activity.defn(name=names.ACT_CREDENTIAL_STATUS)
    async def credential_status(self, query: CredentialStatusQuery) -> CredentialStatusAnswer:
        """What we hold for the request, and what the issuer says of it (UNKNOWN if it cannot)."""
        held = await credentials.held_for_request(self._pool, query.holder_pid)
        if held:
            return CredentialStatusAnswer(issuer_status="ISSUED", held_ids=held)
        base = await self._issuer_base(query.issuer_did)
        response = await self._call("GET", f"{base}/requests/{query.holder_pid}", query.issuer_did)
        status = "UNKNOWN"
        if response.status_code == 200:
            try:
                answer = response.json()
            except ValueError:
                answer = None
            if isinstance(answer, dict) and answer.get("status") in _ISSUER_STATUSES:
                status = answer["status"]
        return CredentialStatusAnswer(issuer_status=status)

    @activity.defn(name=names.ACT_EXPIRING_CREDENTIALS)
    async def expiring_credentials(self, query: ExpiringQuery) -> ExpiringAnswer:
        due = await credentials.expiring_before(self._pool, query.before)
        return ExpiringAnswer(
            credentials=[
                ExpiringCredential(
                    credential_id=c.credential_id,
                    issuer_did=c.issuer_did,
                    credential_type=c.types[0],
                )
                for c in due
            ]
        )

    @activity.defn(name=names.ACT_PROJECT_CREDENTIAL_REQUEST)
    async def upsert_credential_request(self, view: CredentialRequestView) -> bool:
        return await credentials.upsert_request(self._pool, request_row(view))


def request_row(view: CredentialRequestView) -> credentials.CredentialRequestRow:
    """The projection row of a request's view (the activity's and the DR reconcile's)."""
    return credentials.CredentialRequestRow(
        holder_pid=view.holder_pid,
        issuer_did=view.issuer_did,
        credential_type=view.credential_type,
        status=view.status,
        deadline_at=view.deadline_at,
        version=view.version,
        created_at=view.created_at,
        updated_at=view.updated_at,
        issuer_pid=view.issuer_pid,
        renewal_of=view.renewal_of,
        credential_ids=tuple(view.credential_ids),
        error=view.error,
    )
