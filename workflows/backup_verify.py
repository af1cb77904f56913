"""`ops.backup_verify`: restore one existing backup into a scratch database and compare (issue 8).

`connector backup verify ID`. A mismatch marks the backup failed (never `latest` again), is
recorded in metrics and fails this workflow.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from connector.core.errors import ErrorCode
    from workflows import backup_options as options
    from workflows import names
    from workflows.backup_contracts import (
        OpsProgress,
        OutcomeRecord,
        VerifyInput,
        VerifyRequest,
        VerifyResult,
    )


@workflow.defn(name=names.WF_BACKUP_VERIFY)
class BackupVerifyWorkflow:
    def __init__(self) -> None:
        self._progress = OpsProgress(stage="starting")

    @workflow.query(name=names.QRY_OPS_PROGRESS)
    def progress(self) -> OpsProgress:
        return self._progress

    @workflow.run
    async def run(self, inp: VerifyInput) -> VerifyResult:
        self._progress = OpsProgress(stage="verify", backup_id=inp.backup_id)
        wf_id = workflow.info().workflow_id
        try:
            result: VerifyResult = await workflow.execute_activity(
                names.ACT_BACKUP_VERIFY,
                VerifyRequest(backup_id=inp.backup_id),
                result_type=VerifyResult,
                **options.LONG_STEP,
            )
        except Exception as exc:
            await self._record(wf_id, inp.backup_id, ok=False, error=str(exc.__cause__ or exc))
            raise
        await self._record(
            wf_id,
            inp.backup_id,
            ok=result.verified,
            verified=result.verified,
            error=None if result.verified else "; ".join(result.mismatches),
            duration=result.duration_seconds,
        )
        if not result.verified:
            self._progress = OpsProgress(stage="failed", backup_id=inp.backup_id, done=["verify"])
            raise ApplicationError(
                f"backup {inp.backup_id} failed verification: " + "; ".join(result.mismatches),
                result,
                type=ErrorCode.UNPROCESSABLE.value,
                non_retryable=True,
            )
        self._progress = OpsProgress(stage="done", backup_id=inp.backup_id, done=["verify"])
        return result

    async def _record(
        self,
        wf_id: str,
        backup_id: str,
        *,
        ok: bool,
        verified: bool | None = None,
        error: str | None = None,
        duration: float | None = None,
    ) -> None:
        await workflow.execute_activity(
            names.ACT_BACKUP_RECORD_OUTCOME,
            OutcomeRecord(
                stage="verify",
                ok=ok,
                workflow_id=wf_id,
                backup_id=backup_id,
                verified=verified,
                error=error,
                duration_seconds=duration,
            ),
            **options.SHORT_STEP,
        )
