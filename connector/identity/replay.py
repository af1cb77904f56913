"""Replay protection for self-issued tokens: a Redis set of seen `jti`s (identity.md §6.2).

Each accepted token claims `connector:{participant}:jti:{sha256(iss, jti)}` with `SET NX EX` until
`exp + leeway`; a second claim of the same key means a replay. The key hashes issuer and jti so two
issuers cannot burn each other's ids and attacker-chosen strings never become raw key material.

Fails CLOSED: if Redis errors, the request is refused with `UnavailableError` (503: the caller did
nothing wrong and may retry; accepting would open a replay window). STYLE.md §10 makes this the one
Redis use that does not degrade to "miss".
"""

from __future__ import annotations

import hashlib
import logging
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from connector.core.errors import UnauthorizedError, UnavailableError

__all__ = ["MemoryReplayStore", "RedisReplayStore", "ReplayStore", "jti_key"]

logger = logging.getLogger(__name__)


class ReplayStore(Protocol):
    async def claim(self, issuer: str, jti: str, *, ttl_seconds: int) -> None:
        """Record `jti` of `issuer` for `ttl_seconds`.

        Raises:
            UnauthorizedError: the jti was seen before (replay).
            UnavailableError: the store cannot be reached (fail closed).
        """
        ...


def jti_key(participant: str, issuer: str, jti: str) -> str:
    digest = hashlib.sha256(f"{issuer}\x00{jti}".encode()).hexdigest()
    return f"connector:{participant}:jti:{digest}"


class RedisReplayStore:
    """Shared replay set across API replicas."""

    def __init__(self, redis: Redis, *, participant: str) -> None:
        self._redis = redis
        self._participant = participant

    async def claim(self, issuer: str, jti: str, *, ttl_seconds: int) -> None:
        key = jti_key(self._participant, issuer, jti)
        try:
            stored = await self._redis.set(key, b"1", nx=True, ex=max(1, ttl_seconds))
        except (RedisError, OSError) as exc:
            logger.error("jti replay store unavailable", extra={"error": type(exc).__name__})
            raise UnavailableError("replay protection store unavailable") from None
        if not stored:
            raise UnauthorizedError("token replayed (jti already used)")


class MemoryReplayStore:
    """In-process replay set for unit tests (no expiry: tests are short)."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()

    async def claim(self, issuer: str, jti: str, *, ttl_seconds: int) -> None:
        if (issuer, jti) in self._seen:
            raise UnauthorizedError("token replayed (jti already used)")
        self._seen.add((issuer, jti))
