"""Every wait on Postgres and Redis is bounded (issue 14, "fast, honest failure"): the pool and
client the processes build (connector.stores.pool, connector.runtime.resources) against real
Postgres and Redis, a closed port (refused) and a "black hole" (a listener that accepts and never
answers: a hung server, as far as the client can tell).

The HTTP answers these errors become: tests/http/test_outage_answers.py; whole outages of real
services under a running connector: tests/e2e/test_dependency_outages.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable

import asyncpg
import pytest
from pydantic import SecretStr
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from connector.http.errors import outage
from connector.runtime.embedded import free_port
from connector.runtime.redis_outage import FailFastRedis
from connector.runtime.resources import redis_client
from connector.settings import DatabaseSettings, PoolSettings, RedisSettings
from connector.stores.pool import create_pool

pytestmark = pytest.mark.integration

SHORT = 0.3  # every timeout of these tests
SLACK = 0.5  # scheduling on a loaded machine


@pytest.fixture
async def black_hole() -> AsyncIterator[int]:
    """A loopback port that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(4096):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield port
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


def database(url: str, **overrides: object) -> DatabaseSettings:
    values: dict[str, object] = {
        "url": SecretStr(url),
        "pool": PoolSettings(min=0, max=1),
        "connect_timeout_seconds": SHORT,
        "acquire_timeout_seconds": SHORT,
        "statement_timeout_seconds": SHORT,
        "command_timeout": 5.0,
        **overrides,
    }
    return DatabaseSettings.model_validate(values)


async def elapsed_raising(
    call: Awaitable[object], expected: type[BaseException]
) -> tuple[float, BaseException]:
    started = time.monotonic()
    with pytest.raises(expected) as caught:
        await call
    return time.monotonic() - started, caught.value


# --- Postgres ---------------------------------------------------------------------------------


async def test_a_busy_pool_answers_within_the_acquire_timeout(pg_url: str) -> None:
    pool = await create_pool(database(pg_url))
    try:
        async with pool.acquire() as held:
            assert await held.fetchval("SELECT 1") == 1
            # pool.fetchval takes no acquire timeout of its own: the pool's default bounds it.
            seconds, exc = await elapsed_raising(pool.fetchval("SELECT 2"), TimeoutError)
        assert SHORT - 0.05 <= seconds < SHORT + SLACK
        assert outage(exc) == "database"
        assert await pool.fetchval("SELECT 3") == 3  # released again
    finally:
        await pool.close()


async def test_the_server_ends_a_long_statement_and_the_connection_stays_usable(
    pg_url: str,
) -> None:
    pool = await create_pool(database(pg_url))
    try:
        seconds, exc = await elapsed_raising(
            pool.execute("SELECT pg_sleep(3)"), asyncpg.QueryCanceledError
        )
        assert seconds < SHORT + SLACK
        assert outage(exc) == "database"
        assert await pool.fetchval("SHOW statement_timeout") == f"{round(SHORT * 1000)}ms"
        # 0 turns the server-side limit off (a statement is then bounded by command_timeout).
        unlimited = await create_pool(database(pg_url, statement_timeout_seconds=0))
        try:
            assert await unlimited.fetchval("SHOW statement_timeout") == "0"
        finally:
            await unlimited.close()
    finally:
        await pool.close()


async def test_a_hung_server_answers_within_the_connect_timeout(black_hole: int) -> None:
    pool = await create_pool(
        database(f"postgresql://postgres@127.0.0.1:{black_hole}/connector", command_timeout=SHORT)
    )
    try:
        seconds, exc = await elapsed_raising(pool.fetchval("SELECT 1"), TimeoutError)
        assert seconds < SHORT + SLACK
        assert outage(exc) == "database"
    finally:
        await pool.close()


async def test_a_refused_connection_answers_at_once() -> None:
    pool = await create_pool(database(f"postgresql://postgres@127.0.0.1:{free_port()}/connector"))
    try:
        seconds, exc = await elapsed_raising(pool.fetchval("SELECT 1"), OSError)
        assert seconds < SLACK
        assert outage(exc) == "database"
    finally:
        await pool.close()


