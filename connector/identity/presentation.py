"""Our Credential Service's presentations: who may ask (the verifier's self-issued token and the
access token inside it), and the VP JWT we answer with (decision 0023; identity.md §1.3).

A verifier asks with `Authorization: Bearer <SI token>`: signed by a key of the verifier's DID
(resolved through the guarded resolver), `iss == sub ==` verifier DID, `aud ==` our DID,
`exp`/`iat`/`jti` as for every self-issued token, the `jti` claimed in the replay set, and claim
`token` = the access token our own Secure Token Service minted into our token to that verifier:
signed by one of OUR published keys, `iss == aud ==` our DID, `sub ==` the verifier's DID, not
expired. Its `scope` is what the verifier may read. Every failure is `UnauthorizedError`
(a generic 401; the reason goes to the log only).

The VP JWT: `iss == sub ==` our DID, `aud ==` the verifier, lifetime at most 5 minutes, signed by
our current key, which our DID document lists under `authentication`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jws import extract_compact

from connector.core.errors import UnauthorizedError
from connector.core.identity.claims import MAX_LIFETIME_SECONDS, CheckedClaims, check_claims
from connector.core.identity.dcp_holder import VC_CONTEXT, unverified_claims
from connector.identity.credentials import ALGORITHMS_BY_KEY, FORBIDDEN_HEADERS, public_key
from connector.identity.did import DidDocumentSource, UnknownKeyError, select_key
from connector.identity.keys import KeyRing
from connector.identity.replay import ReplayStore
from connector.runtime.logging import get_logger

__all__ = ["PRESENTATION_LIFETIME", "QueryAuthorizer", "QueryGrant", "mint_presentation"]

log = get_logger(__name__)

PRESENTATION_LIFETIME: Final = timedelta(seconds=MAX_LIFETIME_SECONDS)
_MAX_TOKEN_BYTES: Final = 16384


def mint_presentation(
    keyring: KeyRing,
    holder_did: str,
    verifier_did: str,
    credentials: Sequence[str],
    now: datetime,
    lifetime: timedelta = PRESENTATION_LIFETIME,
) -> str:
    """A VP JWT holding `credentials` (VC JWTs) for `verifier_did`."""
    issued = int(now.timestamp())
    presentation_id = f"urn:uuid:{uuid.uuid4()}"
    claims: dict[str, object] = {
        "iss": holder_did,
        "sub": holder_did,
        "aud": verifier_did,
        "jti": presentation_id,
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(min(lifetime, PRESENTATION_LIFETIME).total_seconds()),
        "vp": {
            "@context": [VC_CONTEXT],
            "type": ["VerifiablePresentation"],
            "holder": holder_did,
            "verifiableCredential": list(credentials),
        },
    }
    entry = keyring.current
    header = {"alg": "ES256", "typ": "JWT", "kid": f"{holder_did}#{entry.key_id}"}
    return jwt.encode(header, claims, entry.key, algorithms=["ES256"])


@dataclass(frozen=True, slots=True)
class QueryGrant:
    """A verifier allowed to read the credential types behind `scopes`."""

    verifier_did: str
    scopes: tuple[str, ...]


class QueryAuthorizer:
    """Checks the `Authorization` of a presentation query (see the module docstring)."""

    def __init__(
        self,
        resolver: DidDocumentSource,
        replay: ReplayStore,
        keyring: KeyRing,
        our_did: str,
        *,
        leeway: int = 30,
    ) -> None:
        self._resolver = resolver
        self._replay = replay
        self._keyring = keyring
        self._our_did = our_did
        self._leeway = leeway

    async def authorize(self, header: str | None, now: datetime) -> QueryGrant:
        """A verifier's presentation query. Raises: UnauthorizedError (any failure);
        UnavailableError (replay set down)."""
        try:
            verifier, claims, checked = await self._self_issued(header, now, lambda _: True)
            access_token = claims.get("token")
            if not isinstance(access_token, str):
                raise UnauthorizedError("no access token in the self-issued token")
            scopes = self._access_scopes(access_token, verifier, now)
            await self._claim(verifier, checked, now)
        except UnauthorizedError as exc:
            log.info("presentation query refused", reason=exc.reasons[0])
            raise
        return QueryGrant(verifier_did=verifier, scopes=scopes)

    async def authenticate(
        self, header: str | None, now: datetime, admit: Callable[[str], bool]
    ) -> str:
        """The DID of a caller with a valid self-issued token (an issuer writing to our Storage
        API); `admit(did)` is asked before anything is fetched for it.

        Raises: UnauthorizedError (any failure); UnavailableError (replay set down).
        """
        try:
            caller, _claims, checked = await self._self_issued(header, now, admit)
            await self._claim(caller, checked, now)
        except UnauthorizedError as exc:
            log.info("credential service caller refused", reason=exc.reasons[0])
            raise
        return caller

    async def _claim(self, issuer: str, checked: CheckedClaims, now: datetime) -> None:
        ttl = checked.expires_at + self._leeway - int(now.timestamp())
        await self._replay.claim(issuer, checked.jti, ttl_seconds=ttl)

    async def _self_issued(
        self, header: str | None, now: datetime, admit: Callable[[str], bool]
    ) -> tuple[str, dict[str, object], CheckedClaims]:
        if not header or len(header) > _MAX_TOKEN_BYTES:
            raise UnauthorizedError("missing or oversized Authorization header")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthorizedError("Authorization is not a Bearer token")
        token = token.strip()
        try:
            jws_header = extract_compact(token.encode("ascii")).protected
            unverified = unverified_claims(token)
        except (JoseError, ValueError, UnicodeError):
            raise UnauthorizedError("malformed token") from None
        if FORBIDDEN_HEADERS & jws_header.keys():
            raise UnauthorizedError("token header carries a forbidden parameter")
        caller = unverified.get("iss")
        if not isinstance(caller, str) or not caller.startswith("did:web:"):
            raise UnauthorizedError("issuer is not a did:web DID")
        if not admit(caller):
            raise UnauthorizedError("caller is not trusted")
        kid = jws_header.get("kid")
        if not isinstance(kid, str) or not kid.startswith(caller + "#"):
            raise UnauthorizedError("kid missing or not of the issuer")
        claims = await self._verified_si_claims(token, jws_header.get("alg"), caller, kid)
        checked = check_claims(claims, audience=self._our_did, now=now, leeway=self._leeway)
        if checked.issuer != caller:
            raise UnauthorizedError("claims changed after key selection")
        return caller, claims, checked

    async def _verified_si_claims(
        self, token: str, alg: object, verifier: str, kid: str
    ) -> dict[str, object]:
        document = await self._resolver.resolve(verifier)
        try:
            _vm, jwk = select_key(document, verifier, kid, require_relationship=False)
        except UnknownKeyError:
            document = await self._resolver.resolve(verifier, force_refresh=True)
            _vm, jwk = select_key(document, verifier, kid, require_relationship=False)
        algorithms = ALGORITHMS_BY_KEY[(str(jwk["kty"]), str(jwk["crv"]))]
        if alg not in algorithms:
            raise UnauthorizedError("token algorithm does not match the key type")
        try:
            return dict(jwt.decode(token, public_key(jwk), algorithms=algorithms).claims)
        except (JoseError, ValueError):
            raise UnauthorizedError("token signature invalid") from None

    def _access_scopes(self, access_token: str, verifier: str, now: datetime) -> tuple[str, ...]:
        try:
            jws_header = extract_compact(access_token.encode("ascii")).protected
        except (JoseError, ValueError, UnicodeError):
            raise UnauthorizedError("malformed access token") from None
        kid = jws_header.get("kid")
        prefix = self._our_did + "#"
        entry = (
            self._keyring.find(kid[len(prefix) :])
            if isinstance(kid, str) and kid.startswith(prefix)
            else None
        )
        if entry is None or entry not in self._keyring.published(now):
            raise UnauthorizedError("access token not signed by one of our keys")
        try:
            claims = jwt.decode(access_token, entry.key, algorithms=["ES256"]).claims
        except (JoseError, ValueError):
            raise UnauthorizedError("access token signature invalid") from None
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        if claims.get("iss") != self._our_did or not (
            isinstance(audiences, list) and self._our_did in audiences
        ):
            raise UnauthorizedError("access token not issued by and for us")
        if claims.get("sub") != verifier:
            raise UnauthorizedError("access token granted to another verifier")
        exp = claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise UnauthorizedError("access token has no exp")
        if now.timestamp() >= exp + self._leeway:
            raise UnauthorizedError("access token expired")
        scope = claims.get("scope")
        if not isinstance(scope, str):
            raise UnauthorizedError("access token has no scope")
        return tuple(s for s in scope.split() if s)
