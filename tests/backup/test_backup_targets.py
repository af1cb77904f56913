"""Backups to a local directory and to an S3-compatible server: manifest, checksum, listing."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from commands.backup import service_for
from connector.core.backup import BackupStatus
from connector.encryption.aead import MAGIC, decrypt_stream
from connector.encryption.runtime import data_keys
from connector.runtime.embedded import free_port
from connector.runtime.metrics import BACKUP_LAST_VERIFIED, BACKUP_SIZE_BYTES
from connector.stores import migrate
from tests.backup.backup_support import (
    client_for,
    make_settings,
    ops_worker,
    seed,
    test_metrics,
)
from workflows import names
from workflows.backup_contracts import BackupInput, BackupResult

pytestmark = [pytest.mark.integration, pytest.mark.workflow]


async def _expected_tables(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT schemaname || '.' || relname AS t FROM pg_stat_user_tables ORDER BY 1"
        )
        return {
            r["t"]: await conn.fetchval(f"SELECT count(*) FROM {r['t']}")  # noqa: S608
            for r in rows
        }
    finally:
        await conn.close()


async def test_backup_to_a_directory_publishes_a_correct_manifest(
    tmp_path: Path, pg_url: str, redis_url: str, temporal_address: str
) -> None:
    await seed(pg_url, items=120)
    expected = await _expected_tables(pg_url)  # before the run writes its status row
    settings = make_settings(tmp_path, pg_url, redis_url, temporal_address)
    client = await client_for(settings)
    metrics = test_metrics()
    async with ops_worker(settings, client, metrics=metrics):
        result: BackupResult = await client.execute_workflow(
            names.WF_BACKUP,
            BackupInput(keep_daily=7, keep_weekly=4),
            id=f"backup-test-{uuid.uuid4().hex}",
            task_queue=settings.temporal.task_queues.ops,
            result_type=BackupResult,
        )
    assert result.verified is True
    folder = tmp_path / "backups" / result.backup_id
    dump = (folder / "connector.dump").read_bytes()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert hashlib.sha256(dump).hexdigest() == manifest["sha256"] == result.sha256
    assert len(dump) == manifest["size_bytes"] == result.size_bytes
    # Stored encrypted (connector.encryption.aead); the plaintext is a pg_dump custom archive.
    assert dump.startswith(MAGIC)
    assert manifest["encryption"] == "aes-256-gcm-stream/v1"
    assert manifest["encryption_key_id"] == data_keys(settings).current_kid
    plain = b"".join(decrypt_stream(data_keys(settings), "backup", io.BytesIO(dump)))
    assert plain.startswith(b"PGDMP")
    assert {t: s["rows"] for t, s in manifest["tables"].items()} == expected
    assert manifest["tables"]["public.notes"]["rows"] == 120
    assert manifest["schema_version"]["latest"] == migrate.latest_version()
    assert max(manifest["schema_version"]["applied"]) == migrate.latest_version()
    assert manifest["connector_version"]
    assert manifest["created_at"] <= manifest["completed_at"]
    verification = json.loads((folder / "verification.json").read_text())
    assert verification["verified"] is True
    assert verification["mismatches"] == []
    # The scratch database is gone again.
    conn = await asyncpg.connect(pg_url)
    try:
        leftovers = await conn.fetchval(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'connector_verify_%'"
        )
    finally:
        await conn.close()
    assert leftovers == 0
    listed = await service_for(settings).entries()
    assert [(e.backup_id, e.status) for e in listed] == [(result.backup_id, BackupStatus.VERIFIED)]
    assert metrics.registry.get_sample_value(BACKUP_LAST_VERIFIED) == 1
    assert metrics.registry.get_sample_value(BACKUP_SIZE_BYTES) == result.size_bytes


@pytest.fixture
def s3_server() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


async def test_backup_to_an_s3_compatible_bucket_with_server_side_encryption(
    tmp_path: Path, pg_url: str, redis_url: str, temporal_address: str, s3_server: str
) -> None:
    await seed(pg_url, items=40)
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(s3={"addressing_style": "path"}),
    )
    s3.create_bucket(Bucket="connector-backups")
    settings = make_settings(
        tmp_path,
        pg_url,
        redis_url,
        temporal_address,
        backup={
            "target": "s3",
            "s3": {
                "endpoint_url": s3_server,
                "bucket": "connector-backups",
                "prefix": "edge-1/",
                "region": "us-east-1",
                "access_key_id": "test",
                "secret_access_key": "test",
                "addressing_style": "path",
                "server_side_encryption": "AES256",
                "part_size_bytes": 5 * 1024 * 1024,
            },
        },
    )
    client = await client_for(settings)
    async with ops_worker(settings, client):
        result: BackupResult = await client.execute_workflow(
            names.WF_BACKUP,
            BackupInput(),
            id=f"backup-test-{uuid.uuid4().hex}",
            task_queue=settings.temporal.task_queues.ops,
            result_type=BackupResult,
        )
    key = f"edge-1/{result.backup_id}/connector.dump"
    obj = s3.get_object(Bucket="connector-backups", Key=key)
    body = obj["Body"].read()
    manifest = json.loads(
        s3.get_object(Bucket="connector-backups", Key=f"edge-1/{result.backup_id}/manifest.json")[
            "Body"
        ].read()
    )
    assert hashlib.sha256(body).hexdigest() == manifest["sha256"] == result.sha256
    assert manifest["object_key"] == key
    assert manifest["tables"]["public.notes"]["rows"] == 40
    assert obj["ServerSideEncryption"] == "AES256"
    assert result.verified is True
    assert s3.list_multipart_uploads(Bucket="connector-backups").get("Uploads", []) == []
    listed = await service_for(settings).entries()
    assert [e.backup_id for e in listed] == [result.backup_id]
    assert listed[0].status is BackupStatus.VERIFIED
