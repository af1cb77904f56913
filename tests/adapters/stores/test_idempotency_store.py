"""Idempotency keys (connector.stores.idempotency) on real Postgres: claim, answer, lease,
take-over after a crash, expiry and purge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from connector.stores import idempotency
from connector.stores.idempotency import Answered, Busy, Claim, Claimed, Mismatch
from connector.stores.migrate import migrate

pytestmark = pytest.mark.integration

TTL = timedelta(hours=24)
LEASE = timedelta(seconds=10)
SCOPE = "key-1 POST /management/v1/negotiations"


@pytest.fixture
async def pool(pg_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=8)
    assert pool is not None
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


async def claim(pool: asyncpg.Pool, key: str = "k1", digest: str = "d1", seed: str = "s1") -> Claim:
    return await idempotency.claim(pool, SCOPE, key, digest, seed=seed, ttl=TTL, lease=LEASE)


async def test_the_first_claim_holds_the_key_and_its_answer_is_replayed(pool: asyncpg.Pool) -> None:
    first = await claim(pool)
    assert isinstance(first, Claimed)
    assert (first.seed, first.attempt, first.retried) == ("s1", 1, False)

    busy = await claim(pool, seed="s2")
    assert isinstance(busy, Busy)
    assert 0 < busy.lease_left <= LEASE.total_seconds()

    stored = await idempotency.complete(pool, SCOPE, "k1", first, 201, '{"id": "n1"}')
    assert stored == Answered(201, '{"id": "n1"}')
    assert await claim(pool, seed="s3") == Answered(201, '{"id": "n1"}')
    assert await claim(pool, digest="other") == Mismatch()
    # Another key, or the same key in another scope, is independent.
    assert isinstance(await claim(pool, key="k2"), Claimed)
    other_scope = await idempotency.claim(
        pool, "key-2 POST /management/v1/negotiations", "k1", "d9", seed="x", ttl=TTL, lease=LEASE
    )
    assert isinstance(other_scope, Claimed)


async def test_concurrent_claims_give_the_key_to_exactly_one(pool: asyncpg.Pool) -> None:
    outcomes = await asyncio.gather(*(claim(pool, seed=f"s{i}") for i in range(8)))
    claimed = [o for o in outcomes if isinstance(o, Claimed)]
    assert len(claimed) == 1
    assert all(isinstance(o, Busy) for o in outcomes if o is not claimed[0])


async def test_an_unanswered_key_whose_lease_ran_out_is_taken_over_with_the_same_seed(
    pool: asyncpg.Pool,
) -> None:
    first = await claim(pool)
    assert isinstance(first, Claimed)
    # The holder was killed: its lease runs out, nothing was answered.
    await pool.execute("UPDATE idempotency_keys SET leased_until = now() - interval '1 second'")

    second = await claim(pool, seed="ignored")
    assert isinstance(second, Claimed)
    assert (second.seed, second.attempt, second.retried) == ("s1", 2, True)
    assert second.reserved_at == first.reserved_at
    assert isinstance(await claim(pool), Busy)  # the new holder's lease

    # The slow first holder finishes after all: the answer stored first wins for both.
    assert await idempotency.complete(pool, SCOPE, "k1", second, 201, '{"id": "n1", "v": 2}') == (
        Answered(201, '{"id": "n1", "v": 2}')
    )
    assert await idempotency.complete(pool, SCOPE, "k1", first, 201, '{"id": "n1", "v": 1}') == (
        Answered(201, '{"id": "n1", "v": 2}')
    )


async def test_release_lets_the_next_request_run_at_once(pool: asyncpg.Pool) -> None:
    first = await claim(pool)
    assert isinstance(first, Claimed)
    await idempotency.release(pool, SCOPE, "k1", first)
    again = await claim(pool)
    assert isinstance(again, Claimed)
    assert again.attempt == 2
    # A release by a holder that was taken over does not end the new holder's lease.
    await idempotency.release(pool, SCOPE, "k1", first)
    assert isinstance(await claim(pool), Busy)


async def test_an_expired_key_starts_afresh_and_is_purged(pool: asyncpg.Pool) -> None:
    first = await claim(pool)
    assert isinstance(first, Claimed)
    await idempotency.complete(pool, SCOPE, "k1", first, 201, '{"id": "n1"}')
    await claim(pool, key="live")
    await pool.execute(
        "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = 'k1'"
    )

    fresh = await claim(pool, digest="another body", seed="s2")
    assert isinstance(fresh, Claimed)
    assert (fresh.seed, fresh.attempt) == ("s2", 1)
    assert fresh.reserved_at > first.reserved_at

    await pool.execute(
        "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = 'k1'"
    )
    assert await idempotency.purge_expired(pool, batch=1) == 1
    keys = await pool.fetch("SELECT key FROM idempotency_keys ORDER BY key")
    assert [r["key"] for r in keys] == ["live"]
    assert await idempotency.purge_expired(pool) == 0
