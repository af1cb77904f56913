"""Helpers of the backup tests: settings, a seeded database, an in-process ops worker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from connector.runtime.metrics import Metrics, build_registry
from connector.runtime.resources import Resources, open_resources
from connector.services.reconcile import ProjectionKind
from connector.settings import Settings, load_settings
from connector.stores import migrate
from connector.temporal.client import connect
from workers.registry import ops_activities
from workflows.backup import BackupWorkflow
from workflows.backup_verify import BackupVerifyWorkflow
from workflows.restore import RestoreWorkflow

NAMESPACE = "connector"


def make_settings(
    data_dir: Path,
    pg_url: str,
    redis_url: str,
    temporal_address: str,
    *,
    backup: dict[str, Any] | None = None,
    queue: str | None = None,
) -> Settings:
    return load_settings(
        env={},
        data_dir=data_dir,
        database={"url": pg_url},
        redis={"url": redis_url},
        temporal={
            "address": temporal_address,
            "namespace": NAMESPACE,
            "task_queues": {"ops": queue or f"ops-{uuid.uuid4().hex}"},
        },
        identity={"participant_id": f"urn:test:{uuid.uuid4().hex[:8]}"},
        backup=backup or {},
    )


async def client_for(target: Settings | str) -> Client:
    """The connector's own client for `settings` (payload codec with its data key ring, as every
    connector process and the CLI use), or a plain client for a bare address."""
    if isinstance(target, Settings):
        return await connect(target)
    return await Client.connect(target, namespace=NAMESPACE, data_converter=pydantic_data_converter)


async def seed(url: str, *, items: int = 50) -> None:
    """Migrations plus a little realistic data in a second table (jsonb, timestamps, text)."""
    conn = await asyncpg.connect(url)
    try:
        await migrate.migrate(conn)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS notes (
                   note_id bigint PRIMARY KEY,
                   body text NOT NULL,
                   meta jsonb NOT NULL,
                   created_at timestamptz NOT NULL DEFAULT now())"""
        )
        await conn.execute(
            "INSERT INTO notes (note_id, body, meta) "
            "SELECT g, repeat(md5(g::text), 4), jsonb_build_object('n', g, 'even', g % 2 = 0) "
            "FROM generate_series(1, $1) g ON CONFLICT DO NOTHING",
            items,
        )
    finally:
        await conn.close()


async def count(url: str, table: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        value: int = await conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608
        return value
    finally:
        await conn.close()


@asynccontextmanager
async def ops_worker(
    settings: Settings,
    client: Client,
    *,
    kinds: Sequence[ProjectionKind] | None = None,
    extra_workflows: Sequence[type] = (),
    metrics: Metrics | None = None,
) -> AsyncIterator[Resources]:
    """A real Worker on the settings' (fresh) ops task queue, with the registry's activities."""
    async with open_resources(settings, temporal=False) as resources:
        resources.temporal = client
        activities = ops_activities(resources, metrics, kinds=kinds)
        async with Worker(
            client,
            task_queue=settings.temporal.task_queues.ops,
            workflows=[BackupWorkflow, BackupVerifyWorkflow, RestoreWorkflow, *extra_workflows],
            activities=activities,
        ):
            yield resources


def test_metrics() -> Metrics:
    return Metrics(build_registry(process_metrics=False), "test")


test_metrics.__test__ = False  # type: ignore[attr-defined]
