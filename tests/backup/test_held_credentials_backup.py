"""Held credentials in backups (decision 0023): the table is in the pg_dump archive, its payloads
stay sealed there even in a plain (unencrypted, uncompressed) archive, and after a restore
they open with the data key ring again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from commands.backup import service_for
from connector.encryption.runtime import data_keys
from connector.stores import credentials
from tests.backup.backup_support import make_settings, seed

pytestmark = pytest.mark.integration

FAKE_VC = f"eyJhbGciOiJFUzI1NiJ9.{uuid.uuid4().hex}-payload.{uuid.uuid4().hex}-signature"


async def test_held_credentials_are_backed_up_sealed_and_restore(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    await seed(pg_url, items=5)
    settings = make_settings(
        tmp_path, pg_url, redis_url, "127.0.0.1:1", backup={"compression": "0"}
    )
    # A plain archive: only the sealing of the column keeps the credential out of it.
    settings = settings.model_copy(
        update={"encryption": settings.encryption.model_copy(update={"backups": False})}
    )
    keys = data_keys(settings)
    now = datetime.now(UTC)
    credential_id = f"urn:uuid:{uuid.uuid4()}"
    held = credentials.HeldCredential(
        credential_id=credential_id,
        types=("MembershipCredential",),
        issuer_did="did:web:issuer.example",
        issued_at=now,
        expires_at=now + timedelta(days=30),
    )
    conn = await asyncpg.connect(pg_url)
    try:
        assert await credentials.put(conn, keys, held, FAKE_VC)
    finally:
        await conn.close()

    service = service_for(settings)
    manifest = await service.dump("creds-1", trigger="test")
    archive = (tmp_path / "backups" / "creds-1" / "connector.dump").read_bytes()
    assert archive.startswith(b"PGDMP")
    assert b"held_credentials" in archive
    assert credential_id.encode() in archive  # the row is in the backup ...
    for part in FAKE_VC.split("."):
        assert part.encode() not in archive  # ... its credential is not, in any piece

    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("DELETE FROM held_credentials")
    finally:
        await conn.close()
    outcome = await service.restore("creds-1", expected_sha256=manifest.sha256)
    assert outcome.restored_rows["public.held_credentials"] == 1
    conn = await asyncpg.connect(pg_url)
    try:
        assert await credentials.matching(conn, keys, ["MembershipCredential"], now) == [FAKE_VC]
    finally:
        await conn.close()
