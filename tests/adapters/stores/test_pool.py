"""The connector's asyncpg pool (connector.stores.pool) on real Postgres: a release costs no
reset round trip, and still leaves no transaction open."""

from __future__ import annotations

import asyncpg
import pytest
from pydantic import SecretStr

from connector.settings import DatabaseSettings, PoolSettings
from connector.stores.pool import create_pool

pytestmark = pytest.mark.integration


async def _last_query(pg_url: str, pid: int) -> tuple[str, str]:
    observer = await asyncpg.connect(pg_url)
    try:
        row = await observer.fetchrow(
            "SELECT query, state FROM pg_stat_activity WHERE pid = $1", pid
        )
    finally:
        await observer.close()
    assert row is not None
    return row["query"], row["state"]


async def test_release_sends_no_reset_query_and_rolls_back_an_open_transaction(
    pg_url: str,
) -> None:
    pool = await create_pool(
        DatabaseSettings(url=SecretStr(pg_url), pool=PoolSettings(min=1, max=1))
    )
    try:
        async with pool.acquire() as conn:
            pid = conn.get_server_pid()
            assert await conn.fetchval("SELECT 41 + 1") == 42
        # The backend's last statement is still ours: no `RESET ALL; UNLISTEN *; ...` after it.
        query, state = await _last_query(pg_url, pid)
        assert query == "SELECT 41 + 1"
        assert state == "idle"

        async with pool.acquire() as conn:
            assert conn.get_server_pid() == pid  # the same connection, reused
            transaction = conn.transaction()
            await transaction.start()
            await conn.execute("CREATE TEMPORARY TABLE t_pool_probe (x int)")
        # Released inside an open transaction: asyncpg's own reset rolled it back.
        query, state = await _last_query(pg_url, pid)
        assert (query, state) == ("ROLLBACK", "idle")
        async with pool.acquire() as conn:
            exists = await conn.fetchval("SELECT to_regclass('pg_temp.t_pool_probe') IS NOT NULL")
            assert exists is False
    finally:
        await pool.close()
