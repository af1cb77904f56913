"""Data plane access tokens (identity.md §3.5): opaque, stored hashed, short-lived, refreshable.

- `issue` mints an access token and a refresh token for a flow; only sha256 hashes are stored.
- `resolve` admits an access token: Redis cache first (TTL), then Postgres; expired, unknown or
  revoked -> refused. Revocation deletes the rows and the cache entries, so it takes effect on
  the next request.
- `refresh` rotates: the refresh token is single use (an atomic DELETE decides the one winner);
  concurrent refreshes with the same token within the grace window get the winner's result
  (single-flight); the previous access token stays valid for the grace window only. Reusing a
  rotated refresh token after that revokes the flow's tokens.
- The winner's result is kept in Redis for the grace window sealed (JWE `dir` + A256GCM) with a
  key derived from the spent refresh token: only its holder can read the new pair, Redis never
  holds a usable token. It is stored before the winner commits, so a refresh that finds the old
  token gone also finds the answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from connector.core.clock import Clock
from connector.core.errors import ForbiddenError, UnauthorizedError
from connector.runtime.clock import utc_now
from connector.settings import DataPlaneSettings
from connector.stores import dataplane as store

if TYPE_CHECKING:
    from joserfc.jwk import OctKey

__all__ = ["IssuedTokens", "TokenService", "token_hash"]

ACCESS: Final = "access"
REFRESH: Final = "refresh"
_KEY_ROOT: Final = "connector:dataplane"
_SEAL_LABEL: Final = b"connector:dataplane:refresh-answer"
_SEAL_HEADER: Final = {"alg": "dir", "enc": "A256GCM"}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _seal(refresh_token: str, plaintext: str) -> str:
    # Imported here, not at the top: only a refresh seals, and joserfc brings cryptography's
    # OpenSSL bindings (~10 MiB RSS) into a data plane that otherwise never needs them.
    from joserfc import jwe

    return jwe.encrypt_compact(_SEAL_HEADER, plaintext, _sealing_key(refresh_token))


def _unseal(refresh_token: str, sealed: bytes | str) -> bytes | None:
    """The plaintext, or None when `sealed` was not sealed with this token's key."""
    from joserfc import jwe
    from joserfc.errors import JoseError

    try:
        opened = jwe.decrypt_compact(
            sealed, _sealing_key(refresh_token), algorithms=list(_SEAL_HEADER.values())
        )
    except (JoseError, ValueError):
        return None
    return opened.plaintext or b""


def _sealing_key(refresh_token: str) -> OctKey:
    from joserfc.jwk import OctKey

    # HMAC under a fixed label: never equal to sha256(token), which names the Redis key.
    return OctKey.import_key(hmac.new(refresh_token.encode(), _SEAL_LABEL, hashlib.sha256).digest())


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_at: datetime

    def expires_in(self, now: datetime) -> int:
        return max(0, int((self.expires_at - now).total_seconds()))

    def to_json(self) -> str:
        return json.dumps([self.access_token, self.refresh_token, self.expires_at.isoformat()])

    @classmethod
    def from_json(cls, raw: bytes | str) -> IssuedTokens:
        access, refresh, at = json.loads(raw)
        return cls(access, refresh, datetime.fromisoformat(at))


