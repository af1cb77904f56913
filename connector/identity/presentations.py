"""DCP verifier, effectful half: ask the caller's Credential Service for a presentation and
verify it (DCP 1.0 VPP §4-5, profile `vc11-sl2021/jwt`; identity.md §1.2 steps 4-6, §1.5;
decision 0022).

`PresentationVerifier.verify(holder, access_token)`: resolve the holder's DID document, take its
`CredentialService` endpoint, mint our self-issued token (`aud` = holder, `token` = the holder's
access token verbatim), `POST <cs>/presentations/query` through the outbound guard, then check
each VP (signature under the holder's `authentication` keys, claims) and each VC (signature
under the issuer's `assertionMethod` keys, issuer trusted for its types, holder binding, validity,
revocation via the issuer-signed status list, fetched through the guard and cached for
`status_list_ttl`, never past the list's `exp`). The result is the policy claims of the
credentials (`connector.core.identity.dcp.credential_claims`), cached per holder until the
earliest credential expiry, at most `cache_seconds`.

`refuse_failures` (`identity.dcp.credential_failures = refuse`, the DCP 1.0 behaviour): a VC that
is expired, not yet valid, revoked or from an issuer not trusted for its type refuses the request,
as does a requested type missing. Otherwise such a credential only carries its standing into the
policy claims, so the policy refuses with that reason in the decision record. Forged or unbound
credentials refuse in both modes. Every refusal is an `UnauthorizedError` (generic 401 on the
wire; the reason is logged by the token verifier).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jws import extract_compact
from pydantic import JsonValue

from connector.core.errors import ConnectorError, UnauthorizedError
from connector.core.identity.dcp import (
    VC_CONTEXT_V1,
    Standing,
    VerifiedCredential,
    check_presentation_claims,
    check_requested_types,
    credential_claims,
    credential_from_claims,
    credential_types_of,
    presentation_query,
    presentations_of,
    standing_of,
    status_bit,
    status_list_bits,
)
from connector.http.outbound import GuardedHttp
from connector.identity.did import DidDocumentSource, UnknownKeyError, select_key
from connector.identity.keys import KeyRing
from connector.identity.sts import issue_si_token
from connector.identity.tokens import (
    _ALGS_BY_KEY,
    _ALLOWED_ALGS,
    _FORBIDDEN_HEADERS,
    _b64json,
    _import_key,
    bearer,
)
from connector.identity.trust import TrustList

__all__ = ["CREDENTIAL_SERVICE", "PresentationVerifier", "credential_service_url"]

logger = logging.getLogger(__name__)

CREDENTIAL_SERVICE = "CredentialService"
_QUERY_PATH = "/presentations/query"
_STATUS_LIST_TYPE = "StatusList2021Credential"
_MAX_CACHED_HOLDERS = 4096
_MAX_VP_LIFETIME_SECONDS = 300


def credential_service_url(document: Mapping[str, object]) -> str:
    """The first `CredentialService` endpoint of a DID document.

    Raises:
        UnauthorizedError: none, or not a string URL.
    """
    services = document.get("service", [])
    if isinstance(services, list):
        for service in services:
            if isinstance(service, dict) and service.get("type") == CREDENTIAL_SERVICE:
                endpoint = service.get("serviceEndpoint")
                if isinstance(endpoint, str) and endpoint:
                    return endpoint
    raise UnauthorizedError("caller's DID document names no CredentialService")


@dataclass(frozen=True, slots=True)
class _Cached:
    claims: Mapping[str, JsonValue]
    until: float


class PresentationVerifier:
    """Queries and verifies a caller's credentials (see the module docstring)."""

    def __init__(
        self,
        resolver: DidDocumentSource,
        http: GuardedHttp,
        keyring: KeyRing,
        our_did: str,
        trust: TrustList,
        clock: Callable[[], datetime],
        *,
        scopes: Sequence[str],
        refuse_failures: bool = True,
        status_list_ttl: int = 300,
        cache_seconds: int = 60,
        leeway: int = 5,
    ) -> None:
        self._resolver = resolver
        self._http = http
        self._keyring = keyring
        self._our_did = our_did
        self._trust = trust
        self._clock = clock
        self._query = presentation_query(scopes)
        self._scopes = tuple(scopes)
        self._refuse = refuse_failures
        self._status_ttl = status_list_ttl
        self._cache_seconds = cache_seconds
        self._leeway = leeway
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._status_lists: dict[str, tuple[bytes, float]] = {}
        self._pending: dict[str, asyncio.Future[Mapping[str, JsonValue]]] = {}

    async def verify(self, holder: str, access_token: str) -> Mapping[str, JsonValue]:
        """The policy claims of `holder`'s verified credentials.

        Raises:
            UnauthorizedError: the query or any check failed (see the module docstring).
        """
        now = self._clock()
        cached = self._cache.get(holder)
        if cached is not None and now.timestamp() < cached.until:
            return cached.claims
        if self._cache_seconds <= 0:
            return await self._fresh(holder, access_token, now)
        # One query per caller at a time: a catalog burst before the cache is filled waits for
        # the first request's answer instead of querying once per request.
        pending = self._pending.get(holder)
        if pending is None:
            pending = asyncio.ensure_future(self._fresh(holder, access_token, now))
            self._pending[holder] = pending
            pending.add_done_callback(lambda _: self._pending.pop(holder, None))
        return await asyncio.shield(pending)

    async def _fresh(
        self, holder: str, access_token: str, now: datetime
    ) -> Mapping[str, JsonValue]:
        credentials = await self._credentials(holder, access_token, now)
        if self._refuse:
            for credential in credentials:
                if credential.standing is not Standing.ACTIVE:
                    raise UnauthorizedError(
                        f"credential {credential.id} is {credential.standing.value}"
                    )
            check_requested_types(credentials, self._scopes)
        claims = credential_claims(credentials)
        self._remember(holder, claims, credentials, now)
        return claims

    def _remember(
        self,
        holder: str,
        claims: Mapping[str, JsonValue],
        credentials: Sequence[VerifiedCredential],
        now: datetime,
    ) -> None:
        if self._cache_seconds <= 0:
            return
        until = now.timestamp() + self._cache_seconds
        for credential in credentials:
            if credential.expires_at is not None:
                until = min(until, credential.expires_at)
        self._cache[holder] = _Cached(claims, until)
        self._cache.move_to_end(holder)
        while len(self._cache) > _MAX_CACHED_HOLDERS:
            self._cache.popitem(last=False)

    async def _credentials(
        self, holder: str, access_token: str, now: datetime
    ) -> list[VerifiedCredential]:
        document = await self._resolver.resolve(holder)
        endpoint = credential_service_url(document).rstrip("/") + _QUERY_PATH
        token = issue_si_token(self._keyring, self._our_did, holder, now, token=access_token)
        try:
            response = await self._http.request(
                "POST",
                endpoint,
                json=self._query,
                headers={"Authorization": bearer(token)},
                follow_redirects=False,
            )
        except ConnectorError as exc:
            raise UnauthorizedError(f"presentation query refused: {exc.reasons[0]}") from None
        except httpx.HTTPError as exc:
            raise UnauthorizedError(f"presentation query failed: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise UnauthorizedError(f"presentation query answered {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise UnauthorizedError("presentation response is not JSON") from None
        credentials: list[VerifiedCredential] = []
        for presentation in presentations_of(body):
            claims = await self._signed(presentation, holder, "authentication")
            for vc in check_presentation_claims(
                claims,
                holder=holder,
                verifier=self._our_did,
                now=now,
                leeway=self._leeway,
                max_lifetime=_MAX_VP_LIFETIME_SECONDS,
            ):
                credentials.append(await self._credential(vc, holder, now))
        return credentials

    async def _credential(self, token: str, holder: str, now: datetime) -> VerifiedCredential:
        unverified = _payload(token)
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or not issuer.startswith("did:web:"):
            raise UnauthorizedError("credential issuer is not a did:web DID")
        types = credential_types_of(unverified)
        trusted = self._trust.trusted_issuers.get(issuer, frozenset())
        if not types or not all(t in trusted for t in types):
            # Never resolve an untrusted issuer's DID (no fetch on a caller's say-so); the
            # credential cannot admit anything, so its standing is all it contributes.
            credential = credential_from_claims(unverified, issuer=issuer, holder=holder)
            return replace(credential, standing=Standing.UNTRUSTED_ISSUER)
        claims = await self._signed(token, issuer, "assertionMethod")
        credential = credential_from_claims(claims, issuer=issuer, holder=holder)
        standing = standing_of(
            credential, trusted_types=trusted, revoked=False, now=now, leeway=self._leeway
        )
        if standing is Standing.ACTIVE and credential.status is not None:
            bits = await self._status_list(credential.status.list_url, issuer, now)
            if status_bit(bits, credential.status.index):
                standing = Standing.REVOKED
        return replace(credential, standing=standing)

    async def _status_list(self, url: str, issuer: str, now: datetime) -> bytes:
        cached = self._status_lists.get(url)
        if cached is not None and now.timestamp() < cached[1]:
            return cached[0]
        try:
            response = await self._http.request(
                "GET", url, headers={"Accept": "application/vc+jwt"}, follow_redirects=False
            )
        except ConnectorError as exc:
            raise UnauthorizedError(f"status list fetch refused: {exc.reasons[0]}") from None
        except httpx.HTTPError as exc:
            raise UnauthorizedError(f"status list fetch failed: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise UnauthorizedError(f"status list fetch answered {response.status_code}")
        token = response.text.strip()
        claims = await self._signed(token, issuer, "assertionMethod")
        vc = claims.get("vc")
        subject = vc.get("credentialSubject") if isinstance(vc, dict) else None
        types = vc.get("type") if isinstance(vc, dict) else None
        if (
            claims.get("iss") != issuer
            or not isinstance(vc, dict)
            or not isinstance(vc.get("@context"), list)
            or vc["@context"][:1] != [VC_CONTEXT_V1]
            or not isinstance(types, list)
            or _STATUS_LIST_TYPE not in types
            or not isinstance(subject, dict)
            or subject.get("statusPurpose") != "revocation"
            or not isinstance(subject.get("encodedList"), str)
        ):
            raise UnauthorizedError("status list is not the issuer's revocation list")
        exp = claims.get("exp")
        if isinstance(exp, int | float) and now.timestamp() >= exp + self._leeway:
            raise UnauthorizedError("status list credential expired")
        bits = status_list_bits(subject["encodedList"])
        # Kept for the configured TTL but never past the list credential's own `exp`: the
        # issuer's TTL bounds how late a revocation may reach us (decision 0024).
        until = now.timestamp() + self._status_ttl
        if isinstance(exp, int | float):
            until = min(until, float(exp))
        if until > now.timestamp():
            self._status_lists[url] = (bits, until)
            if len(self._status_lists) > _MAX_CACHED_HOLDERS:
                self._status_lists.pop(next(iter(self._status_lists)))
        return bits

    async def _signed(self, token: str, signer: str, relationship: str) -> dict[str, object]:
        """The claims of `token`, signed by a key of `signer` listed under `relationship`."""
        try:
            header = extract_compact(token.encode("ascii")).protected
        except (JoseError, ValueError, UnicodeError):
            raise UnauthorizedError("malformed JWT") from None
        alg = header.get("alg")
        if alg not in _ALLOWED_ALGS or _FORBIDDEN_HEADERS & header.keys():
            raise UnauthorizedError("JWT header not allowed")
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str) or not kid.startswith(signer + "#")):
            raise UnauthorizedError("JWT kid does not belong to its signer")
        document = await self._resolver.resolve(signer)
        try:
            _vm, jwk = select_key(
                document, signer, kid, relationship=relationship, require_relationship=True
            )
        except UnknownKeyError:
            document = await self._resolver.resolve(signer, force_refresh=True)
            _vm, jwk = select_key(
                document, signer, kid, relationship=relationship, require_relationship=True
            )
        algorithms = _ALGS_BY_KEY[(str(jwk["kty"]), str(jwk["crv"]))]
        if alg not in algorithms:
            raise UnauthorizedError("JWT algorithm does not match the key type")
        try:
            return dict(jwt.decode(token, _import_key(jwk), algorithms=algorithms).claims)
        except (JoseError, ValueError):
            raise UnauthorizedError(f"signature invalid ({relationship} of {signer})") from None


def _payload(token: str) -> dict[str, object]:
    parts = token.split(".")
    try:
        return _b64json(parts[1])
    except (ValueError, UnicodeError, IndexError):
        raise UnauthorizedError("malformed JWT") from None
