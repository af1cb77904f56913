import asyncpg
import redis.asyncio as aioredis
from temporalio.client import Client


async def test_postgres_fixture_gives_an_empty_database(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
    finally:
        await conn.close()
    assert tables == 0


async def test_redis_fixture_answers(redis_client: aioredis.Redis, key_prefix: str) -> None:
    await redis_client.set(f"{key_prefix}:k", "v", ex=10)
    assert await redis_client.get(f"{key_prefix}:k") == b"v"


async def test_temporal_fixture_serves_the_test_namespaces(temporal_address: str) -> None:
    client = await Client.connect(temporal_address, namespace="provider")
    info = await client.workflow_service.get_system_info(
        __import__("temporalio.api.workflowservice.v1", fromlist=["x"]).GetSystemInfoRequest()
    )
    assert info.server_version
