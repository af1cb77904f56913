"""BackupActivities: dump, verify, prune and record outcomes (task queue `connector.ops`).

Thin adapters over `connector.backup.service.BackupService`. Idempotency: the backup id comes from
the workflow, and a retried dump first discards whatever an earlier attempt of that id left, so
the target holds one published copy at most. Long steps heartbeat their progress.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from connector.backup.service import BackupService
from connector.core.backup import known_status
from connector.core.errors import ConnectorError
from connector.runtime.logging import get_logger
from connector.runtime.metrics import Metrics
from connector.settings import BackupSettings
from connector.stores.migrate import MIGRATIONS_TABLE
from workflows import names
from workflows.backup_contracts import (
    DumpRequest,
    DumpResult,
    OutcomeRecord,
    PruneRequest,
    PruneResult,
    VerifyRequest,
    VerifyResult,
)

log = get_logger(__name__)

STATUS_KEY_PREFIX = "backup.last_"
RUN_STAGES = ("backup", "restore")


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """Deliberate refusals (ConnectorError) are final; anything else is retried."""
    try:
        yield
    except ConnectorError as exc:
        # Unknown backup, corrupt archive, schema too new: a retry would refuse again.
        raise ApplicationError(str(exc), type=exc.code.value, non_retryable=True) from exc


async def publish_known_status(
    service: BackupService, pool: asyncpg.Pool | None, metrics: Metrics, settings: BackupSettings
) -> None:
    """Set the backup gauges from what the target holds, when the ops worker starts.

    A restarted worker then reports yesterday's backup instead of nothing, and a fresh install
    reports no backup at all rather than one from 1970. Best effort: an unreachable target or
    database leaves the gauges unset (the `ConnectorBackupMissing` rule notices after a day).
    """
    if settings.enabled and pool is not None:
        with contextlib.suppress(asyncpg.PostgresError, OSError):
            installed = await pool.fetchval(
                f"SELECT min(applied_at) FROM {MIGRATIONS_TABLE}"  # noqa: S608 (a constant)
            )
            if installed is not None:
                metrics.backup_expected_since.set(installed.timestamp())
    try:
        entries = await service.entries()
    except Exception as exc:  # any target error: the gauges stay unknown, the worker runs on
        log.warning("backup status unknown at start", error=str(exc))
        return
    status = known_status(entries, verify=settings.verify)
    if status.last_success is not None:
        metrics.backup_last_success.set(status.last_success)
    if status.size_bytes is not None:
        metrics.backup_size.set(status.size_bytes)
    if status.last_verified is not None:
        metrics.backup_last_verified.set(1 if status.last_verified else 0)


def _heartbeat(details: dict[str, Any]) -> None:
    activity.heartbeat(details)


class BackupActivities:
    def __init__(
        self,
        service: BackupService,
        *,
        pool: asyncpg.Pool | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._service = service
        self._pool = pool
        self._metrics = metrics

    @activity.defn(name=names.ACT_BACKUP_DUMP)
    async def dump(self, request: DumpRequest) -> DumpResult:
        """Dump the database to the target under `request.backup_id`; manifest published last."""
        started = time.monotonic()
        with translated_errors():
            manifest = await self._service.dump(
                request.backup_id,
                trigger=request.trigger,
                workflow_id=request.workflow_id,
                heartbeat=_heartbeat,
            )
        duration = time.monotonic() - started
        if self._metrics is not None:
            self._metrics.backup_duration.labels(stage="dump").observe(duration)
        log.info(
            "backup dumped",
            backup_id=manifest.backup_id,
            size_bytes=manifest.size_bytes,
            rows=manifest.total_rows,
            target=self._service.storage.description,
        )
        return DumpResult(
            backup_id=manifest.backup_id,
            object_key=manifest.object_key,
            created_at=manifest.created_at,
            size_bytes=manifest.size_bytes,
            sha256=manifest.sha256,
            total_rows=manifest.total_rows,
            tables=len(manifest.tables),
            duration_seconds=duration,
        )

    @activity.defn(name=names.ACT_BACKUP_VERIFY)
    async def verify(self, request: VerifyRequest) -> VerifyResult:
        """Restore into a scratch DB, compare with the manifest, write the verification marker."""
        with translated_errors():
            verification = await self._service.verify(request.backup_id, heartbeat=_heartbeat)
        if self._metrics is not None:
            self._metrics.backup_last_verified.set(1 if verification.verified else 0)
            self._metrics.backup_duration.labels(stage="verify").observe(
                verification.duration_seconds
            )
        if not verification.verified:
            log.error(
                "backup verification failed",
                backup_id=request.backup_id,
                mismatches=verification.mismatches,
            )
        return VerifyResult(
            backup_id=verification.backup_id,
            verified=verification.verified,
            checksum_ok=verification.checksum_ok,
            mismatches=verification.mismatches,
            duration_seconds=verification.duration_seconds,
        )

    @activity.defn(name=names.ACT_BACKUP_PRUNE)
    async def prune(self, request: PruneRequest) -> PruneResult:
        """Delete backups outside the retention (manifest first) and stale partial objects."""
        with translated_errors():
            outcome = await self._service.prune(
                keep_daily=request.keep_daily,
                keep_weekly=request.keep_weekly,
                protect=request.protect,
            )
        if outcome.deleted:
            log.info("backups pruned", deleted=outcome.deleted)
        return PruneResult(
            deleted=outcome.deleted, kept=outcome.kept, partials_removed=outcome.partials_removed
        )

    @activity.defn(name=names.ACT_BACKUP_RECORD_OUTCOME)
    async def record_outcome(self, record: OutcomeRecord) -> None:
        """Metrics and the `backup.last_<stage>` status row; idempotent (last write wins)."""
        if self._metrics is not None:
            self._record_metrics(record)
        if record.ok:
            log.info("ops run succeeded", **record.model_dump())
        else:
            log.error("ops run FAILED", **record.model_dump())
        if self._pool is None:
            return
        # Best effort: after a failed restore the database may be unreachable.
        with contextlib.suppress(asyncpg.PostgresError, OSError):
            await self._pool.execute(
                "INSERT INTO connector_meta (key, value) VALUES ($1, $2::jsonb) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
                STATUS_KEY_PREFIX + record.stage,
                record.model_dump_json(),
            )

    def _record_metrics(self, record: OutcomeRecord) -> None:
        metrics = self._metrics
        if metrics is None:  # pragma: no cover - checked by the caller
            return
        if not record.ok:
            metrics.backup_failures.labels(stage=record.stage).inc()
            if record.verified is False:
                metrics.backup_last_verified.set(0)
            return
        # The verify activity observed its own step; whole runs are observed here.
        if record.duration_seconds is not None and record.stage in RUN_STAGES:
            metrics.backup_duration.labels(stage=record.stage).observe(record.duration_seconds)
        if record.stage == "backup":
            metrics.backup_last_success.set(time.time())
            if record.size_bytes is not None:
                metrics.backup_size.set(record.size_bytes)
        if record.verified is not None:
            metrics.backup_last_verified.set(1 if record.verified else 0)
