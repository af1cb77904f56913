"""Backup verification without CREATEDB (issue 17): with `backup.verify_database` the restore goes
into a pre-created database the connector's role owns, emptied before and after, so a role
without CREATEDB (CloudNativePG's application owner, a managed Postgres user) verifies its
backups; without it, the same role cannot create the per-backup scratch database. Real Postgres,
pg_dump/pg_restore, a real role without CREATEDB."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from commands.backup import service_for
from tests.backup.backup_support import make_settings, seed

pytestmark = pytest.mark.integration


@dataclass
class Tenant:
    url: str  # the source database, as the unprivileged role
    scratch: str
    scratch_url: str


def _as(url: str, user: str, database: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{user}:pw@{host}", f"/{database}", parts.query, ""))


@pytest.fixture
async def tenant(pg_server_url: str) -> AsyncIterator[Tenant]:
    suffix = uuid.uuid4().hex[:8]
    role, source, scratch = f"app_{suffix}", f"src_{suffix}", f"verify_{suffix}"
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw' NOCREATEDB NOSUPERUSER")
        await admin.execute(f"CREATE DATABASE {source} OWNER {role}")
        await admin.execute(f"CREATE DATABASE {scratch} OWNER {role}")
    finally:
        await admin.close()
    yield Tenant(_as(pg_server_url, role, source), scratch, _as(pg_server_url, role, scratch))
    admin = await asyncpg.connect(pg_server_url)
    try:
        for db in (source, scratch):
            await admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
    finally:
        await admin.close()


async def _tables(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT schemaname || '.' || tablename AS t FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
        )
        return [r["t"] for r in rows]
    finally:
        await conn.close()


async def test_a_role_without_createdb_verifies_into_the_precreated_database(
    tmp_path: Path, tenant: Tenant, redis_url: str
) -> None:
    await seed(tenant.url, items=30)
    settings = make_settings(
        tmp_path, tenant.url, redis_url, "127.0.0.1:1", backup={"verify_database": tenant.scratch}
    )
    service = service_for(settings)
    manifest = await service.dump("scratch-1", trigger="test")
    # leftovers of an interrupted verification are cleared first
    conn = await asyncpg.connect(tenant.scratch_url)
    try:
        await conn.execute("CREATE TABLE public.leftover (x int)")
    finally:
        await conn.close()

    verification = await service.verify(manifest.backup_id)

    assert verification.verified, verification.mismatches
    assert verification.scratch_database == tenant.scratch
    # emptied again: no copy of the data stays behind
    assert await _tables(tenant.scratch_url) == []


async def test_without_it_the_same_role_cannot_create_a_scratch_database(
    tmp_path: Path, tenant: Tenant, redis_url: str
) -> None:
    await seed(tenant.url, items=5)
    service = service_for(make_settings(tmp_path, tenant.url, redis_url, "127.0.0.1:1"))
    manifest = await service.dump("scratch-2", trigger="test")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await service.verify(manifest.backup_id)


def test_backup_database_url_wins_for_pg_dump(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        "postgresql://app@pooler:5432/connector",
        "redis://127.0.0.1:1/0",
        "127.0.0.1:1",
        backup={"database_url": "postgresql://app@primary:5432/connector"},
    )
    assert service_for(settings).database_url == "postgresql://app@primary:5432/connector"
