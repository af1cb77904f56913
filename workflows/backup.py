"""`ops.backup`: dump the connector database to the backup target, verify it, prune (issue 8).

Started by the `nightly-db-backup` Schedule or `connector backup now`. Every step is an activity
on `connector.ops`; a failure is recorded (metrics, status row) before the workflow fails loudly.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from connector.core.backup import backup_id_for
    from connector.core.errors import ErrorCode
    from workflows import backup_options as options
    from workflows import names
    from workflows.backup_contracts import (
        BackupInput,
        BackupResult,
        DumpRequest,
        DumpResult,
        OpsProgress,
        OutcomeRecord,
        PruneRequest,
        PruneResult,
        VerifyRequest,
        VerifyResult,
    )


@workflow.defn(name=names.WF_BACKUP)
class BackupWorkflow:
    def __init__(self) -> None:
        self._progress = OpsProgress(stage="starting")

    @workflow.query(name=names.QRY_OPS_PROGRESS)
    def progress(self) -> OpsProgress:
        return self._progress

    def _stage(self, stage: str, done: str | None = None) -> None:
        finished = [*self._progress.done, done] if done else self._progress.done
        self._progress = self._progress.model_copy(update={"stage": stage, "done": finished})

    @workflow.run
    async def run(self, inp: BackupInput) -> BackupResult:
        started = workflow.now()
        wf_id = workflow.info().workflow_id
        backup_id = backup_id_for(started, workflow.uuid4().hex[:6])
        self._progress = OpsProgress(stage="dump", backup_id=backup_id)
        try:
            dump: DumpResult = await workflow.execute_activity(
                names.ACT_BACKUP_DUMP,
                DumpRequest(backup_id=backup_id, trigger=inp.trigger, workflow_id=wf_id),
                result_type=DumpResult,
                **options.LONG_STEP,
            )
            verification = None
            if inp.verify:
                self._stage("verify", done="dump")
                verification = await workflow.execute_activity(
                    names.ACT_BACKUP_VERIFY,
                    VerifyRequest(backup_id=backup_id),
                    result_type=VerifyResult,
                    **options.LONG_STEP,
                )
                if not verification.verified:
                    raise ApplicationError(
                        f"backup {backup_id} failed verification: "
                        + "; ".join(verification.mismatches),
                        type=ErrorCode.UNPROCESSABLE.value,
                        non_retryable=True,
                    )
            pruned = PruneResult()
            if inp.prune:
                self._stage("prune", done="verify" if inp.verify else "dump")
                pruned = await workflow.execute_activity(
                    names.ACT_BACKUP_PRUNE,
                    PruneRequest(
                        keep_daily=inp.keep_daily,
                        keep_weekly=inp.keep_weekly,
                        protect=[backup_id],
                    ),
                    result_type=PruneResult,
                    **options.SHORT_STEP,
                )
        except Exception as exc:
            await self._record(wf_id, backup_id, started, ok=False, error=_message(exc))
            self._progress = self._progress.model_copy(
                update={"stage": "failed", "error": _message(exc)}
            )
            raise
        duration = (workflow.now() - started).total_seconds()
        verified = verification.verified if verification else None
        await self._record(
            wf_id, backup_id, started, ok=True, size=dump.size_bytes, verified=verified
        )
        self._stage("done", done="prune" if inp.prune else None)
        return BackupResult(
            backup_id=backup_id,
            object_key=dump.object_key,
            size_bytes=dump.size_bytes,
            sha256=dump.sha256,
            total_rows=dump.total_rows,
            verified=verified,
            pruned=pruned.deleted,
            duration_seconds=duration,
        )

    async def _record(
        self,
        wf_id: str,
        backup_id: str,
        started: datetime,
        *,
        ok: bool,
        size: int | None = None,
        verified: bool | None = None,
        error: str | None = None,
    ) -> None:
        elapsed = (workflow.now() - started).total_seconds()
        await workflow.execute_activity(
            names.ACT_BACKUP_RECORD_OUTCOME,
            OutcomeRecord(
                stage="backup",
                ok=ok,
                workflow_id=wf_id,
                backup_id=backup_id,
                size_bytes=size,
                duration_seconds=elapsed,
                verified=verified,
                error=error,
            ),
            **options.SHORT_STEP,
        )


def _message(exc: BaseException) -> str:
    # An ActivityError's own message is generic; the cause carries the activity's error.
    cause = exc.__cause__ or exc
    return " ".join(str(cause).split())[:500] or type(cause).__name__
