"""`dcp.credential_request`: ask an issuer for one credential, wait until it writes it back
(DCP 1.0 Credential Issuance Protocol; decision 0023).

Sends the CredentialRequestMessage (retried until the deadline), then waits for the
`credential.received` signal the Storage API sends once it stored what the issuer wrote back;
every `poll_interval_seconds` without it, it asks the issuer for the request's status and the
store for credentials of this request (a lost signal, an issuer that rejected without writing).
Ends ISSUED, REJECTED, or EXPIRED at the deadline; each step is projected (version-guarded).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import exceptions as temporal_errors
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from connector.core.identity.dcp_holder import poll_outcome
    from workflows import credential_options as options
    from workflows import names
    from workflows.credential_contracts import (
        CredentialReceived,
        CredentialRequestStart,
        CredentialRequestView,
        CredentialStatusAnswer,
        CredentialStatusQuery,
        RequestStatus,
        SendCredentialRequest,
        SentCredentialRequest,
    )


@workflow.defn(name=names.WF_CREDENTIAL_REQUEST)
class CredentialRequestWorkflow:
    @workflow.init
    def __init__(self, start: CredentialRequestStart) -> None:
        self._received: CredentialReceived | None = None
        now = workflow.now()
        self._view = CredentialRequestView(
            holder_pid=start.holder_pid,
            issuer_did=start.issuer_did,
            credential_type=start.credential_type,
            status="REQUESTED",
            deadline_at=now + timedelta(seconds=start.deadline_seconds),
            version=1,
            created_at=now,
            updated_at=now,
            renewal_of=start.renewal_of,
        )

    @workflow.signal(name=names.SIG_CREDENTIAL_RECEIVED)
    def received(self, message: CredentialReceived) -> None:
        # Another trusted issuer writing under our holderPid does not answer this request.
        if message.issuer_did not in (None, self._view.issuer_did):
            workflow.logger.warning("credential write by another issuer ignored")
            return
        if self._received is None or self._received.status != "ISSUED":
            self._received = message

    @workflow.query(name=names.QRY_CREDENTIAL_REQUEST_VIEW)
    def view(self) -> CredentialRequestView:
        return self._view

    @workflow.run
    async def run(self, start: CredentialRequestStart) -> CredentialRequestView:
        await self._project()
        try:
            sent = await workflow.execute_activity(
                names.ACT_REQUEST_CREDENTIAL,
                SendCredentialRequest(
                    holder_pid=start.holder_pid,
                    issuer_did=start.issuer_did,
                    credential_type=start.credential_type,
                ),
                result_type=SentCredentialRequest,
                schedule_to_close_timeout=self._remaining(),
                **options.SEND,
            )
        except ActivityError as exc:
            if isinstance(exc.cause, temporal_errors.TimeoutError):
                return await self._finish("EXPIRED", error="issuer not reached before the deadline")
            return await self._finish("REJECTED", error=_reason(exc))
        await self._update(issuer_pid=sent.issuer_pid)
        poll = timedelta(seconds=start.poll_interval_seconds)
        while self._received is None:
            remaining = self._remaining()
            if remaining <= timedelta(0):
                return await self._finish("EXPIRED", error="no credential before the deadline")
            try:
                await workflow.wait_condition(
                    lambda: self._received is not None, timeout=min(poll, remaining)
                )
            except TimeoutError:  # the wait's timeout: time to poll
                answer = await self._poll(start)
                if answer is not None:
                    outcome = poll_outcome(answer.held_ids, answer.issuer_status)
                    if outcome is not None:
                        self._received = CredentialReceived(
                            status=outcome, credential_ids=answer.held_ids
                        )
        return await self._finish(
            self._received.status, credential_ids=self._received.credential_ids
        )

    def _remaining(self) -> timedelta:
        return self._view.deadline_at - workflow.now()

    async def _poll(self, start: CredentialRequestStart) -> CredentialStatusAnswer | None:
        try:
            answer: CredentialStatusAnswer = await workflow.execute_activity(
                names.ACT_CREDENTIAL_STATUS,
                CredentialStatusQuery(holder_pid=start.holder_pid, issuer_did=start.issuer_did),
                result_type=CredentialStatusAnswer,
                **options.POLL,
            )
        except ActivityError as exc:
            workflow.logger.info("credential status poll failed: %s", _reason(exc))
            return None
        return answer

    async def _finish(
        self,
        status: RequestStatus,
        *,
        error: str | None = None,
        credential_ids: list[str] | None = None,
    ) -> CredentialRequestView:
        await self._update(status=status, error=error, credential_ids=credential_ids or [])
        return self._view

    async def _update(self, **changes: object) -> None:
        at: datetime = workflow.now()
        self._view = self._view.model_copy(
            update={**changes, "version": self._view.version + 1, "updated_at": at}
        )
        await self._project()

    async def _project(self) -> None:
        await workflow.execute_activity(
            names.ACT_PROJECT_CREDENTIAL_REQUEST, self._view, **options.LOCAL
        )


def _reason(exc: ActivityError) -> str:
    cause = exc.cause
    if isinstance(cause, ApplicationError):
        return " ".join(str(cause.message).split())[:500]
    return " ".join(str(cause or exc).split())[:500]