# --- Redis ------------------------------------------------------------------------------------


def redis_settings(url: str, **overrides: object) -> RedisSettings:
    values: dict[str, object] = {
        "url": SecretStr(url),
        "socket_timeout_seconds": SHORT,
        "connect_timeout_seconds": SHORT,
        "pool_timeout_seconds": SHORT,
        "fail_fast_seconds": 1.0,
        **overrides,
    }
    return RedisSettings.model_validate(values)


async def test_a_hung_redis_costs_one_timeout_then_commands_fail_at_once(black_hole: int) -> None:
    client = redis_client(redis_settings(f"redis://127.0.0.1:{black_hole}/0"))
    assert isinstance(client, FailFastRedis)
    try:
        seconds, first = await elapsed_raising(client.get("k"), RedisTimeoutError)
        assert seconds < SHORT + SLACK
        assert outage(first) == "redis"
        # Within fail_fast_seconds: no connection, no wait, for commands and pipelines alike.
        seconds, fast = await elapsed_raising(client.set("k", b"v"), RedisConnectionError)
        assert seconds < 0.05
        assert "not tried again" in str(fast)
        assert outage(fast) == "redis"
        pipe = client.pipeline(transaction=False)
        pipe.incrby("n", 1)
        seconds, _ = await elapsed_raising(pipe.execute(), RedisConnectionError)
        assert seconds < 0.05
        # After it, the next command tries Redis again (and waits its timeout again).
        await asyncio.sleep(1.0)
        seconds, _ = await elapsed_raising(client.get("k"), RedisTimeoutError)
        assert SHORT - 0.05 <= seconds < SHORT + SLACK
    finally:
        await client.aclose()


async def test_fail_fast_off_waits_every_timeout(black_hole: int) -> None:
    client = redis_client(redis_settings(f"redis://127.0.0.1:{black_hole}/0", fail_fast_seconds=0))
    try:
        for _ in range(2):
            seconds, _ = await elapsed_raising(client.get("k"), RedisTimeoutError)
            assert SHORT - 0.05 <= seconds < SHORT + SLACK
    finally:
        await client.aclose()


async def test_a_refused_redis_fails_at_once(black_hole: int) -> None:
    client = redis_client(redis_settings(f"redis://127.0.0.1:{free_port()}/0"))
    try:
        seconds, exc = await elapsed_raising(client.ping(), RedisConnectionError)
        assert seconds < SLACK
        assert outage(exc) == "redis"
    finally:
        await client.aclose()


async def test_a_working_redis_is_unaffected_and_its_own_errors_trip_nothing(
    redis_url: str, key_prefix: str
) -> None:
    client = redis_client(redis_settings(redis_url))
    try:
        await client.set(f"{key_prefix}:text", b"not a number", ex=30)
        with pytest.raises(ResponseError):
            await client.incr(f"{key_prefix}:text")
        async with client.pipeline(transaction=True) as pipe:
            pipe.incrby(f"{key_prefix}:n", 2)
            pipe.expire(f"{key_prefix}:n", 30)
            assert await pipe.execute() == [2, True]
        assert await client.get(f"{key_prefix}:n") == b"2"
    finally:
        await client.aclose()


async def test_no_free_connection_is_a_burst_not_an_outage(redis_url: str, key_prefix: str) -> None:
    client = redis_client(redis_settings(redis_url, max_connections=1))
    try:
        # the only one, in use elsewhere (redis-py leaves get_connection unannotated)
        held = await client.connection_pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            seconds, exc = await elapsed_raising(
                client.get(f"{key_prefix}:k"), RedisConnectionError
            )
        finally:
            await client.connection_pool.release(held)
        assert SHORT - 0.05 <= seconds < SHORT + SLACK
        assert outage(exc) == "redis"  # this request: 503 ...
        # ... but the next one is not refused unseen: Redis itself is fine.
        assert await client.set(f"{key_prefix}:k", b"v", ex=30)
    finally:
        await client.aclose()
