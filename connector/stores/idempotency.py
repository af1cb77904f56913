"""Idempotency keys of the management API's creating POSTs (Postgres, plain SQL; decision 0009).

One row per (scope, key). `claim` reserves the key with the request body's digest *before* the
side effect, under a lease; `complete` stores the answer after it; `release` ends the lease of a
request that failed, so the next retry re-runs it at once. A row whose lease ran out unanswered
(its holder crashed, or is very slow) is taken over by the next retry, which re-runs the side
effect with the same `seed`: ids derived from it meet what the first run created. Rows expire
`ttl` after the reservation; `purge_expired` deletes them, and an expired row is reset by the next
claim of its key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, TypeAlias

import asyncpg

TABLE: Final = "idempotency_keys"
# Bound on the compare-and-set rounds of one claim (a row reset, purged or taken over meanwhile).
_CLAIM_ROUNDS: Final = 5

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

_RESERVE: Final = f"""
INSERT INTO {TABLE} AS k (scope, key, digest, seed, leased_until, expires_at)
VALUES ($1, $2, $3, $4, now() + $5::interval, now() + $6::interval)
ON CONFLICT (scope, key) DO UPDATE SET
    digest = EXCLUDED.digest, seed = EXCLUDED.seed, attempt = 1,
    leased_until = EXCLUDED.leased_until, status = NULL, response = NULL,
    created_at = now(), expires_at = EXCLUDED.expires_at
WHERE k.expires_at <= now()
RETURNING seed, attempt, created_at
"""  # noqa: S608 - constants only

_READ: Final = f"""
SELECT digest, seed, attempt, created_at, status, response, expires_at <= now() AS expired,
       leased_until > now() AS leased,
       greatest(extract(epoch FROM leased_until - now()), 0)::float8 AS lease_left
FROM {TABLE} WHERE scope = $1 AND key = $2
"""  # noqa: S608 - constants only

_TAKE_OVER: Final = f"""
UPDATE {TABLE} SET attempt = attempt + 1, leased_until = now() + $4::interval
WHERE scope = $1 AND key = $2 AND attempt = $3 AND status IS NULL AND expires_at > now()
  AND (leased_until IS NULL OR leased_until <= now())
RETURNING seed, attempt, created_at
"""  # noqa: S608 - constants only

_COMPLETE: Final = f"""
UPDATE {TABLE} SET status = $4, response = $5, leased_until = NULL
WHERE scope = $1 AND key = $2 AND seed = $3 AND status IS NULL
RETURNING status
"""  # noqa: S608 - constants only

_STORED: Final = f"""
SELECT status, response FROM {TABLE}
WHERE scope = $1 AND key = $2 AND seed = $3 AND status IS NOT NULL
"""  # noqa: S608 - constants only

_RELEASE: Final = f"""
UPDATE {TABLE} SET leased_until = now()
WHERE scope = $1 AND key = $2 AND seed = $3 AND attempt = $4 AND status IS NULL
"""  # noqa: S608 - constants only

_PURGE: Final = f"""
DELETE FROM {TABLE} WHERE (scope, key) IN (
    SELECT scope, key FROM {TABLE} WHERE expires_at <= now() LIMIT $1)
"""  # noqa: S608 - constants only


@dataclass(frozen=True)
class Claimed:
    """The caller holds the key: run the side effect with ids derived from `seed`."""

    seed: str
    attempt: int
    reserved_at: datetime

    @property
    def retried(self) -> bool:
        """An earlier holder ran (maybe only part of) the side effect and left no answer."""
        return self.attempt > 1


@dataclass(frozen=True)
class Answered:
    """The key's stored answer: status and body (JSON text), replayed byte for byte."""

    status: int
    body: str


@dataclass(frozen=True)
class Mismatch:
    """The key was used with a different request body."""


@dataclass(frozen=True)
class Busy:
    """Another request holds the key; its lease ends in `lease_left` seconds."""

    lease_left: float


Claim: TypeAlias = Claimed | Answered | Mismatch | Busy


def _claimed(row: asyncpg.Record) -> Claimed:
    return Claimed(seed=row["seed"], attempt=row["attempt"], reserved_at=row["created_at"])


async def claim(
    conn: Conn,
    scope: str,
    key: str,
    digest: str,
    *,
    seed: str,
    ttl: timedelta,
    lease: timedelta,
) -> Claim:
    """Reserve `key` in `scope` for a request whose body has `digest` (`seed`: for a new or
    expired row), or say why not: answered already, another body, or held by another request."""
    for _ in range(_CLAIM_ROUNDS):
        row = await conn.fetchrow(_RESERVE, scope, key, digest, seed, lease, ttl)
        if row is not None:
            return _claimed(row)
        row = await conn.fetchrow(_READ, scope, key)
        if row is None or row["expired"]:
            continue  # purged or expired meanwhile: reserve again
        if row["digest"] != digest:
            return Mismatch()
        if row["status"] is not None:
            return Answered(row["status"], row["response"])
        if row["leased"]:
            return Busy(row["lease_left"])
        taken = await conn.fetchrow(_TAKE_OVER, scope, key, row["attempt"], lease)
        if taken is not None:
            return _claimed(taken)
    return Busy(0.0)


async def complete(
    conn: Conn, scope: str, key: str, claimed: Claimed, status: int, body: str
) -> Answered:
    """Store the answer of the claimed request; the answer stored first wins (a slow holder and
    the retry that took over from it may both finish)."""
    stored = await conn.fetchval(_COMPLETE, scope, key, claimed.seed, status, body)
    if stored is None:
        row = await conn.fetchrow(_STORED, scope, key, claimed.seed)
        if row is not None:
            return Answered(row["status"], row["response"])
    return Answered(status, body)


async def release(conn: Conn, scope: str, key: str, claimed: Claimed) -> None:
    """End the lease of a request that failed without an answer: a retry may run at once."""
    await conn.execute(_RELEASE, scope, key, claimed.seed, claimed.attempt)


async def purge_expired(conn: Conn, *, batch: int = 1000) -> int:
    """Delete expired keys (in batches, so no statement holds many row locks); how many."""
    total = 0
    while True:
        status = await conn.execute(_PURGE, batch)
        deleted = int(status.rsplit(" ", 1)[-1])
        total += deleted
        if deleted < batch:
            return total
