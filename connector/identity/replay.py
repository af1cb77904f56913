"""Replay protection for self-issued tokens: a Redis set of seen `jti`s (identity.md §6.2).

Each accepted token claims `connector:{participant}:jti:{sha256(iss, jti)}` with `SET NX EX` until
`exp + leeway`; a second claim of the same key means a replay. The key hashes issuer and jti so two
issuers cannot burn each other's ids and attacker-chosen strings never become raw key material.
Redis is the one place that decides, so every API replica sharing it refuses a token another
replica already accepted.

Claims travel in batches: a claim joins the batch being gathered and waits for its answer, and
one task sends each batch as one command (one round trip for all requests that arrived while the
previous batch was on its way): a Lua script that makes the `SET NX EX` of every key of the batch
in Redis and answers which keys were new. One command instead of a pipeline of one command per
claim, because redis-py's packing of each command cost more CPU than the claim's share of the
round trip (decision 0026). A token is accepted only after Redis answered that its key was
new; batching changes how many round trips there are, not what a request waits for. A round trip
per request cost more than half of the secure catalog's throughput (decision 0020): the awaits,
not the CPU, queue the other requests behind it (decision 0007).

Fails CLOSED: if Redis errors, every claim of that batch is refused with `UnavailableError` (503:
the caller did nothing wrong and may retry; accepting would open a replay window). STYLE.md §10
makes this the one Redis use that does not degrade to "miss".
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Final, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from connector.core.errors import UnauthorizedError, UnavailableError

__all__ = ["MAX_BATCH", "MemoryReplayStore", "RedisReplayStore", "ReplayStore", "jti_key"]

logger = logging.getLogger(__name__)

#: Claims per batch; a longer queue is sent as several batches one after the other.
MAX_BATCH: Final = 512

#: KEYS: the batch's jti keys; ARGV: their TTLs in seconds. Answers 1 for a key that was new (and
#: is now set), 0 for one already there (a replay), in KEYS order.
CLAIM_SCRIPT: Final = """
local seen = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, '1', 'NX', 'EX', ARGV[i]) then seen[i] = 1 else seen[i] = 0 end
end
return seen
"""


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


_Claim = tuple[bytes, int, "asyncio.Future[bool]"]


class RedisReplayStore:
    """Shared replay set across API replicas, claims sent in batches (see the module docstring)."""

    def __init__(self, redis: Redis, *, participant: str, max_batch: int = MAX_BATCH) -> None:
        self._redis = redis
        self._participant = participant
        self._max_batch = max_batch
        self._queue: list[_Claim] = []
        self._sender: asyncio.Task[None] | None = None
        self._script = redis.register_script(CLAIM_SCRIPT)
        #: Round trips made (batches sent), for tests and the benchmark's notes.
        self.batches = 0

    async def claim(self, issuer: str, jti: str, *, ttl_seconds: int) -> None:
        key = jti_key(self._participant, issuer, jti).encode()
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bool] = loop.create_future()
        self._queue.append((key, max(1, ttl_seconds), answer))
        sender = self._sender
        if sender is None or sender.done() or sender.get_loop() is not loop:
            self._sender = loop.create_task(self._send_batches())
        if not await answer:
            raise UnauthorizedError("token replayed (jti already used)")

    async def _send_batches(self) -> None:
        # Claims queued while a batch is on its way go in the next one, sent right after.
        batch: list[_Claim] = []
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                self.batches += 1
                try:
                    stored = await self._script(
                        keys=[key for key, _, _ in batch], args=[ttl for _, ttl, _ in batch]
                    )
                    if not isinstance(stored, list) or len(stored) != len(batch):
                        raise RedisError("unexpected answer to the jti claim script")
                except (RedisError, OSError) as exc:
                    logger.error(
                        "jti replay store unavailable",
                        extra={"error": type(exc).__name__, "claims": len(batch)},
                    )
                    _refuse(batch)
                    continue
                for (_, _, answer), result in zip(batch, stored, strict=True):
                    if not answer.done():  # the request may have been cancelled meanwhile
                        answer.set_result(result == 1)
        except BaseException:
            # Cancelled at shutdown, or a bug: nobody may wait forever, nor be let in unchecked.
            _refuse(batch)
            _refuse(self._queue)
            self._queue = []
            raise


def _refuse(claims: list[_Claim]) -> None:
    for _, _, answer in claims:
        if not answer.done():
            answer.set_exception(UnavailableError("replay protection store unavailable"))


class MemoryReplayStore:
    """In-process replay set for unit tests (no expiry: tests are short)."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()

    async def claim(self, issuer: str, jti: str, *, ttl_seconds: int) -> None:
        if (issuer, jti) in self._seen:
            raise UnauthorizedError("token replayed (jti already used)")
        self._seen.add((issuer, jti))
