"""Our Credential Service as one object: presentation queries, the Storage API and the
operator's imports share the same store, keys, resolver and trust list (decision 0023).

The HTTP routes (`api.dcp.credential_service`) and `connector credentials import` call it; it
never signals workflows (that is the API's job, which may import workflow names).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from redis.asyncio import Redis

from connector.core.errors import BadRequestError, UnauthorizedError
from connector.core.identity.dcp import DCP_CONTEXT
from connector.core.identity.dcp_holder import (
    CredentialFacts,
    CredentialMessage,
    granted_types,
    parse_credential_message,
    parse_presentation_query,
)
from connector.encryption.keyring import DataKeys
from connector.http.outbound import GuardedHttp
from connector.identity.credentials import verify_credential
from connector.identity.did import DidDocumentSource, DidResolver
from connector.identity.keys import KeyRing
from connector.identity.presentation import QueryAuthorizer, mint_presentation
from connector.identity.replay import RedisReplayStore, ReplayStore
from connector.identity.trust import TrustList
from connector.settings import Settings
from connector.stores import credentials

__all__ = ["CredentialHolder", "Delivered", "build_resolver"]


def build_resolver(settings: Settings, redis: Redis | None, http: GuardedHttp) -> DidResolver:
    """A did:web resolver configured as the token verifier's (same Redis cache entries)."""
    return DidResolver(
        http,
        redis,
        ttl=settings.identity.did_cache_ttl_seconds,
        participant=settings.identity.resolved_participant_id(settings.server),
        refresh_interval=settings.identity.did_refresh_interval_seconds,
        allow_http=settings.outbound.allow_http,
        allow_ip=settings.outbound.allow_http,
    )


@dataclass(frozen=True, slots=True)
class Delivered:
    """What an issuer's CredentialMessage brought: stored credential ids, or a rejection."""

    message: CredentialMessage
    credential_ids: tuple[str, ...]
    issuer_did: str


class CredentialHolder:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        keys: DataKeys,
        keyring: KeyRing,
        our_did: str,
        resolver: DidDocumentSource,
        replay: ReplayStore,
        trust: TrustList,
        clock: Callable[[], datetime],
        leeway: int = 30,
    ) -> None:
        self._pool = pool
        self._keys = keys
        self._keyring = keyring
        self.our_did = our_did
        self._resolver = resolver
        self._trust = trust
        self._clock = clock
        self._leeway = leeway
        self._auth = QueryAuthorizer(resolver, replay, keyring, our_did, leeway=leeway)

    @classmethod
    def build(
        cls,
        settings: Settings,
        pool: asyncpg.Pool,
        redis: Redis,
        http: GuardedHttp,
        keys: DataKeys,
        keyring: KeyRing,
        clock: Callable[[], datetime],
    ) -> CredentialHolder:
        return cls(
            pool=pool,
            keys=keys,
            keyring=keyring,
            our_did=settings.identity.resolved_did(settings.server),
            resolver=build_resolver(settings, redis, http),
            replay=RedisReplayStore(
                redis, participant=settings.identity.resolved_participant_id(settings.server)
            ),
            trust=TrustList.from_config(settings.identity.trust),
            clock=clock,
            leeway=settings.identity.token_leeway_seconds,
        )

    async def present(self, authorization: str | None, body: object) -> dict[str, object]:
        """A PresentationResponseMessage for a verifier's query: one VP with every stored,
        unexpired credential of a type both asked for and granted by its access token.

        Raises:
            UnauthorizedError: the verifier's tokens (401).
            BadRequestError: the message (400).
            UnsupportedQueryError: a presentationDefinition query (501).
        """
        now = self._clock()
        grant = await self._auth.authorize(authorization, now)
        asked = parse_presentation_query(body)
        types = granted_types(asked, grant.scopes)
        found = await credentials.matching(self._pool, self._keys, types, now)
        vp = mint_presentation(self._keyring, self.our_did, grant.verifier_did, found, now)
        return {
            "@context": [DCP_CONTEXT],
            "type": "PresentationResponseMessage",
            "presentation": [vp],
        }

    async def receive(self, authorization: str | None, body: object) -> Delivered:
        """Store what a trusted issuer writes to our Storage API (every credential must verify,
        be about us and come from the calling issuer; otherwise nothing is stored).

        Raises:
            UnauthorizedError: the issuer's token, or an untrusted issuer (401).
            BadRequestError: the message or one of its credentials (400).
        """
        now = self._clock()
        issuer = await self._auth.authenticate(
            authorization, now, lambda did: did in self._trust.trusted_issuers
        )
        message = parse_credential_message(body)
        checked: list[tuple[CredentialFacts, str]] = []
        for payload in message.payloads:
            facts = await self._verified(payload, now)
            if facts.issuer_did != issuer:
                raise UnauthorizedError("credential issued by another issuer than the caller")
            checked.append((facts, payload))
        for facts, payload in checked:
            await self._store(facts, payload, message.holder_pid)
        return Delivered(message, tuple(f.credential_id for f, _ in checked), issuer)

    async def import_credential(self, token: str) -> credentials.HeldCredential:
        """An operator's pre-issued VC JWT, verified as the Storage API verifies it.

        Raises:
            UnauthorizedError: untrusted issuer, bad signature.
            BadRequestError: not a VC JWT about us, expired.
        """
        facts = await self._verified(token.strip(), self._clock())
        return await self._store(facts, token.strip(), None)

    async def _verified(self, token: str, now: datetime) -> CredentialFacts:
        try:
            return await verify_credential(
                token,
                resolver=self._resolver,
                trust=self._trust,
                our_did=self.our_did,
                now=now,
                leeway=self._leeway,
            )
        except UnauthorizedError as exc:
            # A credential that does not verify is bad input from an authenticated issuer.
            raise BadRequestError(f"credential refused: {exc.reasons[0]}") from None

    async def _store(
        self, facts: CredentialFacts, payload: str, holder_pid: str | None
    ) -> credentials.HeldCredential:
        held = credentials.HeldCredential(
            credential_id=facts.credential_id,
            types=facts.types,
            issuer_did=facts.issuer_did,
            issued_at=facts.issued_at,
            expires_at=facts.expires_at,
            holder_pid=holder_pid,
        )
        await credentials.put(self._pool, self._keys, held, payload)
        return held
