"""did:web: our DID document, DID -> URL mapping, key selection, guarded cached resolution
(identity.md §2; did-method-web § Read).

* `did_web(host, port, path)` builds our DID from configuration (never from the `Host` header).
* `build_did_document` lists every published key as `JsonWebKey2020` under `authentication`,
  `assertionMethod` and `capabilityInvocation`.
* `did_web_to_url` follows the spec strictly: only the host segment is percent-decoded and only
  `%3A` (the port colon); path segments are plain `[A-Za-z0-9._~-]+`, never `.`/`..`.
* `DidResolver` fetches through `GuardedHttp` (SSRF guard, no redirects, size cap), checks the
  document `id`, and caches documents in Redis (`connector:{participant}:did:{did}`, TTL) plus a
  short negative cache. Redis trouble degrades to fetching (Redis is not a source of truth here).
  A forced refresh (the verifier's, on an unknown `kid` or a signature the cached key does not
  verify) fetches at most once per `refresh_interval` per DID
  (`identity.did_refresh_interval_seconds`).
  Each process also keeps the documents it read for at most `LOCAL_TTL_SECONDS` (and never past
  the Redis entry's own expiry), so a steady stream of tokens from one peer reads Redis once
  every few seconds rather than once per request (decision 0020). A forced refresh skips that
  copy: it reads Redis (another replica may have refetched) or fetches, and replaces the copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from connector.core.errors import ConnectorError, UnauthorizedError
from connector.core.guards import parse_json
from connector.http.outbound import GuardedHttp
from connector.identity.keys import KeyEntry

__all__ = [
    "DID_CONTEXTS",
    "RELATIONSHIPS",
    "DidDocumentSource",
    "DidResolutionError",
    "DidResolver",
    "InvalidDidError",
    "MemoryDidSource",
    "UnknownKeyError",
    "build_did_document",
    "did_document_path",
    "did_web",
    "did_web_to_url",
    "select_key",
]

logger = logging.getLogger(__name__)

DID_CONTEXTS: Final = (
    "https://www.w3.org/ns/did/v1",
    "https://w3id.org/security/suites/jws-2020/v1",
)
RELATIONSHIPS: Final = ("authentication", "assertionMethod", "capabilityInvocation")
_VM_TYPES: Final = frozenset({"JsonWebKey2020", "JsonWebKey"})
_PRIVATE_JWK_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "k", "oth"})
_SUPPORTED_KEYS: Final = frozenset({("EC", "P-256"), ("OKP", "Ed25519")})
_HOST_RE: Final = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::(\d{1,5}))?$")
_SEGMENT_RE: Final = re.compile(r"^[A-Za-z0-9._~-]+$")
_MAX_VERIFICATION_METHODS: Final = 64
_DOC_CONTENT_TYPES: Final = ("application/did+json", "application/json", "application/did+ld+json")
#: How long a process uses a document it read before reading Redis again. Bounds how late a
#: document another replica refetched (say, after the peer withdrew a key) reaches this one.
LOCAL_TTL_SECONDS: Final = 5.0
_LOCAL_MAX: Final = 4096  # documents kept per process before the expired ones are dropped
#: In the last this share of its time a copy is read again from Redis in the background.
_READ_AHEAD: Final = 0.2


class InvalidDidError(UnauthorizedError):
    """A DID that is not an acceptable did:web identifier."""


class DidResolutionError(UnauthorizedError):
    """The DID document could not be fetched or is not acceptable."""


class UnknownKeyError(UnauthorizedError):
    """The token's `kid` is not in the (possibly stale) DID document."""


class DidDocumentSource(Protocol):
    async def resolve(self, did: str, *, force_refresh: bool = False) -> dict[str, object]: ...


def did_web(host: str, port: int | None = None, path: Sequence[str] = ()) -> str:
    """Our DID, e.g. `did_web("conn.example", 8443)` -> `did:web:conn.example%3A8443`."""
    ident = host.lower() if port is None else f"{host.lower()}%3A{port}"
    did = ":".join(["did:web", ident, *path])
    did_web_to_url(did, allow_http=True, allow_ip=True)  # validates the pieces
    return did


