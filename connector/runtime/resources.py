"""Connections a process holds (Postgres pool, Redis, Temporal client), opened from settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
import redis.asyncio as aioredis

from connector.runtime.redis_outage import FailFastRedis, RedisOutage
from connector.settings import RedisSettings, Settings
from connector.stores.pool import create_pool

if TYPE_CHECKING:
    from temporalio.client import Client
    from temporalio.runtime import Runtime


@dataclass
class Resources:
    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    temporal: Client | None


def redis_client(settings: RedisSettings) -> aioredis.Redis:
    if settings.url is None:
        raise ValueError("redis.url is not set (connector up sets it for the embedded server)")
    # Blocking: under a burst a request waits (bounded) for a free connection instead of failing
    # with MaxConnectionsError, which would refuse callers whose replay check needs Redis.
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.url.get_secret_value(),
        max_connections=settings.max_connections,
        timeout=settings.pool_timeout_seconds,
        socket_timeout=settings.socket_timeout_seconds,
        socket_connect_timeout=settings.connect_timeout_seconds,
        health_check_interval=15,
        decode_responses=False,
    )
    # While Redis is down or hung, commands fail at once instead of each waiting its timeout.
    return FailFastRedis(pool, RedisOutage(settings.fail_fast_seconds))


@asynccontextmanager
async def open_resources(
    settings: Settings,
    *,
    temporal: bool = True,
    runtime: Runtime | None = None,
    lazy_temporal: bool = True,
) -> AsyncIterator[Resources]:
    """Open everything lazily: a dependency that is down shows in /health instead of a crash.

    `lazy_temporal=False` connects to Temporal now (a Worker cannot use a lazy client)."""
    async with AsyncExitStack() as stack:
        pool = await create_pool(settings.database)
        stack.push_async_callback(pool.close)
        redis = redis_client(settings.redis)
        stack.push_async_callback(redis.aclose)
        client = None
        if temporal:
            # Imported here: the data plane runs without Temporal and need not load the SDK.
            from connector.temporal.client import connect

            # The API answers 503 once `temporal.api_retry_seconds` of retries could not reach
            # the server, instead of the SDK's default 10 s; a hung one within the worker wait
            # (api/worker_wait.py) or `temporal.api_keepalive_seconds` when set.
            client = await connect(
                settings,
                lazy=lazy_temporal,
                runtime=runtime,
                retry_seconds=settings.temporal.api_retry_seconds,
                keepalive_seconds=settings.temporal.api_keepalive_seconds,
            )
        yield Resources(settings=settings, pool=pool, redis=redis, temporal=client)


@asynccontextmanager
async def borrowed(resources: Resources) -> AsyncIterator[Resources]:
    """Resources another part of the same process opened and closes (`connector up` runs the
    control plane, the data plane and the workers in one process on one set)."""
    yield resources
