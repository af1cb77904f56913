"""OIDC bearer tokens for the management API (docs/security.md §3), beside `X-Api-Key`.

`OidcVerifier.verify(authorization)`, in order; every failure raises `UnauthorizedError` (the API
answers a generic 401) and logs the reason with `iss`/`kid`/`sub`, never the token:

1. `Bearer` scheme, token at most 8 KiB, compact JWS.
2. Header: `alg` in the configured allow-list (asymmetric algorithms only, so never `none` or
   `HS*`); `jku`, `x5u`, `jwk`, `x5c`, `crit` refused (keys come from our JWKS, never the token).
3. Unverified `iss` must be the configured issuer *before* any JWKS access, so foreign tokens
   cannot make us fetch.
4. Key by `kid` from the JWKS (a token without `kid` only if the JWKS has exactly one key). An
   unknown `kid` triggers one forced refresh of a fetched JWKS (at most once per 30 s) to follow
   key rotation at the IdP. Key type and curve must fit `alg`; a JWK `alg`/`use` must agree.
5. Signature (joserfc), then the claims (`connector.core.identity.access_tokens`): `iss`, `aud`,
   `exp`/`nbf`/`iat` with leeway, `sub`, optional scope and role.

The JWKS comes from a file (`StaticJwks`, read once at start) or a URL (`RemoteJwks`: fetched
through the SSRF-guarded `GuardedHttp`, no redirects, at most 256 KiB, parsed with the untrusted
JSON guards, cached for `jwks_cache_seconds`). When a refresh fails the previous key set is kept
(and retried after 30 s); without any key set the request fails with `UnavailableError` (503: the
caller did nothing wrong). Private keys, symmetric keys and RSA keys under 2048 bits in a JWKS are
ignored.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import extract_compact

from connector.core.clock import Clock
from connector.core.errors import ConnectorError, UnauthorizedError, UnavailableError
from connector.core.guards import parse_json
from connector.core.identity.access_tokens import AccessTokenRules, check_access_token
from connector.http.outbound import GuardedHttp
from connector.identity.tokens import MAX_TOKEN_BYTES
from connector.settings import OidcSettings

__all__ = [
    "JwkEntry",
    "JwksError",
    "OidcVerifier",
    "RemoteJwks",
    "StaticJwks",
    "load_jwks_file",
    "parse_jwks",
]

logger = logging.getLogger(__name__)

Monotonic = Callable[[], float]
PublicKey = RSAKey | ECKey | OKPKey

MAX_JWKS_BYTES: Final = 256 * 1024
MAX_JWKS_KEYS: Final = 100
MIN_RSA_BITS: Final = 2048
#: A forced refresh for an unknown `kid` happens at most this often.
REFRESH_INTERVAL_SECONDS: Final = 30.0
#: After a failed fetch: keep the old key set (or refuse fast) this long before trying again.
FAILURE_BACKOFF_SECONDS: Final = 30.0
_FORBIDDEN_HEADERS: Final = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})
#: alg -> (kty, crv) of the key it needs (crv None: RSA).
_KEY_FOR_ALG: Final[dict[str, tuple[str, str | None]]] = {
    **dict.fromkeys(("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"), ("RSA", None)),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", "Ed25519"),
}


class JwksError(Exception):
    """A JWKS could not be read, fetched or parsed (the message says why)."""


@dataclass(frozen=True, slots=True)
class JwkEntry:
    """One usable public signing key of the JWKS."""

    kid: str | None
    kty: str
    crv: str | None
    alg: str | None
    key: PublicKey


def _import(jwk: Mapping[str, object]) -> PublicKey:
    kty = jwk.get("kty")
    data = dict(jwk)
    if kty == "RSA":
        return RSAKey.import_key(data)  # type: ignore[arg-type]  # JWK dict of JSON values
    if kty == "EC":
        return ECKey.import_key(data)  # type: ignore[arg-type]
    if kty == "OKP":
        return OKPKey.import_key(data)  # type: ignore[arg-type]
    raise ValueError(f"unsupported key type {kty!r}")


def parse_jwks(document: object) -> tuple[JwkEntry, ...]:
    """The usable public signing keys of a JWKS document (others are skipped and logged).

    Raises:
        JwksError: not a JWKS, too many keys, or no usable key at all.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError("not a JWKS (an object with a 'keys' list)")
    raw_keys: list[object] = document["keys"]
    if len(raw_keys) > MAX_JWKS_KEYS:
        raise JwksError(f"JWKS has more than {MAX_JWKS_KEYS} keys")
    entries = []
    skipped: list[str] = []
    for index, jwk in enumerate(raw_keys):
        if not isinstance(jwk, dict):
            skipped.append(f"key {index}: not an object")
            continue
        kid, use, alg = jwk.get("kid"), jwk.get("use"), jwk.get("alg")
        why = None
        if jwk.get("kty") not in ("RSA", "EC", "OKP"):
            why = "not an asymmetric key"
        elif "d" in jwk or "p" in jwk:
            why = "a private key (publish public keys only)"
        elif use is not None and use != "sig":
            why = "not a signing key"
        elif not (kid is None or isinstance(kid, str)) or not (alg is None or isinstance(alg, str)):
            why = "kid or alg is not a string"
        if why is None:
            try:
                key = _import(jwk)
            except (JoseError, ValueError, TypeError):
                why = "cannot be imported"
            else:
                if isinstance(key, RSAKey) and key.raw_value.key_size < MIN_RSA_BITS:
                    why = f"RSA key under {MIN_RSA_BITS} bits"
        if why is not None:
            skipped.append(f"key {index} (kid {str(kid)[:64]!r}): {why}")
            continue
        crv = jwk.get("crv")
        entries.append(
            JwkEntry(
                kid=kid if isinstance(kid, str) else None,
                kty=str(jwk["kty"]),
                crv=crv if isinstance(crv, str) else None,
                alg=alg if isinstance(alg, str) else None,
                key=key,
            )
        )
    if not entries:
        raise JwksError("JWKS has no usable public signing key" + _listed(skipped))
    for reason in skipped:
        logger.warning("JWKS key ignored: %s", reason)
    return tuple(entries)


