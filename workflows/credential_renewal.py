"""`dcp.credential_renewal`: request a new credential for every held credential that expires
within the window (decision 0023). Run daily by the `credential-renewal` Schedule.

Each renewal is its own `dcp.credential_request` workflow (abandoned by this one when it ends,
so it keeps running and shows in the UI and in `GET /management/v1/credentials/requests` with
`renewalOf`). A credential with a renewal running or issued is not renewed again.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from workflows import credential_options as options
    from workflows import names
    from workflows.credential_contracts import (
        CredentialRequestStart,
        ExpiringAnswer,
        ExpiringQuery,
        RenewalInput,
        RenewalResult,
    )


@workflow.defn(name=names.WF_CREDENTIAL_RENEWAL)
class CredentialRenewalWorkflow:
    @workflow.run
    async def run(self, inp: RenewalInput) -> RenewalResult:
        before = workflow.now() + timedelta(seconds=inp.window_seconds)
        expiring = await workflow.execute_activity(
            names.ACT_EXPIRING_CREDENTIALS,
            ExpiringQuery(before=before),
            result_type=ExpiringAnswer,
            **options.LOCAL,
        )
        requested: list[str] = []
        for credential in expiring.credentials:
            holder_pid = f"urn:uuid:{workflow.uuid4()}"
            await workflow.start_child_workflow(
                names.WF_CREDENTIAL_REQUEST,
                CredentialRequestStart(
                    holder_pid=holder_pid,
                    issuer_did=credential.issuer_did,
                    credential_type=credential.credential_type,
                    deadline_seconds=inp.deadline_seconds,
                    poll_interval_seconds=inp.poll_interval_seconds,
                    renewal_of=credential.credential_id,
                ),
                id=names.credential_request_workflow_id(holder_pid),
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
            requested.append(holder_pid)
        return RenewalResult(requested=requested)