class TokenService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: Redis,
        settings: DataPlaneSettings,
        participant_id: str,
        clock: Clock = utc_now,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._ttl = timedelta(seconds=settings.token_ttl_seconds)
        self._grace = timedelta(seconds=settings.token_grace_seconds)
        self._cache_seconds = settings.token_cache_seconds
        self._prefix = f"{_KEY_ROOT}:{participant_id}"
        self._clock = clock

    def _token_key(self, digest: str) -> str:
        return f"{self._prefix}:token:{digest}"

    def _refresh_key(self, digest: str) -> str:
        return f"{self._prefix}:refreshed:{digest}"

    async def issue(self, flow_id: str) -> IssuedTokens:
        async with self._pool.acquire() as conn, conn.transaction():
            return await self._insert_pair(conn, flow_id, self._clock())

    async def _insert_pair(
        self, conn: asyncpg.Connection, flow_id: str, now: datetime
    ) -> IssuedTokens:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires = now + self._ttl
        await store.insert_token(conn, token_hash(access), flow_id, ACCESS, expires)
        # The refresh token outlives access tokens: it is how a consumer gets the next one.
        await store.insert_token(conn, token_hash(refresh), flow_id, REFRESH, now + 24 * self._ttl)
        return IssuedTokens(access, refresh, expires)

    async def resolve(self, authorization: str | None) -> str:
        """The flow id an access token is bound to.

        Raises:
            UnauthorizedError: no token (401).
            ForbiddenError: unknown, expired, revoked, or not an access token (403).
        """
        token = (authorization or "").strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if not token:
            raise UnauthorizedError("missing access token")
        digest = token_hash(token)
        now = self._clock()
        cached = await self._cache_get(digest)
        if cached is not None:
            flow_id, expires_at = cached
        else:
            row = await store.lookup_token(self._pool, digest)
            if row is None or row.kind != ACCESS or row.flow_state != "STARTED":
                raise ForbiddenError("invalid or revoked access token")
            flow_id, expires_at = row.flow_id, row.expires_at
            await self._cache_put(digest, flow_id, expires_at, now)
        if expires_at <= now:
            raise ForbiddenError("access token expired")
        return flow_id

    async def revoke(self, flow_id: str) -> None:
        """Delete every token of the flow, in Postgres and in the cache."""
        digests = await store.revoke(self._pool, flow_id)
        await self._evict(digests)

    async def refresh(self, refresh_token: str) -> IssuedTokens:
        """Rotate a refresh token (see the module docstring).

        Raises:
            ForbiddenError: unknown, expired or reused refresh token, or flow not STARTED.
        """
        digest = token_hash(refresh_token)
        now = self._clock()
        row = await store.lookup_token(self._pool, digest)
        if row is not None and row.kind == REFRESH:
            if row.flow_state != "STARTED" or row.expires_at <= now:
                raise ForbiddenError("refresh token expired or transfer not started")
            issued: IssuedTokens | None = None
            async with self._pool.acquire() as conn, conn.transaction():
                # A concurrent DELETE of the same row waits here until this one commits.
                won = await conn.fetchval(
                    "DELETE FROM dataplane_tokens WHERE token_hash = $1 AND kind = $2 "
                    "RETURNING flow_id",
                    digest,
                    REFRESH,
                )
                if won is not None:
                    shortened = await store.shorten(conn, row.flow_id, ACCESS, now + self._grace)
                    issued = await self._insert_pair(conn, row.flow_id, now)
                    # Before the commit: whoever sees the old token gone finds the answer.
                    await self._remember(refresh_token, issued, row.flow_id)
            if issued is not None:
                await self._evict(shortened)
                return issued
        # Lost the race, or a replay: the winner's answer within the grace window.
        for _ in range(20):
            previous = await self._recall(refresh_token)
            if previous is not None:
                return previous
            if row is None:
                break
            await asyncio.sleep(0.05)
        if row is None:
            flow_id = await self._rotated_flow(digest)
            if flow_id is not None:
                await self.revoke(flow_id)  # reuse of a rotated refresh token: end the chain
        raise ForbiddenError("invalid refresh token")

    # --- cache ------------------------------------------------------------------------------

    async def _cache_get(self, digest: str) -> tuple[str, datetime] | None:
        if self._cache_seconds <= 0:
            return None
        try:
            raw = await self._redis.get(self._token_key(digest))
        except RedisError:
            return None
        if raw is None:
            return None
        flow_id, at = json.loads(raw)
        return flow_id, datetime.fromisoformat(at)

    async def _cache_put(
        self, digest: str, flow_id: str, expires_at: datetime, now: datetime
    ) -> None:
        ttl = min(self._cache_seconds, int((expires_at - now).total_seconds()))
        if ttl <= 0:
            return
        try:
            await self._redis.set(
                self._token_key(digest), json.dumps([flow_id, expires_at.isoformat()]), ex=ttl
            )
        except RedisError:
            return

    async def _evict(self, digests: list[str]) -> None:
        if not digests:
            return
        # Revocation must not depend on the cache being reachable: the rows are gone already,
        # and a cache entry outlives them at most token_cache_seconds. Retry once anyway.
        for _ in range(2):
            try:
                await self._redis.delete(*(self._token_key(d) for d in digests))
                return
            except RedisError:
                await asyncio.sleep(0.05)

    async def _remember(self, refresh_token: str, issued: IssuedTokens, flow_id: str) -> None:
        digest = token_hash(refresh_token)
        seconds = max(1, int(self._grace.total_seconds()))
        sealed = _seal(refresh_token, issued.to_json())
        try:
            pipe = self._redis.pipeline()
            pipe.set(self._refresh_key(digest), sealed, ex=seconds)
            pipe.set(
                f"{self._refresh_key(digest)}:flow", flow_id, ex=24 * int(self._ttl.total_seconds())
            )
            await pipe.execute()
        except RedisError:
            return

    async def _recall(self, refresh_token: str) -> IssuedTokens | None:
        try:
            raw = await self._redis.get(self._refresh_key(token_hash(refresh_token)))
        except RedisError:
            return None
        if raw is None:
            return None
        plaintext = _unseal(refresh_token, raw)
        if plaintext is None:  # not sealed with this token's key: no answer
            return None
        try:
            return IssuedTokens.from_json(plaintext)
        except ValueError:
            return None

    async def _rotated_flow(self, digest: str) -> str | None:
        try:
            raw = await self._redis.get(f"{self._refresh_key(digest)}:flow")
        except RedisError:
            return None
        if not raw:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)
