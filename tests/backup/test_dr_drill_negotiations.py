"""DR drill with the real projections: negotiations, agreements and transfers come back, and what
happened after the backup is rebuilt from Temporal (issue 8 with issue 4's and 5's data)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from connector.settings import load_settings, to_env
from connector.temporal.client import connect
from tests.backup.backup_support import ops_worker
from tests.e2e.transfer_helpers import MIB, agreement_for, random_file, start_transfer
from tests.twoconn import (
    Connector,
    catalog_offer,
    connector_pair,
    publish_offer,
    request_negotiation,
)
from workflows import names
from workflows.backup_contracts import BackupInput, BackupResult, RestoreInput, RestoreReport

pytestmark = [pytest.mark.e2e]


async def _negotiate(consumer: Connector, provider: Connector, offer: dict[str, Any]) -> str:
    negotiation_id = await request_negotiation(consumer, provider, offer)
    await consumer.wait_state(negotiation_id, {"FINALIZED"})
    return negotiation_id


async def _table(url: str) -> dict[str, tuple[str, int] | int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT own_pid, state, version FROM negotiations")
        agreements = await conn.fetchval("SELECT count(*) FROM agreements")
        moved = await conn.fetch("SELECT own_pid, state, version FROM transfers")
    finally:
        await conn.close()
    return (
        {r["own_pid"]: (r["state"], r["version"]) for r in rows}
        | {f"transfer {r['own_pid']}": (r["state"], r["version"]) for r in moved}
        | {"#agreements": agreements}
    )


async def _transfer(consumer: Connector, provider: Connector, agreement_id: str) -> str:
    transfer_id = await start_transfer(consumer, provider, agreement_id)
    await consumer.wait_transfer(transfer_id, {"STARTED"})
    return transfer_id


async def test_restore_brings_back_negotiations_and_reconciles_the_newer_ones(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    async with connector_pair(
        pg_server_url, redis_url, temporal_address, tmp_path, provider_dataplane="inproc"
    ) as (provider, consumer):
        await publish_offer(provider, "asset-dr")
        offer = await catalog_offer(consumer, provider, "asset-dr")
        before = [await _negotiate(consumer, provider, offer) for _ in range(3)]
        base = provider.settings.dataplane.file_base_path
        assert base is not None
        random_file(base / "t.bin", MIB)
        agreement_id = await agreement_for(
            provider, consumer, "asset-dr-t", data_address={"type": "file", "path": "t.bin"}
        )
        # Pull transfers stay STARTED until pulled: nothing changes them after the backup.
        transfers_before = [await _transfer(consumer, provider, agreement_id)]

        settings = load_settings(
            env=to_env(consumer.settings),
            temporal={"task_queues": {"ops": f"ops-{uuid.uuid4().hex}"}},
        )
        client = await connect(settings)
        async with ops_worker(settings, client) as resources:
            backup: BackupResult = await client.execute_workflow(
                names.WF_BACKUP,
                BackupInput(),
                id=f"backup-dr-{uuid.uuid4().hex}",
                task_queue=settings.temporal.task_queues.ops,
                result_type=BackupResult,
            )
            assert backup.verified is True

            after = [await _negotiate(consumer, provider, offer) for _ in range(2)]
            transfers_after = [await _transfer(consumer, provider, agreement_id)]
            expected = await _table(consumer.db_url)
            assert len(expected) == 6 + 1 + 2  # negotiations, agreements, transfers
            assert expected["#agreements"] == 6

            # Disaster: the consumer's database is lost.
            await resources.pool.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
            await resources.pool.expire_connections()

            report: RestoreReport = await client.execute_workflow(
                names.WF_RESTORE,
                RestoreInput(backup_id="latest"),
                id=names.restore_workflow_id(backup.backup_id),
                task_queue=settings.temporal.task_queues.ops,
                result_type=RestoreReport,
            )

        assert await _table(consumer.db_url) == expected
        assert report.restored_rows["public.negotiations"] == len(before) + 1
        assert report.restored_rows["public.transfers"] == len(transfers_before)
        reconciled = report.reconciled["negotiations"]
        assert reconciled.examined >= len(before) + 1 + len(after)
        assert reconciled.reprojected == len(after)
        assert reconciled.failed == 0
        moved = report.reconciled["transfers"]
        assert moved.examined >= len(transfers_before) + len(transfers_after)
        assert moved.reprojected == len(transfers_after)
        assert moved.failed == 0
        assert report.rto_seconds > 0
        # The restored connector answers as before.
        listed = (await consumer.get("/negotiations")).json()
        assert listed["total"] == 6
        transfers_listed = (await consumer.get("/transfers")).json()
        assert {t["id"] for t in transfers_listed["items"]} == {
            *transfers_before,
            *transfers_after,
        }
