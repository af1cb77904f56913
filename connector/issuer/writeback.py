"""Delivering issued credentials to the holder's Storage API (DCP 1.0 CIP; decision 0024).

For a request in `RECEIVED`: issue its credentials (once: they are recorded with the request id,
so a restart delivers the same ones), resolve the holder's DID document, take its
`CredentialService` endpoint and POST a `CredentialMessage` to `<endpoint>/credentials` with our
self-issued token (`aud` = the holder DID). Any answer but 2xx, and any transport failure, is
tried again with exponential back-off up to `attempts` times: the holder may not have stored its
own request yet when our first write arrives. On success the request becomes `ISSUED`; after
the last attempt it stays `RECEIVED` with the reason, and the next `serve` start tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import httpx

from connector.core.errors import ConnectorError
from connector.core.issuer.messages import RequestStatus, credential_message
from connector.http.outbound import GuardedHttp
from connector.identity.did import DidDocumentSource
from connector.identity.tokens import TokenIssuer, bearer
from connector.issuer.service import DevIssuer
from connector.issuer.store import RequestRecord

__all__ = ["CREDENTIAL_SERVICE", "DeliveryPolicy", "StorageWriter", "credential_service_url"]

logger = logging.getLogger(__name__)

CREDENTIAL_SERVICE: Final = "CredentialService"
_MAX_REASON: Final = 300


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    attempts: int = 8
    first_delay: float = 0.5
    max_delay: float = 30.0
    credential_days: int = 365


def credential_service_url(document: Mapping[str, object]) -> str | None:
    """The `serviceEndpoint` of the first `CredentialService` entry, if any."""
    services = document.get("service", [])
    if not isinstance(services, list):
        return None
    for service in services:
        if not isinstance(service, dict):
            continue
        kind = service.get("type")
        kinds = [kind] if isinstance(kind, str) else kind
        endpoint = service.get("serviceEndpoint")
        if isinstance(kinds, list) and CREDENTIAL_SERVICE in kinds and isinstance(endpoint, str):
            return endpoint.rstrip("/")
    return None


class StorageWriter:
    def __init__(
        self,
        issuer: DevIssuer,
        http: GuardedHttp,
        resolver: DidDocumentSource,
        *,
        policy: DeliveryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._issuer = issuer
        self._http = http
        self._resolver = resolver
        self._policy = policy or DeliveryPolicy()
        self._sleep = sleep
        self._tokens = TokenIssuer(
            issuer.keyring, issuer.did, clock=issuer.clock, lifetime=timedelta(minutes=5)
        )

    async def deliver(self, request: RequestRecord) -> bool:
        """Issue (if not yet) and deliver the credentials of `request`; True once delivered."""
        store = self._issuer.store
        credentials = store.credentials(request_id=request.issuer_pid)
        if not credentials:
            try:
                credentials = [
                    self._issuer.issue(
                        request.holder_did,
                        kind,
                        days=self._policy.credential_days,
                        request_id=request.issuer_pid,
                    )
                    for kind in request.credential_types
                ]
            except ConnectorError as exc:  # e.g. the status list is full
                refusal = "; ".join(exc.reasons)[:_MAX_REASON]
                store.update_request(
                    request.issuer_pid,
                    now=self._issuer.clock(),
                    status=RequestStatus.REJECTED,
                    reason=refusal,
                )
                logger.warning(
                    "credential request rejected",
                    extra={"issuer_pid": request.issuer_pid, "reason": refusal},
                )
                return False
        message = credential_message(
            request.issuer_pid,
            request.holder_pid,
            [(c.credential_type, c.payload) for c in credentials],
        )
        delay = self._policy.first_delay
        for attempt in range(1, self._policy.attempts + 1):
            reason = await self._attempt(request.holder_did, message)
            now = self._issuer.clock()
            if reason is None:
                store.update_request(
                    request.issuer_pid, now=now, status=RequestStatus.ISSUED, attempted=True
                )
                logger.info("credentials delivered", extra={"issuer_pid": request.issuer_pid})
                return True
            store.update_request(request.issuer_pid, now=now, reason=reason, attempted=True)
            logger.info(
                "credential delivery failed",
                extra={"issuer_pid": request.issuer_pid, "attempt": attempt, "reason": reason},
            )
            if attempt < self._policy.attempts:
                await self._sleep(delay)
                delay = min(delay * 2, self._policy.max_delay)
        return False

    async def _attempt(self, holder_did: str, message: Mapping[str, object]) -> str | None:
        """None on a 2xx, else why not."""
        try:
            document = await self._resolver.resolve(holder_did)
            endpoint = credential_service_url(document)
            if endpoint is None:
                return "the holder's DID document names no CredentialService"
            response = await self._http.request(
                "POST",
                f"{endpoint}/credentials",
                headers={"Authorization": bearer(self._tokens.issue(holder_did))},
                json=message,
                follow_redirects=False,
            )
        except ConnectorError as exc:
            return exc.reasons[0][:_MAX_REASON] if exc.reasons else type(exc).__name__
        except httpx.HTTPError as exc:
            return f"transport error {type(exc).__name__}"
        if 200 <= response.status_code < 300:
            return None
        return f"the holder's storage answered {response.status_code}"