def _listed(reasons: list[str]) -> str:
    return f" ({'; '.join(reasons[:5])})" if reasons else ""


def load_jwks_file(path: Path) -> tuple[JwkEntry, ...]:
    """Read and parse a JWKS file.

    Raises:
        JwksError: unreadable, too large, not acceptable JSON, or no usable key.
    """
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_JWKS_BYTES + 1)
    except OSError as exc:
        raise JwksError(f"cannot read JWKS file {path}: {exc.strerror or exc}") from None
    try:
        document = parse_json(raw, max_bytes=MAX_JWKS_BYTES)
    except ConnectorError as exc:
        raise JwksError(f"JWKS file {path}: {exc.reasons[0]}") from None
    try:
        return parse_jwks(document)
    except JwksError as exc:
        raise JwksError(f"JWKS file {path}: {exc}") from None


class JwksSource(Protocol):
    async def keys(self, *, refresh: bool = False) -> Sequence[JwkEntry]:
        """The current key set; `refresh` asks for a new one (unknown `kid`), where possible."""
        ...


class StaticJwks:
    """Keys from a file, read once (at start)."""

    def __init__(self, entries: Sequence[JwkEntry]) -> None:
        self._entries = tuple(entries)

    @classmethod
    def from_file(cls, path: Path) -> StaticJwks:
        return cls(load_jwks_file(path))

    async def keys(self, *, refresh: bool = False) -> Sequence[JwkEntry]:
        return self._entries


