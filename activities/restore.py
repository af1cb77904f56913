"""RestoreActivities: the disaster-recovery steps of `ops.restore` (task queue `connector.ops`).

Each step is idempotent: maintenance on/off are upserts/deletes, the restore is one transaction
(`pg_restore --single-transaction`), reconciliation is a version-guarded re-projection.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import asyncpg
import redis.asyncio as aioredis
from temporalio import activity
from temporalio.client import Client

from activities.backup import translated_errors
from connector.backup.service import BackupService
from connector.runtime import health
from connector.runtime.logging import get_logger
from connector.services import maintenance
from connector.services.reconcile import ProjectionKind, reconcile
from workflows import names
from workflows.backup_contracts import (
    HealthReport,
    HealthRequest,
    MaintenanceRequest,
    ReconcileCounts,
    ReconcileRequest,
    ReconcileResult,
    ResolvedBackup,
    ResolveRequest,
    RestoreDatabaseRequest,
    RestoreDatabaseResult,
)

log = get_logger(__name__)


class RestoreActivities:
    def __init__(
        self,
        service: BackupService,
        *,
        pool: asyncpg.Pool,
        redis: aioredis.Redis | None,
        temporal: Client | None,
        maintenance_key: str,
        projection_kinds: Sequence[ProjectionKind] = (),
    ) -> None:
        self._service = service
        self._pool = pool
        self._redis = redis
        self._temporal = temporal
        self._key = maintenance_key
        self._kinds = list(projection_kinds)

    @activity.defn(name=names.ACT_RESTORE_RESOLVE)
    async def resolve(self, request: ResolveRequest) -> ResolvedBackup:
        """Find the backup (`latest` = newest verified); read-only."""
        with translated_errors():
            entry = await self._service.resolve(request.backup_id)
        m = entry.manifest
        return ResolvedBackup(
            backup_id=m.backup_id,
            created_at=m.created_at,
            size_bytes=m.size_bytes,
            sha256=m.sha256,
            schema_version=m.schema_version.current,
            status=entry.status.value,
            rows={name: t.rows for name, t in m.tables.items()},
        )

    @activity.defn(name=names.ACT_RESTORE_ENTER_MAINTENANCE)
    async def enter_maintenance(self, request: MaintenanceRequest) -> None:
        """Maintenance flag on in Redis and Postgres (upsert)."""
        await maintenance.enter(
            self._pool,
            self._redis,
            self._key,
            reason=request.reason,
            workflow_id=request.workflow_id,
        )
        log.warning("maintenance mode ON", reason=request.reason, workflow_id=request.workflow_id)

    @activity.defn(name=names.ACT_RESTORE_DATABASE)
    async def restore_database(self, request: RestoreDatabaseRequest) -> RestoreDatabaseResult:
        """pg_restore the backup over the connector database (one transaction), then migrate."""
        with translated_errors():
            outcome = await self._service.restore(
                request.backup_id,
                expected_sha256=request.sha256,
                heartbeat=lambda d: activity.heartbeat(d),
            )
        # Connections opened before the restore may hold plans for dropped tables.
        await self._pool.expire_connections()
        # The restore replaced connector_meta with the backup's: set the durable flag again.
        await maintenance.enter(
            self._pool,
            self._redis,
            self._key,
            reason=request.reason,
            workflow_id=request.workflow_id,
        )
        log.info(
            "database restored",
            backup_id=request.backup_id,
            rows=sum(outcome.restored_rows.values()),
            migrations_applied=outcome.migrations_applied,
        )
        return RestoreDatabaseResult(
            backup_id=request.backup_id,
            restored_rows=outcome.restored_rows,
            migrations_applied=outcome.migrations_applied,
            duration_seconds=outcome.duration_seconds,
        )

    @activity.defn(name=names.ACT_RESTORE_RECONCILE)
    async def reconcile(self, request: ReconcileRequest) -> ReconcileResult:
        """Re-project every workflow whose view is newer than its restored row (version guard)."""
        if self._temporal is None:
            raise RuntimeError("reconciliation needs a Temporal client")

        def progress(kind: str, done: int, total: int) -> None:
            activity.heartbeat({"stage": "reconcile", "kind": kind, "done": done, "total": total})

        started = time.monotonic()
        counts = await reconcile(
            self._temporal, self._pool, self._kinds, only=request.kinds, progress=progress
        )
        result = ReconcileResult(
            kinds={
                name: ReconcileCounts(
                    examined=c.examined,
                    reprojected=c.reprojected,
                    unchanged=c.unchanged,
                    failed=c.failed,
                    errors=c.errors,
                )
                for name, c in counts.items()
            }
        )
        log.info(
            "projections reconciled",
            seconds=round(time.monotonic() - started, 3),
            **{name: c.model_dump(exclude={"errors"}) for name, c in result.kinds.items()},
        )
        return result

    @activity.defn(name=names.ACT_RESTORE_LEAVE_MAINTENANCE)
    async def leave_maintenance(self, request: MaintenanceRequest) -> None:
        """Maintenance flag off in Postgres and Redis (delete)."""
        await maintenance.leave(self._pool, self._redis, self._key)
        log.warning("maintenance mode OFF", workflow_id=request.workflow_id)

    @activity.defn(name=names.ACT_RESTORE_HEALTH_CHECK)
    async def health_check(self, _: HealthRequest) -> HealthReport:
        """Database, schema, Redis and Temporal reachable (the /ready checks)."""
        checks: dict[str, health.Check] = {
            "database": health.database_check(self._pool),
            "migrations": health.migrations_check(self._pool),
        }
        if self._redis is not None:
            checks["redis"] = health.redis_check(self._redis)
        if self._temporal is not None:
            checks["temporal"] = health.temporal_check(self._temporal)
        results = {name: await health.run_check(check) for name, check in checks.items()}
        return HealthReport(
            healthy=all(r.healthy for r in results.values()),
            checks={name: r.error for name, r in results.items()},
        )
