"""Per-caller DSP rate limit (connector.http.ratelimit) against a real Redis."""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from connector.core.errors import RateLimitedError
from connector.http.ratelimit import SYNC_SECONDS, WINDOW_SECONDS, RateLimiter, rate_key

pytestmark = pytest.mark.integration

# 12:00:15 in some minute: 45 s left in the window.
T0 = 1_750_000_000 // WINDOW_SECONDS * WINDOW_SECONDS + 15.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def participant() -> str:
    return f"p-{uuid.uuid4().hex[:8]}"


async def stored_int(redis: Redis, key: str) -> int:
    value = await redis.get(key)
    assert value is not None, key
    return int(value)


def limiter(redis: Redis, participant: str, limit: int, clock: Clock) -> RateLimiter:
    return RateLimiter(redis, participant=participant, requests_per_minute=limit, clock=clock)


async def test_limit_is_per_caller_with_retry_after_until_the_window_ends(
    redis_client: Redis, participant: str
) -> None:
    clock = Clock(T0)
    rl = limiter(redis_client, participant, 3, clock)
    for _ in range(3):
        await rl.check("did:web:a")
    with pytest.raises(RateLimitedError) as caught:
        await rl.check("did:web:a")
    assert caught.value.retry_after == 45
    clock.now = T0 + 44.2
    with pytest.raises(RateLimitedError) as caught:
        await rl.check("did:web:a")
    assert caught.value.retry_after == 1
    await rl.check("did:web:b")  # another caller has its own counter


async def test_next_window_starts_afresh(redis_client: Redis, participant: str) -> None:
    clock = Clock(T0)
    rl = limiter(redis_client, participant, 1, clock)
    await rl.check("did:web:a")
    with pytest.raises(RateLimitedError):
        await rl.check("did:web:a")
    clock.now = T0 + WINDOW_SECONDS
    await rl.check("did:web:a")


async def test_counter_key_is_namespaced_hashed_and_expires(
    redis_client: Redis, participant: str
) -> None:
    clock = Clock(T0)
    caller = "did:web:evil\r\n*3 with spaces"
    await limiter(redis_client, participant, 10, clock).check(caller)
    window = int(T0 // WINDOW_SECONDS)
    key = rate_key(participant, caller, window)
    assert key.startswith(f"connector:{participant}:rate:")
    assert key.endswith(f":{window}")
    assert caller not in key
    assert await stored_int(redis_client, key) == 1
    assert 0 < await redis_client.ttl(key) <= WINDOW_SECONDS + 5


async def test_participants_do_not_share_counters(redis_client: Redis, participant: str) -> None:
    clock = Clock(T0)
    await limiter(redis_client, participant, 1, clock).check("did:web:a")
    await limiter(redis_client, participant + "-other", 1, clock).check("did:web:a")


async def test_zero_means_off_and_touches_nothing(redis_client: Redis, participant: str) -> None:
    clock = Clock(T0)
    rl = limiter(redis_client, participant, 0, clock)
    assert not rl.enabled
    for _ in range(5):
        await rl.check("did:web:a")
    assert await redis_client.keys(f"connector:{participant}:rate:*") == []


async def test_fails_open_when_redis_is_down(
    participant: str, caplog: pytest.LogCaptureFixture
) -> None:
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    rl = limiter(dead, participant, 1, Clock(T0))
    with caplog.at_level(logging.WARNING, logger="connector.http.ratelimit"):
        for _ in range(3):
            await rl.check("did:web:a")
    assert "rate limit store unavailable" in caplog.text
    await dead.aclose()


class Ticker:
    """A monotonic clock moved by hand (when batches are due)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_batches_reach_redis_and_replicas_share_the_limit(
    redis_client: Redis, participant: str
) -> None:
    clock, ticker = Clock(T0), Ticker()

    def replica() -> RateLimiter:
        return RateLimiter(
            redis_client,
            participant=participant,
            requests_per_minute=10,
            clock=clock,
            monotonic=ticker,
        )

    a, b = replica(), replica()
    key = rate_key(participant, "did:web:a", int(T0 // WINDOW_SECONDS))
    for _ in range(6):
        await a.check("did:web:a")
    assert await stored_int(redis_client, key) == 1  # the first went at once, the rest wait
    ticker.now += SYNC_SECONDS
    await a.check("did:web:a")  # due: the 6 counted since go in the background
    await a.aclose()
    assert await stored_int(redis_client, key) == 7
    # Another replica's first request of the window learns the total and counts itself.
    await b.check("did:web:a")
    for _ in range(2):
        await b.check("did:web:a")
    with pytest.raises(RateLimitedError):
        await b.check("did:web:a")  # 7 there + 3 here = 10


async def test_requests_arriving_together_send_one_batch(
    redis_client: Redis, participant: str
) -> None:
    ticker = Ticker()
    rl = RateLimiter(
        redis_client,
        participant=participant,
        requests_per_minute=1000,
        clock=Clock(T0),
        monotonic=ticker,
    )
    await rl.check("did:web:a")
    ticker.now += SYNC_SECONDS

    async def incrby_calls() -> int:
        stats = await redis_client.info("commandstats")
        return int(stats.get("cmdstat_incrby", {}).get("calls", 0))

    before = await incrby_calls()
    await asyncio.gather(*(rl.check("did:web:a") for _ in range(50)))
    await rl.aclose()
    assert await incrby_calls() - before == 1
    key = rate_key(participant, "did:web:a", int(T0 // WINDOW_SECONDS))
    assert await stored_int(redis_client, key) == 2  # the first, then the first due batch of 1