def _split(did: str, *, allow_ip: bool) -> tuple[str, list[str]]:
    if not did.startswith("did:web:"):
        raise InvalidDidError("not a did:web DID")
    msid = did[len("did:web:") :]
    if not msid or any(c in msid for c in "?#/") or msid.endswith(":"):
        raise InvalidDidError("malformed did:web identifier")
    host_part, *segments = msid.split(":")
    host = re.sub("%3[Aa]", ":", host_part)
    match = _HOST_RE.match(host)
    if "%" in host or match is None:
        raise InvalidDidError("malformed did:web host")
    if match.group(1) is not None and not 0 < int(match.group(1)) < 65536:
        raise InvalidDidError("invalid did:web port")
    hostname = host.split(":", 1)[0]
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        pass
    else:
        if not allow_ip:
            raise InvalidDidError("did:web must not use an IP address")
    for segment in segments:
        if segment in (".", "..") or not _SEGMENT_RE.match(segment):
            raise InvalidDidError("malformed did:web path segment")
    return host, segments


def did_document_path(did: str) -> str:
    """URL path of the document: `/.well-known/did.json` or `/<seg>/.../did.json`."""
    _host, segments = _split(did, allow_ip=True)
    return "/" + "/".join([*segments, "did.json"] if segments else [".well-known", "did.json"])


def did_web_to_url(did: str, *, allow_http: bool = False, allow_ip: bool = False) -> str:
    """Map a did:web DID to its document URL (https; `http` only with `allow_http`, for tests).

    Raises:
        InvalidDidError: the DID is malformed or uses a forbidden form.
    """
    host, _segments = _split(did, allow_ip=allow_ip)
    scheme = "http" if allow_http else "https"
    return f"{scheme}://{host}{did_document_path(did)}"


def build_did_document(
    did: str,
    keys: Sequence[KeyEntry],
    services: Sequence[Mapping[str, object]] = (),
) -> dict[str, Any]:
    """Our DID document: every key as JsonWebKey2020, referenced by all three relationships."""
    ids = [f"{did}#{entry.key_id}" for entry in keys]
    document: dict[str, Any] = {
        "@context": list(DID_CONTEXTS),
        "id": did,
        "verificationMethod": [
            {
                "id": vm_id,
                "type": "JsonWebKey2020",
                "controller": did,
                "publicKeyJwk": e.public_jwk(),
            }
            for vm_id, e in zip(ids, keys, strict=True)
        ],
    }
    for relationship in RELATIONSHIPS:
        document[relationship] = list(ids)
    if services:
        document["service"] = [dict(s) for s in services]
    return document


def _absolute(ref: str, did: str) -> str:
    return did + ref if ref.startswith("#") else ref


def select_key(
    document: Mapping[str, object],
    did: str,
    kid: str | None,
    *,
    relationship: str = "capabilityInvocation",
    require_relationship: bool = True,
) -> tuple[str, dict[str, object]]:
    """Pick the verification method for a token per DCP base § Validating Self-Issued ID Tokens.

    Returns `(absolute verification method id, public JWK)`.

    Raises:
        UnknownKeyError: `kid` names no method of this DID (the document may be stale).
        DidResolutionError: anything else wrong with the document or the method.
    """
    if document.get("id") != did:
        raise DidResolutionError("DID document id does not match the DID")
    raw_vms = document.get("verificationMethod", [])
    raw_rel = document.get(relationship, [])
    if not isinstance(raw_vms, list) or not isinstance(raw_rel, list):
        raise DidResolutionError("malformed DID document")
    methods: dict[str, Mapping[str, object]] = {}
    related: set[str] = set()
    for vm in raw_vms:
        if isinstance(vm, dict) and isinstance(vm.get("id"), str):
            methods.setdefault(_absolute(vm["id"], did), vm)
    for ref in raw_rel:
        if isinstance(ref, str):
            related.add(_absolute(ref, did))
        elif isinstance(ref, dict) and isinstance(ref.get("id"), str):
            vm_id = _absolute(ref["id"], did)
            methods.setdefault(vm_id, ref)
            related.add(vm_id)
    # Never accept a method that belongs to another DID (key confusion, did:web § Security).
    methods = {k: v for k, v in methods.items() if k.startswith(did + "#")}

    if kid is not None:
        vm_id = _absolute(kid, did)
        if vm_id not in methods:
            raise UnknownKeyError("signing key not found in the DID document")
    else:
        candidates = [m for m in methods if m in related] if require_relationship else [*methods]
        if len(candidates) != 1:
            raise DidResolutionError("token has no kid and the DID does not have exactly one key")
        vm_id = candidates[0]
    if require_relationship and vm_id not in related:
        raise DidResolutionError(f"signing key is not listed under {relationship}")

    vm = methods[vm_id]
    jwk = vm.get("publicKeyJwk")
    if vm.get("type") not in _VM_TYPES or not isinstance(jwk, dict):
        raise DidResolutionError("verification method is not a JsonWebKey2020 with publicKeyJwk")
    if _PRIVATE_JWK_MEMBERS & jwk.keys():
        raise DidResolutionError("verification method publishes private key material")
    if (jwk.get("kty"), jwk.get("crv")) not in _SUPPORTED_KEYS:
        raise DidResolutionError("unsupported key type")
    return vm_id, dict(jwk)


