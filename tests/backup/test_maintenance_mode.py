"""Maintenance mode: DSP and management writes answer 503 + Retry-After; reads keep working."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from connector.http.errors import install_error_handlers
from connector.services import maintenance
from connector.services.maintenance import MaintenanceFlag, MaintenanceMiddleware, is_guarded
from connector.stores import migrate

pytestmark = pytest.mark.integration


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/dsp/2025-1/negotiations/{pid}")
    async def read_negotiation(pid: str) -> dict[str, str]:
        return {"pid": pid}

    @app.post("/dsp/2025-1/negotiations/request")
    async def request_negotiation() -> dict[str, str]:
        return {"ok": "yes"}

    @app.delete("/management/v1/assets/{asset_id}")
    async def delete_asset(asset_id: str) -> dict[str, str]:
        return {"deleted": asset_id}

    @app.post("/other/write")
    async def other_write() -> dict[str, str]:
        return {"ok": "yes"}

    app.add_middleware(MaintenanceMiddleware)
    return app


@pytest.fixture
async def pool(pg_url: str) -> AsyncIterator[asyncpg.Pool]:
    conn = await asyncpg.connect(pg_url)
    await migrate.migrate(conn)
    await conn.close()
    pool = await asyncpg.create_pool(pg_url, min_size=0, max_size=2)
    yield pool
    await pool.close()


def test_only_writes_on_dsp_and_management_are_guarded() -> None:
    assert is_guarded("POST", "/dsp/2025-1/negotiations/request")
    assert is_guarded("delete", "/management/v1/assets/a")
    assert is_guarded("PUT", "/management/v1/policies/p")
    assert is_guarded("PATCH", "/management/v1/policies/p")
    assert not is_guarded("GET", "/dsp/2025-1/negotiations/x")
    assert not is_guarded("HEAD", "/management/v1/assets")
    assert not is_guarded("POST", "/public/transfer")
    assert not is_guarded("POST", "/other/write")


async def test_writes_get_503_with_retry_after_while_reads_keep_working(
    pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    key = maintenance.maintenance_key(key_prefix)
    app = _app()
    flag = MaintenanceFlag(pool, redis_client, key, cache_ttl=60.0, retry_after=17)
    app.state.maintenance = flag
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert (await http.post("/dsp/2025-1/negotiations/request")).status_code == 200

        await maintenance.enter(pool, redis_client, key, reason="restore of backup X")
        flag.invalidate()
        dsp = await http.post("/dsp/2025-1/negotiations/request")
        assert dsp.status_code == 503
        assert dsp.headers["retry-after"] == "17"
        body = dsp.json()
        assert body["@type"] == "ContractNegotiationError"
        assert body["code"] == "503"
        assert "maintenance" in body["reason"][0]

        mgmt = await http.delete("/management/v1/assets/a1")
        assert mgmt.status_code == 503
        assert mgmt.headers["content-type"].startswith("application/problem+json")
        assert mgmt.headers["retry-after"] == "17"
        assert mgmt.json()["status"] == 503

        assert (await http.get("/dsp/2025-1/negotiations/n1")).status_code == 200
        assert (await http.post("/other/write")).status_code == 200

        await maintenance.leave(pool, redis_client, key)
        # Cached: the flag is looked up at most once per cache period.
        assert (await http.post("/dsp/2025-1/negotiations/request")).status_code == 503
        flag.invalidate()
        assert (await http.post("/dsp/2025-1/negotiations/request")).status_code == 200


async def test_postgres_flag_alone_turns_maintenance_on(
    pool: asyncpg.Pool, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    key = maintenance.maintenance_key(key_prefix)
    await maintenance.enter(pool, None, key, reason="drill")
    try:
        flag = MaintenanceFlag(pool, redis_client, key)
        assert (await flag.current() or {}).get("reason") == "drill"
        assert await redis_client.get(key) is None
    finally:
        await maintenance.leave(pool, None, key)
    assert await maintenance.read(pool, redis_client, key) is None


async def test_flag_lookups_are_cached(pool: asyncpg.Pool, key_prefix: str) -> None:
    calls = {"n": 0}

    class CountingRedis(aioredis.Redis):
        async def get(self, name: Any) -> None:
            calls["n"] += 1
            return None

    now = {"t": 0.0}
    flag = MaintenanceFlag(
        pool,
        CountingRedis(),
        maintenance.maintenance_key(key_prefix),
        cache_ttl=1.0,
        clock=lambda: now["t"],
    )
    for _ in range(100):
        assert await flag.current() is None
    assert calls["n"] == 1
    now["t"] = 1.5
    # Only the first lookup is awaited by a request: later ones run behind the last answer, so
    # the flag's stores never delay a request (a hung Postgres would, by its whole timeout).
    assert await flag.current() is None
    assert calls["n"] == 1
    for _ in range(200):
        if calls["n"] == 2:
            break
        await asyncio.sleep(0.01)
    assert calls["n"] == 2
