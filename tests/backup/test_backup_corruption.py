"""A corrupted backup fails verification loudly, is never `latest`, and is never restored."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError

from commands.backup import service_for
from connector.core.backup import BackupStatus
from connector.core.errors import NotFoundError, UnprocessableError
from connector.runtime.metrics import BACKUP_LAST_VERIFIED
from tests.backup.backup_support import (
    client_for,
    count,
    make_settings,
    ops_worker,
    seed,
    test_metrics,
)
from workflows import names
from workflows.backup_contracts import BackupInput, BackupResult, RestoreInput, VerifyInput

pytestmark = [pytest.mark.integration, pytest.mark.workflow]


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


async def test_corrupted_backup_fails_verification_and_is_never_latest(
    tmp_path: Path, pg_url: str, redis_url: str, temporal_address: str
) -> None:
    await seed(pg_url, items=30)
    settings = make_settings(tmp_path, pg_url, redis_url, temporal_address)
    queue = settings.temporal.task_queues.ops
    client = await client_for(settings)
    metrics = test_metrics()
    service = service_for(settings)
    async with ops_worker(settings, client, metrics=metrics):
        results = []
        for _ in range(2):
            results.append(
                await client.execute_workflow(
                    names.WF_BACKUP,
                    BackupInput(prune=False),
                    id=f"backup-test-{uuid.uuid4().hex}",
                    task_queue=queue,
                    result_type=BackupResult,
                )
            )
        good, newest = results
        assert (await service.resolve("latest")).backup_id == newest.backup_id

        _flip_byte(tmp_path / "backups" / newest.backup_id / "connector.dump")
        with pytest.raises(WorkflowFailureError) as failed:
            await client.execute_workflow(
                names.WF_BACKUP_VERIFY,
                VerifyInput(backup_id=newest.backup_id),
                id=names.verify_workflow_id(newest.backup_id, uuid.uuid4().hex),
                task_queue=queue,
            )
        assert "failed verification" in str(failed.value.cause)
        statuses = {e.backup_id: e.status for e in await service.entries()}
        assert statuses == {
            good.backup_id: BackupStatus.VERIFIED,
            newest.backup_id: BackupStatus.FAILED,
        }
        failed_entry = next(e for e in await service.entries() if e.backup_id == newest.backup_id)
        assert failed_entry.verification is not None
        assert failed_entry.verification.checksum_ok is False
        assert (await service.resolve("latest")).backup_id == good.backup_id
        with pytest.raises(UnprocessableError):
            await service.resolve(newest.backup_id)
        assert metrics.registry.get_sample_value(BACKUP_LAST_VERIFIED) == 0
        assert (
            metrics.registry.get_sample_value(
                "connector_backup_failures_total", {"stage": "verify"}
            )
            == 1
        )

        # Corrupted after its verification: the restore checks the archive before touching the
        # database, refuses, leaves maintenance, and marks the backup failed.
        _flip_byte(tmp_path / "backups" / good.backup_id / "connector.dump")
        await pg_insert_marker(pg_url)
        with pytest.raises(WorkflowFailureError) as refused:
            await client.execute_workflow(
                names.WF_RESTORE,
                RestoreInput(backup_id=good.backup_id),
                id=names.restore_workflow_id(good.backup_id),
                task_queue=queue,
            )
        assert "corrupt" in str(refused.value.cause.__cause__)
        assert await count(pg_url, "notes") == 31  # untouched, marker row included
        with pytest.raises(NotFoundError):
            await service.resolve("latest")


async def pg_insert_marker(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("INSERT INTO notes (note_id, body, meta) VALUES (9999, 'x', '{}')")
    finally:
        await conn.close()
