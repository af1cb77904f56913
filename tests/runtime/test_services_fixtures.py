from pathlib import Path

import asyncpg
import redis.asyncio as aioredis
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.service import RetryConfig

from connector.runtime import embedded
from tests import services


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
    info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    assert info.server_version


async def test_an_embedded_temporal_reported_ready_serves_the_first_call(tmp_path: Path) -> None:
    """`ready()` waits for the frontend to answer, not only to accept connections: until its
    services are up it answers "Frontend is not healthy yet", and a client connecting then fails
    at once (a CI run on a busy machine met it)."""
    spec = embedded.temporal_spec(tmp_path, embedded.free_port(), 0, "default")
    async with services.running(spec) as child:
        assert await child.ready()
        address = spec.argv[spec.argv.index("--port") + 1]
        client = await Client.connect(
            f"127.0.0.1:{address}", retry_config=RetryConfig(max_retries=0)
        )
        info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
        assert info.server_version
