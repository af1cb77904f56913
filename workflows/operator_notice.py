"""Tell the operator webhook that a process started waiting for a person (decision 0013).

Shared by the negotiation and transfer workflows: one line where a wait begins,

    notify_operator(notice)        # notice = negotiation_notice(record) / transfer_notice(record)

which returns at once. The notice goes out as the `operator.notify` activity, retried with
back-off until delivered, refused for good (4xx, SSRF guard), or the wait's deadline passed; the
workflow never waits for it. The webhook's URL and secret are read by the activity from its
settings, so neither is in the workflow's history; when none is configured the activity does
nothing.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from connector.core.ids import negotiation_workflow_id, transfer_workflow_id
    from connector.core.negotiation.record import NegotiationRecord
    from connector.core.transfer.record import TransferRecord
    from workflows import names, options
    from workflows.contracts import OperatorNotice


def _notice_id(workflow_id: str, version: int, kind: str) -> str:
    # Stable per wait (workflow, the version it began at, what it awaits): a replayed or retried
    # notice carries the same id, and the receiver deduplicates on it.
    return f"{workflow_id}/{version}/{kind}"


def transfer_notice(record: TransferRecord) -> OperatorNotice | None:
    """The notice for what `record` awaits (None: it awaits no one)."""
    awaiting, t = record.awaiting, record.transfer
    if awaiting is None:
        return None
    return OperatorNotice(
        id=_notice_id(transfer_workflow_id(t.role, record.own_pid), t.version, awaiting.kind),
        process="transfer",
        process_id=record.own_pid,
        role=t.role.value,
        state=awaiting.state.value,
        awaiting=awaiting.kind,
        since=awaiting.since,
        deadline=awaiting.deadline,
        counterparty_id=t.counterparty_id,
        commands=awaiting.commands,
    )


def negotiation_notice(record: NegotiationRecord) -> OperatorNotice | None:
    """The notice for what `record` awaits (None: it awaits no one)."""
    awaiting, n = record.awaiting, record.negotiation
    if awaiting is None:
        return None
    kind = str(awaiting.kind)
    return OperatorNotice(
        id=_notice_id(negotiation_workflow_id(n.role, record.own_pid), n.version, kind),
        process="negotiation",
        process_id=record.own_pid,
        role=n.role.value,
        state=n.state.value,
        awaiting=kind,
        since=awaiting.since,
        deadline=awaiting.deadline,
        counterparty_id=n.counterparty_id,
        commands=tuple(str(d) for d in awaiting.decisions),
    )


def notify_operator(notice: OperatorNotice) -> asyncio.Task[None]:
    """Send `notice` in the background; its failure is logged, never raised."""

    async def deliver() -> None:
        until = options.NOTIFY_OPERATOR_UNBOUNDED
        if notice.deadline is not None:
            until = max(notice.deadline - workflow.now(), options.NOTIFY_OPERATOR_MIN_WINDOW)
        try:
            await workflow.execute_activity(
                names.ACT_NOTIFY_OPERATOR,
                notice,
                result_type=bool,
                start_to_close_timeout=options.NOTIFY_OPERATOR_TIMEOUT,
                schedule_to_close_timeout=until,
                retry_policy=options.NOTIFY_OPERATOR_RETRY,
            )
        except (ActivityError, ApplicationError) as err:
            cause = err.cause if isinstance(err, ActivityError) and err.cause else err
            workflow.logger.warning("operator webhook not delivered: %s", cause)

    return asyncio.create_task(deliver())
