"""Node backup parts (decision 0017) on a real Postgres and the real Temporal dev server's SQLite
file, written while the server runs: the manifest lists every part with its checksum, nothing
secret is stored in clear, verification restores each part in scratch and finds a damaged one,
and a node restore refuses a recovery key that does not open the secrets."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from connector.backup.node import (
    CONFIG_PART,
    SECRETS_PART,
    TEMPORAL_PART,
    NodeSources,
    SqliteSnapshot,
    check_temporal_db,
)
from connector.backup.node_restore import NodeRestoreError, restore_node
from connector.backup.service import BackupService
from connector.core.backup import backup_id_for
from connector.encryption.keyring import DataKeys, create_key_file
from connector.encryption.runtime import data_keys
from connector.identity.apikeys import ensure_edge_api_key
from connector.runtime.embedded import free_port, temporal_db_path
from connector.settings import Settings
from tests import services
from tests.backup.backup_support import client_for, make_settings, seed

pytestmark = [pytest.mark.integration]


def _node(data_dir: Path, db: Path, config: dict[str, object]) -> NodeSources:
    (data_dir / "keys").mkdir(mode=0o700, parents=True, exist_ok=True)
    ring = data_dir / "keys" / "data-keys.json"
    create_key_file(ring)
    (data_dir / "keys" / "identity.pem").write_bytes(b"identity key material")
    (data_dir / "keys" / "identity.pem").chmod(0o600)
    ensure_edge_api_key(data_dir)
    return NodeSources(
        temporal_db=db,
        data_ring=ring,
        identity_dir=data_dir / "keys",
        management_key=data_dir / "management-api-key",
        config=config,
        recovery_key_file=data_dir / "recovery-key.json",
    )


async def _start_workflows(settings: Settings, count: int) -> None:
    client = await client_for(settings)
    for _ in range(count):
        # Never polled: it stays Running, which is all the snapshot needs to count.
        await client.start_workflow(
            "test.node_backup_probe", id=f"probe-{uuid.uuid4().hex}", task_queue="nobody"
        )


async def test_the_snapshot_holds_what_was_committed_when_it_was_pinned(
    tmp_path: Path, redis_url: str, pg_url: str, temporal_address: str, services_root: Path
) -> None:
    settings = make_settings(tmp_path, pg_url, redis_url, temporal_address)
    db = temporal_db_path(services_root / "temporal")
    await _start_workflows(settings, 2)
    # The shared dev server may be writing for other work too: the snapshot holds at least what
    # was committed before the pin, and none of what the test starts after it.
    _, before = check_temporal_db(db)
    snapshot = SqliteSnapshot(db)
    snapshot.pin()
    try:
        await _start_workflows(settings, 3)  # the server writes on meanwhile
        counts = snapshot.copy_to(tmp_path / "copy.db")
    finally:
        snapshot.close()
    problems, reread = check_temporal_db(tmp_path / "copy.db")
    assert problems == []
    assert reread == counts
    _, now = check_temporal_db(db)
    assert before["executions"] <= counts["executions"] <= now["executions"] - 3
    assert not (tmp_path / "copy.db-wal").exists()
    assert (os.stat(tmp_path / "copy.db").st_mode & 0o777) == 0o600


async def test_a_node_backup_lists_every_part_verifies_them_and_finds_a_damaged_one(
    tmp_path: Path, redis_url: str, pg_url: str, temporal_address: str, services_root: Path
) -> None:
    await seed(pg_url, items=20)
    data_dir = tmp_path / "node"
    settings = make_settings(data_dir, pg_url, redis_url, temporal_address)
    await _start_workflows(settings, 2)
    node = _node(data_dir, temporal_db_path(services_root / "temporal"), settings.redacted())
    keys = DataKeys.open(node.data_ring, create=False)
    service = BackupService(settings.backup, data_dir, pg_url, keys=keys, node=node)
    backup_id = backup_id_for(datetime.now(UTC), "nodeab")
    manifest = await service.dump(backup_id, trigger="test")

    assert set(manifest.parts) == {TEMPORAL_PART, SECRETS_PART, CONFIG_PART}
    folder = settings.backup.resolved_directory(data_dir) / backup_id
    for name, part in manifest.parts.items():
        stored = (folder / name).read_bytes()
        assert len(stored) == part.size_bytes
        assert part.encryption == "aes-256-gcm-stream/v1"
        assert hashlib.sha256(stored).hexdigest() == part.sha256
    assert manifest.parts[TEMPORAL_PART].details["executions"] >= 2
    assert manifest.parts[TEMPORAL_PART].encryption_key_id == keys.current_kid
    assert manifest.parts[SECRETS_PART].details == {"files": 3}
    recovery = DataKeys.open(node.recovery_key_file, create=False)
    assert manifest.parts[SECRETS_PART].encryption_key_id == recovery.current_kid
    # Nothing secret in clear: the management key, the key ring's secret, the identity key.
    management_key = (data_dir / "management-api-key").read_text().strip()
    ring_secret = json.loads(node.data_ring.read_text())["keys"][0]["secret"]
    stored_all = b"".join(p.read_bytes() for p in folder.iterdir())
    for clear in (management_key, ring_secret, "identity key material", "executions_visibility"):
        assert clear.encode() not in stored_all, clear

    verification = await service.verify(backup_id)
    assert verification.verified, verification.mismatches

    damaged = bytearray((folder / TEMPORAL_PART).read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    (folder / TEMPORAL_PART).write_bytes(bytes(damaged))
    verification = await service.verify(backup_id)
    assert not verification.verified
    assert any(m.startswith("temporal.db: sha256") for m in verification.mismatches)


async def test_restore_node_refuses_a_recovery_key_that_does_not_open_the_secrets(
    tmp_path: Path, redis_url: str, pg_url: str, temporal_address: str, services_root: Path
) -> None:
    data_dir = tmp_path / "node"
    backups = tmp_path / "backups"
    settings = make_settings(
        data_dir, pg_url, redis_url, temporal_address, backup={"directory": str(backups)}
    )
    node = _node(data_dir, temporal_db_path(services_root / "temporal"), settings.redacted())
    keys = DataKeys.open(node.data_ring, create=False)
    service = BackupService(settings.backup, data_dir, pg_url, keys=keys, node=node)
    backup_id = backup_id_for(datetime.now(UTC), "nodewk")
    await service.dump(backup_id, trigger="test")
    other = tmp_path / "other-recovery.json"
    create_key_file(other)
    new_machine = make_settings(
        tmp_path / "new", pg_url, redis_url, temporal_address, backup={"directory": str(backups)}
    )
    lines: list[str] = []
    with pytest.raises(NodeRestoreError, match="do not open with the recovery key"):
        await restore_node(
            new_machine, backup_id, recovery_key=other, force=False, out=lines.append
        )
    with pytest.raises(NodeRestoreError, match="recovery key does not load"):
        await restore_node(
            new_machine,
            backup_id,
            recovery_key=tmp_path / "none.json",
            force=False,
            out=lines.append,
        )


@pytest.fixture
def s3_server() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


async def test_a_node_backup_in_a_bucket_restores_a_node_onto_an_empty_data_dir(
    tmp_path: Path,
    redis_url: str,
    pg_url: str,
    pg_server_url: str,
    temporal_address: str,
    services_root: Path,
    s3_server: str,
) -> None:
    await seed(pg_url, items=30)
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(s3={"addressing_style": "path"}),
    )
    s3.create_bucket(Bucket="node-backups")
    target = {
        "target": "s3",
        "s3": {
            "endpoint_url": s3_server,
            "bucket": "node-backups",
            "prefix": "edge-7/",
            "region": "us-east-1",
            "access_key_id": "test",
            "secret_access_key": "test",
            "addressing_style": "path",
            "part_size_bytes": 5 * 1024 * 1024,
        },
    }
    data_dir = tmp_path / "node"
    settings = make_settings(data_dir, pg_url, redis_url, temporal_address, backup=target)
    await _start_workflows(settings, 2)
    node = _node(data_dir, temporal_db_path(services_root / "temporal"), settings.redacted())
    keys = DataKeys.open(node.data_ring, create=False)
    service = BackupService(settings.backup, data_dir, pg_url, keys=keys, node=node)
    backup_id = backup_id_for(datetime.now(UTC), "nodes3")
    manifest = await service.dump(backup_id, trigger="test")
    stored = {
        o["Key"] for o in s3.list_objects_v2(Bucket="node-backups", Prefix="edge-7/")["Contents"]
    }
    assert stored == {
        f"edge-7/{backup_id}/{name}"
        for name in ("connector.dump", "manifest.json", TEMPORAL_PART, SECRETS_PART, CONFIG_PART)
    }
    assert (await service.verify(backup_id)).verified
    # A retried dump of a published backup hands back its manifest (a lost completion).
    assert await service.dump(backup_id, trigger="test") == manifest

    # A new machine: an empty data dir and an empty database, the recovery key kept aside.
    kept = tmp_path / "safe" / "recovery-key.json"
    kept.parent.mkdir(mode=0o700)
    kept.write_bytes(node.recovery_key_file.read_bytes())
    kept.chmod(0o600)
    fresh_db = await services.create_database(pg_server_url)
    new_dir = tmp_path / "new-machine"
    new_machine = make_settings(new_dir, fresh_db, redis_url, temporal_address, backup=target)
    # A command run there first (`connector backup list`) generated a data key ring of its own:
    # nothing is encrypted with it, so the restore replaces it without --force.
    assert data_keys(new_machine).path == new_dir / "keys" / "data-keys.json"
    lines: list[str] = []
    restored = await restore_node(
        new_machine, "latest", recovery_key=kept, force=False, out=lines.append
    )
    assert restored.backup_id == backup_id
    assert restored.temporal == manifest.parts[TEMPORAL_PART].details
    assert restored.secret_files == 3
    assert restored.config_differences == [
        f"identity.participant_id: backup {settings.identity.participant_id!r}, "
        f"now {new_machine.identity.participant_id!r}"
    ]
    assert (new_dir / "keys" / "data-keys.json").read_bytes() == node.data_ring.read_bytes()
    assert (new_dir / "keys" / "identity.pem").read_bytes() == b"identity key material"
    assert (new_dir / "management-api-key").read_bytes() == node.management_key.read_bytes()
    assert (new_dir / "recovery-key.json").read_bytes() == kept.read_bytes()
    assert check_temporal_db(temporal_db_path(new_dir))[0] == []
    conn = await asyncpg.connect(fresh_db)
    try:
        assert await conn.fetchval("SELECT count(*) FROM notes") == 30
    finally:
        await conn.close()
        await services.drop_database(pg_server_url, fresh_db)
    # Once more onto what is now a full data dir: one line, nothing touched.
    with pytest.raises(NodeRestoreError, match="is not empty") as refused:
        await restore_node(new_machine, "latest", recovery_key=kept, force=False, out=lines.append)
    assert "\n" not in str(refused.value)
    assert "--force" in str(refused.value)
