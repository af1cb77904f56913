"""The catalog generation kept in process by a Redis watch (connector.services.catalog_cache)."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from connector.services.catalog_cache import CatalogCache, generation_key

pytestmark = pytest.mark.integration

TTL = timedelta(seconds=60)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, socket_timeout=2.0)
    yield client
    await client.aclose()


@pytest.fixture
def participant() -> str:
    return f"urn:test:{uuid.uuid4().hex[:8]}"


async def stored_int(redis: Redis, key: str) -> int:
    value = await redis.get(key)
    assert value is not None, key
    return int(value)


async def watching(cache: CatalogCache) -> None:
    for _ in range(100):
        if cache.watching:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the watch never subscribed")


async def test_requests_read_no_redis_while_watching(redis_client: Redis, participant: str) -> None:
    cache = CatalogCache(redis_client, participant, TTL)
    cache.start_watch()
    try:
        await watching(cache)
        before = await cache.generation()
        assert before is not None
        await redis_client.set(generation_key(participant), before + 1000)  # no announcement
        assert await cache.generation() == before  # served from the process
    finally:
        await cache.stop_watch()
    assert not cache.watching
    assert await cache.generation() == before + 1000  # without the watch: read from Redis


async def test_a_bump_is_visible_at_once_here_and_soon_in_another_replica(
    redis_client: Redis, participant: str
) -> None:
    here = CatalogCache(redis_client, participant, TTL)
    there = CatalogCache(redis_client, participant, TTL)
    here.start_watch()
    there.start_watch()
    try:
        await watching(here)
        await watching(there)
        before = await there.generation()
        await here.bump()
        assert await here.generation() == await stored_int(
            redis_client, generation_key(participant)
        )
        assert await here.generation() != before
        for _ in range(100):
            if await there.generation() == await here.generation():
                break
            await asyncio.sleep(0.01)
        assert await there.generation() == await here.generation()
    finally:
        await here.stop_watch()
        await there.stop_watch()


async def test_without_a_watch_every_read_goes_to_redis(
    redis_client: Redis, participant: str
) -> None:
    writer = CatalogCache(redis_client, participant, TTL)
    reader = CatalogCache(redis_client, participant, TTL)
    first = await reader.generation()
    await writer.bump()
    assert await reader.generation() == (first or 0) + 1


async def test_a_lost_subscription_falls_back_to_redis_and_resubscribes(
    redis_client: Redis, participant: str
) -> None:
    cache = CatalogCache(redis_client, participant, TTL)
    cache.start_watch()
    try:
        await watching(cache)
        # Kill the watch's connection the way a Redis restart or a network cut would.
        clients = await redis_client.client_list(_type="pubsub")
        for client in clients:
            await redis_client.client_kill_filter(_id=client["id"])
        await redis_client.incr(generation_key(participant))
        current = await stored_int(redis_client, generation_key(participant))
        for _ in range(300):
            if cache.watching and await cache.generation() == current:
                break
            assert await cache.generation() in (current, current - 1)
            await asyncio.sleep(0.01)
        assert cache.watching
        assert await cache.generation() == current
    finally:
        await cache.stop_watch()


async def test_stop_is_prompt(redis_client: Redis, participant: str) -> None:
    cache = CatalogCache(redis_client, participant, TTL)
    cache.start_watch()
    await watching(cache)
    await asyncio.wait_for(cache.stop_watch(), timeout=3)
    assert not cache.watching
