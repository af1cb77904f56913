"""A worker killed (-9) in the middle of a dump: another worker finishes the backup, and no
half-written object is ever listed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import pytest

from commands.backup import service_for
from connector.runtime.embedded import free_port
from connector.settings import Settings, to_env
from tests.backup.backup_support import client_for, make_settings, ops_worker, seed
from workflows import names
from workflows.backup_contracts import BackupInput, BackupResult

pytestmark = [pytest.mark.integration, pytest.mark.workflow, pytest.mark.e2e]

BLOB_ROWS = 8000  # ~8 MiB of incompressible bytes
THROTTLE = 1_500_000  # bytes/s: the dump takes several seconds


async def _seed_blobs(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE blobs (blob_id int PRIMARY KEY, data bytea NOT NULL)")
        await conn.execute(
            "INSERT INTO blobs SELECT g, decode(string_agg(md5(random()::text || g || i), ''),"
            " 'hex') FROM generate_series(1, $1) g, generate_series(1, 64) i GROUP BY g",
            BLOB_ROWS,
        )
    finally:
        await conn.close()


def _spawn_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    env.update(to_env(settings))
    env.update(
        {
            "CONNECTOR_WORKERS__HEALTH_PORT": str(free_port()),
            "CONNECTOR_METRICS__PORT": "0",
            "CONNECTOR_LOGGING__FORMAT": "console",
        }
    )
    queue = settings.temporal.task_queues.ops
    return subprocess.Popen(
        [sys.executable, "-m", "connector", "worker", "--queue", queue, "--name", "doomed"],
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


async def test_backup_survives_a_killed_worker_and_never_lists_a_partial_object(
    tmp_path: Path, pg_url: str, redis_url: str, temporal_address: str
) -> None:
    await seed(pg_url, items=10)
    await _seed_blobs(pg_url)
    settings = make_settings(
        tmp_path / "data",
        pg_url,
        redis_url,
        temporal_address,
        backup={"max_bytes_per_second": THROTTLE, "compression": "gzip:1"},
    )
    backups = tmp_path / "data" / "backups"
    partial_dir = backups / ".partial"
    service = service_for(settings)
    client = await client_for(settings)

    doomed = _spawn_worker(settings, tmp_path / "doomed-worker.log")
    try:
        handle = await client.start_workflow(
            names.WF_BACKUP,
            BackupInput(),
            id=f"backup-crash-{uuid.uuid4().hex}",
            task_queue=settings.temporal.task_queues.ops,
            result_type=BackupResult,
        )
        deadline = time.monotonic() + 60
        while True:
            parts = list(partial_dir.glob("*.part")) if partial_dir.exists() else []
            if parts and parts[0].stat().st_size > 1_000_000:
                break
            assert doomed.poll() is None, (tmp_path / "doomed-worker.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the dump never started"
            await asyncio.sleep(0.1)
        os.killpg(doomed.pid, signal.SIGKILL)  # the pod dies, pg_dump with it
        doomed.wait()
    finally:
        if doomed.poll() is None:
            os.killpg(doomed.pid, signal.SIGKILL)
            doomed.wait()

    # Half a dump exists on disk, but nothing that looks like a backup.
    assert list(partial_dir.glob("*.part"))
    assert await service.entries() == []

    async with ops_worker(settings, client):
        result: BackupResult = await asyncio.wait_for(handle.result(), timeout=120)

    assert result.verified is True
    listed = await service.entries()
    assert [e.backup_id for e in listed] == [result.backup_id]
    assert listed[0].manifest.tables["public.blobs"].rows == BLOB_ROWS
    assert list(partial_dir.glob("*")) == []  # the retry discarded the partial object
    assert [p.name for p in backups.iterdir() if not p.name.startswith(".")] == [result.backup_id]
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in (await handle.fetch_history()).events
        if e.HasField("activity_task_started_event_attributes")
    ]
    assert max(attempts) >= 2  # the dump ran again on the second worker
