"""`ops.restore`: disaster recovery from a backup (issue 8; ops/runbooks/backup-and-restore.md).

Maintenance on (DSP and management writes answer 503) → restore the backup (`pg_restore --clean
--if-exists`, one transaction, then forward migrations) → reconcile every registered projection
kind with its workflows' own view → maintenance off → health checks → report (RPO, RTO, counts).
Started by `connector restore` as `restore:{backup_id}`, or from the Temporal UI.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import backup_options as options
    from workflows import names
    from workflows.backup_contracts import (
        HealthReport,
        HealthRequest,
        MaintenanceRequest,
        OpsProgress,
        OutcomeRecord,
        ReconcileRequest,
        ReconcileResult,
        ResolvedBackup,
        ResolveRequest,
        RestoreDatabaseRequest,
        RestoreDatabaseResult,
        RestoreInput,
        RestoreReport,
    )


@workflow.defn(name=names.WF_RESTORE)
class RestoreWorkflow:
    def __init__(self) -> None:
        self._progress = OpsProgress(stage="starting")

    @workflow.query(name=names.QRY_OPS_PROGRESS)
    def progress(self) -> OpsProgress:
        return self._progress

    def _stage(self, stage: str, done: str) -> None:
        self._progress = self._progress.model_copy(
            update={"stage": stage, "done": [*self._progress.done, done]}
        )

    @workflow.run
    async def run(self, inp: RestoreInput) -> RestoreReport:
        started = workflow.now()
        wf_id = workflow.info().workflow_id
        self._progress = OpsProgress(stage="resolve")
        backup = await workflow.execute_activity(
            names.ACT_RESTORE_RESOLVE,
            ResolveRequest(backup_id=inp.backup_id),
            result_type=ResolvedBackup,
            **options.SHORT_STEP,
        )
        self._progress = OpsProgress(
            stage="maintenance", backup_id=backup.backup_id, done=["resolve"]
        )
        reason = f"restore of backup {backup.backup_id}"
        maintenance = MaintenanceRequest(reason=reason, workflow_id=wf_id)
        await workflow.execute_activity(
            names.ACT_RESTORE_ENTER_MAINTENANCE, maintenance, **options.SHORT_STEP
        )
        try:
            self._stage("restore", done="maintenance")
            restored = await workflow.execute_activity(
                names.ACT_RESTORE_DATABASE,
                RestoreDatabaseRequest(
                    backup_id=backup.backup_id,
                    sha256=backup.sha256,
                    workflow_id=wf_id,
                    reason=reason,
                ),
                result_type=RestoreDatabaseResult,
                **options.LONG_STEP,
            )
            reconciled = ReconcileResult()
            if inp.reconcile:
                self._stage("reconcile", done="restore")
                reconciled = await workflow.execute_activity(
                    names.ACT_RESTORE_RECONCILE,
                    ReconcileRequest(),
                    result_type=ReconcileResult,
                    **options.RECONCILE,
                )
        except Exception as exc:
            await self._record(wf_id, backup.backup_id, ok=False, error=str(exc.__cause__ or exc))
            raise
        finally:
            # The restore runs in one transaction: on failure the database is unchanged, so
            # leaving maintenance is right either way.
            await workflow.execute_activity(
                names.ACT_RESTORE_LEAVE_MAINTENANCE, maintenance, **options.SHORT_STEP
            )
        self._stage("health", done="reconcile" if inp.reconcile else "restore")
        health = await workflow.execute_activity(
            names.ACT_RESTORE_HEALTH_CHECK,
            HealthRequest(),
            result_type=HealthReport,
            **options.SHORT_STEP,
        )
        finished = workflow.now()
        report = RestoreReport(
            backup_id=backup.backup_id,
            backup_created_at=backup.created_at,
            started_at=started,
            finished_at=finished,
            restored_rows=restored.restored_rows,
            restored_rows_total=sum(restored.restored_rows.values()),
            reconciled=reconciled.kinds,
            reconciled_rows_total=reconciled.reprojected,
            migrations_applied=restored.migrations_applied,
            rpo_seconds=(started - backup.created_at).total_seconds(),
            rto_seconds=(finished - started).total_seconds(),
            healthy=health.healthy,
            health=health.checks,
        )
        await self._record(wf_id, backup.backup_id, ok=True, duration=report.rto_seconds)
        self._stage("done", done="health")
        return report

    async def _record(
        self,
        wf_id: str,
        backup_id: str,
        *,
        ok: bool,
        error: str | None = None,
        duration: float | None = None,
    ) -> None:
        await workflow.execute_activity(
            names.ACT_BACKUP_RECORD_OUTCOME,
            OutcomeRecord(
                stage="restore",
                ok=ok,
                workflow_id=wf_id,
                backup_id=backup_id,
                error=error,
                duration_seconds=duration,
            ),
            **options.SHORT_STEP,
        )
