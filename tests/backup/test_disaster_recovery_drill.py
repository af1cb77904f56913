"""DR drill: back up, keep working, lose the database, restore, reconcile from Temporal."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio.client import Client

from commands.backup import format_report
from connector.services import maintenance
from connector.services.reconcile import ProjectionKind, workflow_ids
from tests.backup.backup_support import client_for, count, make_settings, ops_worker, seed
from tests.backup.drill_support import (
    DRILL_TABLE_SQL,
    QRY_DRILL_VIEW,
    SIG_DRILL_ADVANCE,
    SIG_DRILL_FINISH,
    DrillItemWorkflow,
    drill_kind,
    upsert_drill_item,
)
from workflows import names
from workflows.backup_contracts import BackupInput, BackupResult, RestoreInput, RestoreReport

pytestmark = [pytest.mark.integration, pytest.mark.workflow]


async def _project(client: Client, pool: asyncpg.Pool, workflow_id: str) -> None:
    """What a projection activity does after a transition: write the workflow's view."""
    view = await client.get_workflow_handle(workflow_id).query(QRY_DRILL_VIEW)
    async with pool.acquire() as conn:
        await upsert_drill_item(conn, view)


async def _rows(url: str) -> dict[str, tuple[str, int]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT item_id, state, version FROM drill_items")
    finally:
        await conn.close()
    return {r["item_id"]: (r["state"], r["version"]) for r in rows}


async def _await_visible(client: Client, kind: ProjectionKind, expected: int) -> None:
    for _ in range(100):
        if len(await workflow_ids(client, kind)) >= expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("workflows not visible in time")


async def test_restore_brings_back_the_backup_and_reconciles_newer_workflow_state(
    tmp_path: Path, pg_url: str, redis_url: str, temporal_address: str
) -> None:
    await seed(pg_url, items=50)
    conn = await asyncpg.connect(pg_url)
    await conn.execute(DRILL_TABLE_SQL)
    await conn.close()
    settings = make_settings(tmp_path, pg_url, redis_url, temporal_address)
    queue = settings.temporal.task_queues.ops
    client = await client_for(settings)
    prefix = f"drill:{uuid.uuid4().hex[:8]}:"
    key = maintenance.maintenance_key(settings.identity.participant_id or "")
    seen_maintenance: list[object] = []

    async def upsert_watching_maintenance(
        conn: asyncpg.Connection, view: Mapping[str, Any]
    ) -> bool:
        # Reconciliation runs while the connector is still in maintenance mode.
        seen_maintenance.append(await maintenance.read(conn, None, key))
        return await upsert_drill_item(conn, view)

    kind = drill_kind(prefix, upsert_watching_maintenance)
    ids = {name: f"{prefix}{name}" for name in "abcd"}

    async with ops_worker(
        settings, client, kinds=[kind], extra_workflows=[DrillItemWorkflow]
    ) as resources:
        pool = resources.pool
        for name in "abc":
            await client.start_workflow(
                DrillItemWorkflow.run, ids[name], id=ids[name], task_queue=queue
            )
        await client.get_workflow_handle(ids["a"]).signal(SIG_DRILL_ADVANCE, "OFFERED")
        for name in "abc":
            await _project(client, pool, ids[name])

        backup: BackupResult = await client.execute_workflow(
            names.WF_BACKUP,
            BackupInput(),
            id=f"backup-drill-{uuid.uuid4().hex}",
            task_queue=queue,
            result_type=BackupResult,
        )
        assert backup.verified is True

        # Life goes on after the backup: transitions, a finished process, a new process, data.
        await client.get_workflow_handle(ids["a"]).signal(SIG_DRILL_ADVANCE, "AGREED")
        await client.get_workflow_handle(ids["b"]).signal(SIG_DRILL_ADVANCE, "TERMINATED")
        await client.get_workflow_handle(ids["b"]).signal(SIG_DRILL_FINISH)
        await client.get_workflow_handle(ids["b"]).result()
        await client.start_workflow(DrillItemWorkflow.run, ids["d"], id=ids["d"], task_queue=queue)
        for name in "abd":
            await _project(client, pool, ids[name])
        await pool.execute(
            "INSERT INTO notes (note_id, body, meta) SELECT g, 'late', '{}' "
            "FROM generate_series(51, 60) g"
        )
        before_loss = await _rows(pg_url)
        assert before_loss == {
            ids["a"]: ("AGREED", 3),
            ids["b"]: ("TERMINATED", 2),
            ids["c"]: ("CREATED", 1),
            ids["d"]: ("CREATED", 1),
        }
        await _await_visible(client, kind, 4)

        # Disaster: the database is lost.
        await pool.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        await pool.expire_connections()

        report: RestoreReport = await client.execute_workflow(
            names.WF_RESTORE,
            RestoreInput(backup_id="latest"),
            id=names.restore_workflow_id(backup.backup_id),
            task_queue=queue,
            result_type=RestoreReport,
        )

        # Everything from before the backup is back; what came after is rebuilt from Temporal.
        assert await _rows(pg_url) == before_loss
        assert await count(pg_url, "notes") == 50  # non-projection rows after the backup: lost
        assert report.backup_id == backup.backup_id
        assert report.restored_rows["public.drill_items"] == 3
        assert report.restored_rows["public.notes"] == 50
        assert report.restored_rows_total == sum(report.restored_rows.values())
        drill = report.reconciled["drill"]
        assert (drill.examined, drill.reprojected, drill.unchanged, drill.failed) == (4, 3, 1, 0)
        assert report.reconciled_rows_total == 3
        assert report.rpo_seconds > 0
        assert 0 < report.rto_seconds < 60
        assert report.healthy, report.health
        assert seen_maintenance
        assert all(info is not None for info in seen_maintenance)
        # Maintenance is over: neither store holds the flag.
        redis = aioredis.Redis.from_url(redis_url)
        try:
            assert await redis.get(key) is None
        finally:
            await redis.aclose()
        assert await maintenance.read(pool, None, key) is None
        text = "\n".join(format_report(report))
        assert "re-projected 3" in text
        assert "RTO" in text
        assert "RPO" in text
        await client.get_workflow_handle(ids["a"]).signal(SIG_DRILL_FINISH)
        for name in "cd":
            await client.get_workflow_handle(ids[name]).signal(SIG_DRILL_FINISH)