class RemoteJwks:
    """Keys fetched from `url` through the guarded client and cached for `ttl` seconds."""

    def __init__(
        self,
        url: str,
        http: GuardedHttp,
        *,
        ttl: float,
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        self.url = url
        self._http = http
        self._ttl = ttl
        self._monotonic = monotonic
        self._entries: tuple[JwkEntry, ...] | None = None
        self._fresh_until = 0.0
        self._next_forced = 0.0
        self._failed_until = 0.0
        self._generation = 0
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def keys(self, *, refresh: bool = False) -> Sequence[JwkEntry]:
        now = self._monotonic()
        if self._entries is not None:
            if not refresh and now < self._fresh_until:
                return self._entries
            if refresh and now < self._next_forced:
                return self._entries
        elif now < self._failed_until:
            raise UnavailableError("the OIDC key set is unavailable")
        generation = self._generation
        async with self._lock:
            if self._generation != generation and self._entries is not None:
                return self._entries  # another request fetched meanwhile
            return await self._refresh()

    async def _refresh(self) -> tuple[JwkEntry, ...]:
        now = self._monotonic()
        self._next_forced = now + REFRESH_INTERVAL_SECONDS
        try:
            entries = await self._fetch()
        except JwksError as exc:
            self._failed_until = now + FAILURE_BACKOFF_SECONDS
            if self._entries is not None:
                logger.warning("JWKS refresh failed, keeping the previous keys: %s", exc)
                self._fresh_until = now + FAILURE_BACKOFF_SECONDS
                return self._entries
            logger.error("JWKS %s unavailable: %s", self.url, exc)
            raise UnavailableError("the OIDC key set is unavailable") from None
        self._entries = entries
        self._fresh_until = now + self._ttl
        self._generation += 1
        return entries

    async def _fetch(self) -> tuple[JwkEntry, ...]:
        self.fetches += 1
        try:
            response = await self._http.request(
                "GET",
                self.url,
                headers={"Accept": "application/jwk-set+json, application/json"},
                follow_redirects=False,
                max_bytes=MAX_JWKS_BYTES,
            )
        except ConnectorError as exc:  # refused by the SSRF guard, or too large
            raise JwksError(f"fetch refused: {exc.reasons[0]}") from None
        except httpx.HTTPError as exc:
            raise JwksError(f"fetch failed: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise JwksError(f"fetch returned {response.status_code}")
        try:
            document = parse_json(response.content, max_bytes=MAX_JWKS_BYTES)
        except ConnectorError as exc:
            raise JwksError(f"not acceptable JSON: {exc.reasons[0]}") from None
        return parse_jwks(document)


def _b64json(segment: str) -> dict[str, object]:
    padded = segment + "=" * (-len(segment) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _select(entries: Sequence[JwkEntry], kid: str | None) -> JwkEntry | None:
    if kid is None:
        return entries[0] if len(entries) == 1 else None
    return next((e for e in entries if e.kid == kid), None)


class OidcVerifier:
    """Verifies `Authorization: Bearer <JWT>` for the management API (module docstring)."""

    def __init__(
        self,
        rules: AccessTokenRules,
        algorithms: Sequence[str],
        source: JwksSource,
        clock: Clock,
        *,
        max_token_bytes: int = MAX_TOKEN_BYTES,
    ) -> None:
        unknown = [a for a in algorithms if a not in _KEY_FOR_ALG]
        if unknown or not algorithms:
            raise ValueError(f"unsupported algorithms {unknown}")
        self.rules = rules
        self.algorithms = frozenset(algorithms)
        self.source = source
        self._clock = clock
        self._max_token_bytes = max_token_bytes

    @classmethod
    def from_settings(
        cls, settings: OidcSettings, http: GuardedHttp | None, clock: Clock
    ) -> OidcVerifier:
        """Raises: JwksError (jwks_path unreadable or without usable keys)."""
        source: JwksSource
        if settings.jwks_path is not None:
            source = StaticJwks.from_file(settings.jwks_path)
        else:
            if http is None or settings.jwks_url is None:  # pragma: no cover - settings validate
                raise ValueError("jwks_url needs the guarded HTTP client")
            source = RemoteJwks(settings.jwks_url, http, ttl=settings.jwks_cache_seconds)
        rules = AccessTokenRules(
            issuer=settings.issuer,
            audience=settings.audience,
            leeway=settings.leeway_seconds,
            required_scope=settings.required_scope,
            required_role=settings.required_role,
            roles_claim=settings.roles_claim,
        )
        return cls(rules, settings.algorithms, source, clock)

    async def verify(self, authorization: str | None) -> str:
        """The token's subject (`sub`).

        Raises:
            UnauthorizedError: any failure (the reason is logged, the token never).
            UnavailableError: no key set could be obtained from `jwks_url`.
        """
        context: dict[str, object] = {}
        try:
            return await self._verify(authorization, context)
        except UnauthorizedError as exc:
            # In the message (the JSON log keeps it) and as extras; the token is never logged.
            logger.info(
                "management bearer token rejected: %s (iss=%.200r kid=%.100r sub=%.100r)",
                exc.reasons[0],
                context.get("iss"),
                context.get("kid"),
                context.get("sub"),
                extra={"reason": exc.reasons[0], **context},
            )
            raise

    async def _verify(self, header: str | None, context: dict[str, object]) -> str:
        if not header:
            raise UnauthorizedError("missing Authorization header")
        if len(header) > self._max_token_bytes:
            raise UnauthorizedError("Authorization header too large")
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise UnauthorizedError("Authorization is not a Bearer token")
        parts = token.split(".")
        if len(parts) != 3:
            raise UnauthorizedError("token is not a compact JWS")
        try:
            protected = extract_compact(token.encode("ascii")).protected
            unverified = _b64json(parts[1])
        except (JoseError, ValueError, UnicodeError):
            raise UnauthorizedError("malformed token") from None
        alg = protected.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise UnauthorizedError("token algorithm not allowed")
        if _FORBIDDEN_HEADERS & protected.keys():
            raise UnauthorizedError("token header carries a forbidden parameter")
        issuer = unverified.get("iss")
        context["iss"] = issuer if isinstance(issuer, str) else None
        if issuer != self.rules.issuer:
            raise UnauthorizedError("claim 'iss' is not the configured issuer")
        kid = protected.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise UnauthorizedError("kid is not a string")
        context["kid"] = kid

        entry = _select(await self.source.keys(), kid)
        if entry is None:
            entry = _select(await self.source.keys(refresh=True), kid)
        if entry is None:
            raise UnauthorizedError("no key for the token's kid")
        kty, crv = _KEY_FOR_ALG[alg]
        if entry.kty != kty or (crv is not None and entry.crv != crv):
            raise UnauthorizedError("token algorithm does not match the key type")
        if entry.alg is not None and entry.alg != alg:
            raise UnauthorizedError("token algorithm differs from the key's alg")
        try:
            verified = jwt.decode(token, entry.key, algorithms=[alg])
        except (JoseError, ValueError):
            raise UnauthorizedError("token signature invalid") from None
        claims = dict(verified.claims)
        if isinstance(claims.get("sub"), str):
            context["sub"] = claims["sub"]
        return check_access_token(claims, self.rules, now=self._clock())