class MemoryDidSource:
    """In-memory DID documents (unit tests, and our own DID without a network round trip)."""

    def __init__(self, documents: Mapping[str, Mapping[str, object]] | None = None) -> None:
        self.documents: dict[str, dict[str, object]] = {
            k: dict(v) for k, v in (documents or {}).items()
        }
        self.calls: list[tuple[str, bool]] = []

    async def resolve(self, did: str, *, force_refresh: bool = False) -> dict[str, object]:
        self.calls.append((did, force_refresh))
        document = self.documents.get(did)
        if document is None:
            raise DidResolutionError("DID document not found")
        return document


class DidResolver:
    """Guarded, cached did:web resolver (identity.md §2.4)."""

    def __init__(
        self,
        http: GuardedHttp,
        cache: Redis | None,
        ttl: int = 300,
        *,
        participant: str,
        negative_ttl: int = 30,
        refresh_interval: int = 30,
        max_bytes: int = 256 * 1024,
        allow_http: bool = False,
        allow_ip: bool = False,
        local_ttl: float = LOCAL_TTL_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._cache = cache
        self._ttl = ttl
        self._participant = participant
        self._negative_ttl = negative_ttl
        self._refresh_interval = refresh_interval
        self._max_bytes = max_bytes
        self._allow_http = allow_http
        self._allow_ip = allow_ip
        self._local_ttl = local_ttl
        self._monotonic = monotonic
        self._local: dict[str, tuple[float, dict[str, object]]] = {}
        self._reading: dict[str, asyncio.Future[dict[str, object]]] = {}
        self._reading_ahead: dict[str, asyncio.Future[None]] = {}

    def cache_key(self, did: str) -> str:
        return f"connector:{self._participant}:did:{did}"

    def _miss_key(self, did: str) -> str:
        return f"connector:{self._participant}:did-miss:{did}"

    def _refresh_key(self, did: str) -> str:
        return f"connector:{self._participant}:did-refresh:{did}"

    async def resolve(self, did: str, *, force_refresh: bool = False) -> dict[str, object]:
        """The DID document of `did`, from cache or fetched.

        `force_refresh` (used when a `kid` is unknown or its key does not verify a signature,
        e.g. after the peer rotated keys) bypasses the cache at most once per `refresh_interval`
        per DID; a fetch on a cache miss counts as that refresh (the document is fresh).

        Raises:
            InvalidDidError: the DID is not acceptable.
            DidResolutionError: fetching or validating the document failed (also negative-cached).
        """
        if not force_refresh:
            local = self._local.get(did)
            if local is not None:
                left = local[0] - self._monotonic()
                if left > 0:
                    if left < self._local_ttl * _READ_AHEAD:
                        self._read_ahead(did)
                    return local[1]
            # One read for every request of this DID that finds no copy (decision 0026).
            pending = self._reading.get(did)
            if pending is None:
                pending = asyncio.ensure_future(self._resolve(did, force_refresh=False))
                self._reading[did] = pending
                pending.add_done_callback(lambda _: self._reading.pop(did, None))
            return await asyncio.shield(pending)
        return await self._resolve(did, force_refresh=True)

    def _read_ahead(self, did: str) -> None:
        """Read Redis again for `did` in the background while its copy is still valid, so no
        request waits when the copy expires. Only Redis: a fetch stays on a request's path."""
        if did in self._reading_ahead:
            return

        async def read() -> None:
            # Keeps a fresh copy when Redis has one; without one (or with a recently failed
            # resolution) the copy expires and the next request resolves as usual.
            with contextlib.suppress(DidResolutionError, ValueError):
                await self._cached(did)

        task = asyncio.ensure_future(read())
        self._reading_ahead[did] = task
        task.add_done_callback(lambda _: self._reading_ahead.pop(did, None))

    async def _resolve(self, did: str, *, force_refresh: bool) -> dict[str, object]:
        url = did_web_to_url(did, allow_http=self._allow_http, allow_ip=self._allow_ip)
        if force_refresh and not await self._may_refresh(did):
            force_refresh = False
        if not force_refresh:
            cached = await self._cached(did)
            if cached is not None:
                return cached
            await self._may_refresh(did)  # fetching now: no forced refresh right after it
        try:
            document = await self._fetch(did, url)
        except DidResolutionError as exc:
            await self._cache_set(self._miss_key(did), exc.reasons[0], self._negative_ttl)
            raise
        await self._cache_set(self.cache_key(did), json.dumps(document), self._ttl)
        if self._ttl > 0:  # a TTL of 0 asks for a fetch every time
            self._keep(did, document, float(self._ttl))
        return document

    def _keep(self, did: str, document: dict[str, object], remaining: float) -> None:
        """Keep `document` in process until the earlier of `local_ttl` and `remaining` seconds."""
        ttl = min(self._local_ttl, remaining) if remaining > 0 else self._local_ttl
        if ttl <= 0:
            return
        now = self._monotonic()
        if len(self._local) >= _LOCAL_MAX:
            self._local = {k: v for k, v in self._local.items() if v[0] > now}
        if len(self._local) < _LOCAL_MAX:
            self._local[did] = (now + ttl, document)

    async def _may_refresh(self, did: str) -> bool:
        if self._cache is None:
            return True
        try:
            return bool(
                await self._cache.set(
                    self._refresh_key(did), b"1", nx=True, ex=self._refresh_interval
                )
            )
        except (RedisError, OSError):
            return False

    async def _cached(self, did: str) -> dict[str, object] | None:
        if self._cache is None:
            return None
        try:
            async with self._cache.pipeline(transaction=False) as pipe:
                pipe.mget([self.cache_key(did), self._miss_key(did)])
                pipe.pttl(self.cache_key(did))
                (raw, miss), pttl = await pipe.execute()
        except (RedisError, OSError) as exc:
            logger.warning("DID cache unavailable", extra={"error": type(exc).__name__})
            return None
        if raw is not None:
            value = json.loads(raw)
            if isinstance(value, dict):
                self._keep(did, value, int(pttl) / 1000 if int(pttl) > 0 else 0.0)
                return value
        if miss is not None:
            raise DidResolutionError("DID document recently failed to resolve")
        return None

    async def _cache_set(self, key: str, value: str, ttl: int) -> None:
        if self._cache is None or ttl <= 0:
            return
        try:
            await self._cache.set(key, value, ex=ttl)
        except (RedisError, OSError) as exc:
            logger.warning("DID cache unavailable", extra={"error": type(exc).__name__})

    async def _fetch(self, did: str, url: str) -> dict[str, object]:
        try:
            response = await self._http.request(
                "GET",
                url,
                headers={"Accept": "application/did+json, application/json"},
                follow_redirects=False,
                max_bytes=self._max_bytes,
            )
        except ConnectorError as exc:
            logger.info("DID resolution refused", extra={"did": did, "reason": exc.reasons[0]})
            raise DidResolutionError("DID document fetch refused") from None
        except httpx.HTTPError as exc:
            logger.info("DID resolution failed", extra={"did": did, "error": type(exc).__name__})
            raise DidResolutionError("DID document fetch failed") from None
        if response.status_code != 200:
            raise DidResolutionError(f"DID document fetch returned {response.status_code}")
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in _DOC_CONTENT_TYPES:
            raise DidResolutionError("DID document has an unexpected content type")
        try:
            document = parse_json(response.content, max_bytes=self._max_bytes)
        except ConnectorError:
            raise DidResolutionError("DID document is not acceptable JSON") from None
        if not isinstance(document, dict):
            raise DidResolutionError("DID document is not a JSON object")
        if document.get("id") != did:
            raise DidResolutionError("DID document id does not match the DID")
        vms = document.get("verificationMethod", [])
        if not isinstance(vms, list) or len(vms) > _MAX_VERIFICATION_METHODS:
            raise DidResolutionError("DID document has too many verification methods")
        return document
