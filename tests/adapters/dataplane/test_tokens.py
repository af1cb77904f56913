"""Data plane access and refresh tokens (dataplane/tokens.py) against a real Postgres and Redis:
rotation, the predecessor's grace window, single-flight refresh, revocation, hashed storage.

Time is an injected clock; only the single-flight memory lives in Redis real time (its TTL)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from redis.asyncio import Redis

from connector.core.errors import ForbiddenError, UnauthorizedError
from connector.settings import DataPlaneSettings
from connector.stores import dataplane as store
from connector.stores.migrate import migrate
from dataplane.tokens import IssuedTokens, TokenService, token_hash

pytestmark = pytest.mark.integration

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
TTL, GRACE = 60, 5


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def pool(pg_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(pg_url, min_size=0, max_size=6)
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def service_for(
    pool: asyncpg.Pool, redis: Redis, participant: str, clock: Clock, grace: int = GRACE
) -> TokenService:
    settings = DataPlaneSettings(
        token_ttl_seconds=TTL, token_grace_seconds=grace, token_cache_seconds=30
    )
    return TokenService(pool, redis, settings, participant, clock=clock)


@pytest.fixture
def tokens(pool: asyncpg.Pool, redis_client: Redis, key_prefix: str, clock: Clock) -> TokenService:
    return service_for(pool, redis_client, key_prefix, clock)


@pytest.fixture
async def flow_id(pool: asyncpg.Pool) -> str:
    flow_id = f"urn:uuid:{uuid.uuid4()}"
    await store.create_flow(
        pool,
        flow_id=flow_id,
        agreement_id="agreement-1",
        consumer_id="did:web:consumer.example",
        transfer_type="HttpData-PULL",
        push=False,
        finite=True,
        source={"type": "file", "path": "f.bin"},
        destination=None,
    )
    return flow_id


def bearer(issued: IssuedTokens) -> str:
    return f"Bearer {issued.access_token}"


async def test_an_issued_access_token_resolves_to_its_flow_until_it_expires(
    tokens: TokenService, flow_id: str, clock: Clock
) -> None:
    issued = await tokens.issue(flow_id)
    assert issued.expires_at == T0 + timedelta(seconds=TTL)
    assert await tokens.resolve(bearer(issued)) == flow_id
    assert await tokens.resolve(issued.access_token) == flow_id  # cached now; "Bearer" optional
    with pytest.raises(UnauthorizedError):
        await tokens.resolve(None)
    with pytest.raises(UnauthorizedError):
        await tokens.resolve("  ")
    with pytest.raises(ForbiddenError):
        await tokens.resolve("Bearer not-a-token")
    with pytest.raises(ForbiddenError):  # a refresh token is no access token
        await tokens.resolve(f"Bearer {issued.refresh_token}")
    clock.advance(TTL)
    with pytest.raises(ForbiddenError, match="expired"):
        await tokens.resolve(bearer(issued))


async def test_a_refresh_rotates_and_the_old_access_token_lives_for_the_grace_window_only(
    tokens: TokenService, flow_id: str, clock: Clock
) -> None:
    old = await tokens.issue(flow_id)
    assert await tokens.resolve(bearer(old)) == flow_id  # cached with its full lifetime
    clock.advance(10)
    new = await tokens.refresh(old.refresh_token)
    assert new.access_token != old.access_token
    assert new.refresh_token != old.refresh_token
    assert new.expires_at == clock.now + timedelta(seconds=TTL)
    assert await tokens.resolve(bearer(new)) == flow_id
    clock.advance(GRACE - 1)
    assert await tokens.resolve(bearer(old)) == flow_id  # within the grace window
    clock.advance(1)
    with pytest.raises(ForbiddenError):  # the window is over (the cache was capped too)
        await tokens.resolve(bearer(old))
    assert await tokens.resolve(bearer(new)) == flow_id
    newer = await tokens.refresh(new.refresh_token)  # the chain goes on
    assert await tokens.resolve(bearer(newer)) == flow_id


async def test_two_concurrent_refreshes_with_one_token_get_one_new_pair(
    tokens: TokenService, flow_id: str, pool: asyncpg.Pool
) -> None:
    old = await tokens.issue(flow_id)
    first, second = await asyncio.gather(
        tokens.refresh(old.refresh_token), tokens.refresh(old.refresh_token)
    )
    assert first == second
    assert first.refresh_token != old.refresh_token
    kinds = await pool.fetch(
        "SELECT kind, count(*) AS n FROM dataplane_tokens WHERE flow_id = $1 GROUP BY kind",
        flow_id,
    )
    # The old access token (in its grace window) and one new pair: nobody minted a second one.
    assert {r["kind"]: r["n"] for r in kinds} == {"access": 2, "refresh": 1}


async def test_a_refresh_racing_the_winners_commit_gets_the_winners_pair(
    tokens: TokenService, flow_id: str, pool: asyncpg.Pool
) -> None:
    """Deterministic interleaving: the winner stalls while it mints the new pair (a lock on the
    flow row blocks the token INSERT's foreign-key check); the second refresh arrives then."""
    old = await tokens.issue(flow_id)
    async with pool.acquire() as blocker:
        lock = blocker.transaction()
        await lock.start()
        await blocker.execute(
            "SELECT 1 FROM dataplane_flows WHERE flow_id = $1 FOR UPDATE", flow_id
        )
        first = asyncio.create_task(tokens.refresh(old.refresh_token))
        await until_lock_waiters(pool, 1)
        second = asyncio.create_task(tokens.refresh(old.refresh_token))
        # Either the second waits for the winner's row (2 waiters) or it has already answered.
        await until_lock_waiters(pool, 2, unless=second)
        await lock.rollback()
    assert await first == await second


async def until_lock_waiters(
    pool: asyncpg.Pool, count: int, *, unless: asyncio.Task[IssuedTokens] | None = None
) -> None:
    for _ in range(200):
        waiting = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting >= count or (unless is not None and unless.done()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never saw {count} sessions waiting for a lock")


async def test_a_replay_within_the_grace_window_gets_the_same_pair(
    tokens: TokenService, flow_id: str
) -> None:
    old = await tokens.issue(flow_id)
    new = await tokens.refresh(old.refresh_token)
    assert await tokens.refresh(old.refresh_token) == new  # e.g. a retried, lost response


async def test_reusing_a_rotated_refresh_token_after_the_window_revokes_the_chain(
    pool: asyncpg.Pool, redis_client: Redis, key_prefix: str, clock: Clock, flow_id: str
) -> None:
    tokens = service_for(pool, redis_client, key_prefix, clock, grace=1)
    old = await tokens.issue(flow_id)
    new = await tokens.refresh(old.refresh_token)
    assert await tokens.resolve(bearer(new)) == flow_id
    await asyncio.sleep(1.1)  # the single-flight memory lives grace seconds of real time
    with pytest.raises(ForbiddenError):
        await tokens.refresh(old.refresh_token)
    with pytest.raises(ForbiddenError):  # the thief's replay ended the legitimate chain too
        await tokens.resolve(bearer(new))
    with pytest.raises(ForbiddenError):
        await tokens.refresh(new.refresh_token)


async def test_a_revoked_flows_tokens_are_refused_at_once(
    tokens: TokenService, flow_id: str, pool: asyncpg.Pool
) -> None:
    issued = await tokens.issue(flow_id)
    assert await tokens.resolve(bearer(issued)) == flow_id  # now in the Redis cache
    await tokens.revoke(flow_id)
    with pytest.raises(ForbiddenError):
        await tokens.resolve(bearer(issued))
    with pytest.raises(ForbiddenError):
        await tokens.refresh(issued.refresh_token)
    assert (
        await pool.fetchval("SELECT count(*) FROM dataplane_tokens WHERE flow_id = $1", flow_id)
        == 0
    )
    other = await tokens.issue(flow_id)  # e.g. a resume mints new tokens; never resurrects
    assert await tokens.resolve(bearer(other)) == flow_id
    with pytest.raises(ForbiddenError):
        await tokens.resolve(bearer(issued))


async def test_a_refresh_of_a_flow_that_is_not_started_is_refused(
    tokens: TokenService, flow_id: str, pool: asyncpg.Pool
) -> None:
    issued = await tokens.issue(flow_id)
    assert await store.set_state(pool, flow_id, "SUSPENDED", only_from=("STARTED",))
    with pytest.raises(ForbiddenError):
        await tokens.refresh(issued.refresh_token)
    with pytest.raises(ForbiddenError):  # not cached yet: the store sees the flow's state
        await tokens.resolve(bearer(issued))


async def test_tokens_are_stored_hashed_only(
    tokens: TokenService, flow_id: str, pool: asyncpg.Pool, redis_client: Redis, key_prefix: str
) -> None:
    old = await tokens.issue(flow_id)
    await tokens.resolve(bearer(old))  # fills the cache
    new = await tokens.refresh(old.refresh_token)  # fills the single-flight memory
    await tokens.resolve(bearer(new))
    assert await tokens.refresh(old.refresh_token) == new  # ...which still answers
    raw = [old.access_token, old.refresh_token, new.access_token, new.refresh_token]

    stored = [r["token_hash"] for r in await pool.fetch("SELECT token_hash FROM dataplane_tokens")]
    assert set(stored) >= {token_hash(new.access_token), token_hash(new.refresh_token)}
    keys = [
        key async for key in redis_client.scan_iter(match=f"connector:dataplane:{key_prefix}:*")
    ]
    assert keys, "the cache and the single-flight memory live under the participant's prefix"
    values = [await redis_client.get(key) for key in keys]
    redis_text = b"\n".join(keys + [v for v in values if v is not None])
    for token in raw:
        assert token not in "\n".join(stored)
        assert token.encode() not in redis_text
