"""Encrypted backup archives (real Postgres, pg_dump/pg_restore, real files, an S3 server):
no secret in the archive's bytes, verification and restore decrypt, rotation, a missing key,
plain archives from before, and S3 server-side encryption with a KMS key."""

from __future__ import annotations

import io
import json
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from commands.backup import service_for
from connector.core.errors import UnprocessableError
from connector.encryption.aead import MAGIC, decrypt_stream
from connector.encryption.keyring import rotate
from connector.encryption.runtime import data_keys
from connector.runtime.embedded import free_port
from connector.settings import ConfigError, Settings, load_settings
from tests.backup.backup_support import count, make_settings, seed

pytestmark = pytest.mark.integration

EDR_TOKEN = f"edr-token-{uuid.uuid4().hex}"
SINK_SECRET = f"sink-secret-{uuid.uuid4().hex}"


async def _store_secrets(url: str) -> None:
    """Rows that hold secrets as an application might (uncompressed dumps would show them)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO notes (note_id, body, meta) VALUES (7001, $1, $2::jsonb)",
            f"sink credentials {SINK_SECRET}",
            json.dumps({"authorization": EDR_TOKEN}),
        )
    finally:
        await conn.close()


def _settings(tmp_path: Path, pg_url: str, redis_url: str, **backup: object) -> Settings:
    # No compression: the plaintext archive holds every string as it is in the table.
    return make_settings(
        tmp_path, pg_url, redis_url, "127.0.0.1:1", backup={"compression": "0", **backup}
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_an_encrypted_archive_holds_no_secret_and_still_verifies_and_restores(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    await seed(pg_url, items=20)
    await _store_secrets(pg_url)
    settings = _settings(tmp_path, pg_url, redis_url)
    service = service_for(settings)
    manifest = await service.dump("enc-1", trigger="test")
    folder = tmp_path / "backups" / "enc-1"
    archive = (folder / "connector.dump").read_bytes()

    assert archive.startswith(MAGIC)
    assert manifest.encryption == "aes-256-gcm-stream/v1"
    assert manifest.encryption_key_id == data_keys(settings).current_kid
    for secret in (EDR_TOKEN, SINK_SECRET, "sink credentials", "PGDMP"):
        assert secret.encode() not in archive, secret
    # The control: the same bytes decrypted are the plain pg_dump archive with the secrets.
    plain = b"".join(decrypt_stream(data_keys(settings), "backup", io.BytesIO(archive)))
    assert plain.startswith(b"PGDMP")
    assert EDR_TOKEN.encode() in plain
    assert SINK_SECRET.encode() in plain
    # Nothing under the backup directory is readable by group or others.
    for path in [tmp_path / "backups", folder, *folder.iterdir()]:
        assert _mode(path) & 0o077 == 0, (path, oct(_mode(path)))

    verification = await service.verify("enc-1")
    assert verification.verified, verification.mismatches
    assert not list((tmp_path / "backups-work").glob("*")), "the plain archive was not removed"

    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("DELETE FROM notes")
    finally:
        await conn.close()
    outcome = await service.restore("enc-1", expected_sha256=manifest.sha256)
    assert outcome.restored_rows["public.notes"] == 21
    assert await count(pg_url, "notes") == 21
    assert not list((tmp_path / "backups-work").glob("*"))


async def test_backups_from_before_a_rotation_and_plain_ones_still_restore(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    await seed(pg_url, items=10)
    plain_settings = _settings(tmp_path, pg_url, redis_url)
    plain_settings = plain_settings.model_copy(
        update={"encryption": plain_settings.encryption.model_copy(update={"backups": False})}
    )
    plain = await service_for(plain_settings).dump("plain-1", trigger="test")
    assert plain.encryption is None
    assert (tmp_path / "backups" / "plain-1" / "connector.dump").read_bytes().startswith(b"PGDMP")

    settings = _settings(tmp_path, pg_url, redis_url)
    old = await service_for(settings).dump("old-key", trigger="test")
    new_kid = rotate(data_keys(settings).path)
    new = await service_for(settings).dump("new-key", trigger="test")
    assert new.encryption_key_id == new_kid != old.encryption_key_id

    service = service_for(settings)
    for manifest in (plain, old, new):
        assert (await service.verify(manifest.backup_id)).verified, manifest.backup_id
        outcome = await service.restore(manifest.backup_id, expected_sha256=manifest.sha256)
        assert outcome.restored_rows["public.notes"] == 10


async def test_a_backup_whose_key_is_gone_fails_verification_and_is_not_restored(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    await seed(pg_url, items=5)
    settings = _settings(tmp_path, pg_url, redis_url)
    manifest = await service_for(settings).dump("lost-key", trigger="test")
    # Another key ring (the data dir was lost and the ring not kept): nothing decrypts.
    key_file = data_keys(settings).path
    os.replace(key_file, key_file.with_suffix(".lost"))
    service = service_for(settings)
    assert service.keys.current_kid != manifest.encryption_key_id
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("INSERT INTO notes (note_id, body, meta) VALUES (8001, 'x', '{}')")
    finally:
        await conn.close()
    with pytest.raises(UnprocessableError, match="does not decrypt"):
        await service.restore("lost-key", expected_sha256=manifest.sha256)
    assert await count(pg_url, "notes") == 6  # untouched
    verification = await service.verify("lost-key")
    assert not verification.verified
    assert "does not decrypt" in verification.mismatches[0]
    with pytest.raises(UnprocessableError, match="failed verification"):
        await service.resolve("lost-key")


def test_a_kms_key_needs_aws_kms() -> None:
    with pytest.raises(ConfigError, match="kms_key_id needs server_side_encryption aws:kms"):
        load_settings(env={}, backup={"s3": {"bucket": "b", "kms_key_id": "alias/x"}})


@pytest.fixture
def s3_server() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


async def test_s3_objects_are_encrypted_by_us_and_by_the_bucket_with_a_kms_key(
    tmp_path: Path, pg_url: str, redis_url: str, s3_server: str
) -> None:
    await seed(pg_url, items=15)
    await _store_secrets(pg_url)
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(s3={"addressing_style": "path"}),
    )
    s3.create_bucket(Bucket="connector-backups")
    kms = boto3.client(
        "kms",
        endpoint_url=s3_server,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    kms_key = kms.create_key()["KeyMetadata"]["KeyId"]
    settings = _settings(
        tmp_path,
        pg_url,
        redis_url,
        target="s3",
        s3={
            "endpoint_url": s3_server,
            "bucket": "connector-backups",
            "prefix": "edge-1/",
            "region": "us-east-1",
            "access_key_id": "test",
            "secret_access_key": "test",
            "addressing_style": "path",
            "server_side_encryption": "aws:kms",
            "kms_key_id": kms_key,
            "part_size_bytes": 5 * 1024 * 1024,
        },
    )
    service = service_for(settings)
    manifest = await service.dump("s3-kms", trigger="test")
    for name in ("connector.dump", "manifest.json"):
        head = s3.head_object(Bucket="connector-backups", Key=f"edge-1/s3-kms/{name}")
        assert head["ServerSideEncryption"] == "aws:kms", name
        assert kms_key in head["SSEKMSKeyId"], name
    body = s3.get_object(Bucket="connector-backups", Key="edge-1/s3-kms/connector.dump")
    archive = body["Body"].read()
    assert archive.startswith(MAGIC)
    assert EDR_TOKEN.encode() not in archive
    assert SINK_SECRET.encode() not in archive
    assert (await service.verify("s3-kms")).verified
    assert (await service.restore("s3-kms", expected_sha256=manifest.sha256)).restored_rows[
        "public.notes"
    ] == 16
