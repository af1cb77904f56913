"""The API's door to Temporal for negotiations: a counterparty's opening message starts a workflow
(decision 0008), later messages become workflow updates; answers become projections before the
HTTP answer leaves (read-your-writes, decision 0003).

Starting and the mapping of Temporal errors to the connector's vocabulary are shared with
transfers (`api.process_gateway`).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, Final

import asyncpg
from temporalio.client import Client
from temporalio.common import TypedSearchAttributes
from temporalio.service import RPCError

from api.admission import Admission
from api.process_gateway import ProcessGateway, ProcessKind, content_id
from connector.core.errors import IllegalTransitionError, UnavailableError
from connector.core.ids import negotiation_workflow_id
from connector.core.negotiation.record import NegotiationRecord
from connector.core.negotiation.states import Role
from connector.runtime.metrics import Metrics
from connector.stores import negotiations
from workflows import names
from workflows.contracts import InboundNegotiationMessage, NegotiationStart, OperatorDecision
from workflows.search import negotiation_attributes

# How long a re-sent opening message waits for the first copy's projection.
_OPENING_POLLS: Final = 20
_OPENING_POLL_SECONDS: Final = 0.1


def update_id(own_pid: str, msg: InboundNegotiationMessage) -> str:
    """Stable per message content: a counterparty's retry is recognised (see `deliver`)."""
    return content_id(own_pid, msg)


def _ended_in(record: NegotiationRecord) -> str | None:
    return record.negotiation.state.value if record.negotiation.is_terminal else None


NEGOTIATION = ProcessKind(
    name="negotiation",
    workflow=names.WF_NEGOTIATION,
    receive_update=names.UPD_NEGOTIATION_RECEIVE,
    record_type=NegotiationRecord,
    load=negotiations.get,
    store=negotiations.upsert_view,
    ended_in=_ended_in,
)


class NegotiationGateway(ProcessGateway[NegotiationRecord]):
    def __init__(
        self,
        client: Client,
        pool: asyncpg.Pool,
        task_queue: str,
        metrics: Metrics | None = None,
        admission: Admission | None = None,
    ) -> None:
        super().__init__(client, pool, task_queue, NEGOTIATION, admission)
        self._metrics = metrics

    async def deliver(
        self, role: Role, own_pid: str, msg: InboundNegotiationMessage, seen_version: int
    ) -> NegotiationRecord:
        """Apply a counterparty's message; `seen_version` is the version the service looked at.

        A retry of the message that made the current state (its answer was lost, or our worker
        crashed before the peer saw it) is answered with that state; anything else is judged by
        the state machine (`ProcessGateway._deliver_message`).
        """
        handle = self._client.get_workflow_handle(negotiation_workflow_id(role, own_pid))
        return await self._deliver_message(
            handle, own_pid, msg, update=update_id(own_pid, msg), seen_version=seen_version
        )

    async def open_with_message(
        self, start: NegotiationStart, msg: InboundNegotiationMessage
    ) -> NegotiationRecord:
        """The counterparty's first message creates our side (decision 0008).

        The message is applied here, the workflow starts from the result and the projection is
        written before the answer: the 201 waits for neither a worker nor a workflow task. A
        re-sent identical message is answered with the negotiation's current state; a different
        one under the same pid is refused (DSP 400).
        """
        own_pid = start.record.own_pid
        digest = update_id(own_pid, msg)
        n = msg.apply_to(start.record.negotiation, at=start.record.negotiation.created_at)
        record = start.awaited(
            start.record.model_copy(update={"negotiation": n, "opening": digest})
        )
        workflow_id = negotiation_workflow_id(n.role, own_pid)
        opened = start.model_copy(update={"record": record})
        attributes = TypedSearchAttributes(negotiation_attributes(record))
        if not await self._open(
            opened, workflow_id=workflow_id, own_pid=own_pid, search_attributes=attributes
        ):
            return await self._reopened(own_pid, digest)
        return await self._applied_answer(record)

    def _projected(self, record: NegotiationRecord, result: Any) -> None:
        if isinstance(result, negotiations.UpsertResult) and result.changed and self._metrics:
            # Counted by whoever writes a version first (here, or the workflow's projection).
            self._metrics.negotiation_projected(record.negotiation, result.entered)

    async def _reopened(self, own_pid: str, digest: str) -> NegotiationRecord:
        """The opening message again, for a negotiation that exists (running or ended)."""
        existing = await negotiations.get(self._pool, own_pid)
        for _ in range(_OPENING_POLLS):
            if existing is not None:
                break
            # The first copy's answer is still being written (or its writer died after the
            # start; the workflow's first task projects it then).
            await asyncio.sleep(_OPENING_POLL_SECONDS)
            existing = await negotiations.get(self._pool, own_pid)
        if existing is None:
            raise UnavailableError(f"negotiation {own_pid} is being created; send it again shortly")
        if existing.opening == digest:
            return existing
        raise IllegalTransitionError(
            f"negotiation {own_pid} was opened by a different message; "
            "a new negotiation needs a new pid"
        )

    async def start(self, start: NegotiationStart) -> NegotiationRecord:
        """We initiate (consumer request): start the workflow; joins one already running."""
        own_pid = start.record.own_pid
        return await self._start(
            start,
            workflow_id=negotiation_workflow_id(start.record.negotiation.role, own_pid),
            own_pid=own_pid,
            initial=start.record,
            search_attributes=TypedSearchAttributes(negotiation_attributes(start.record)),
        )

    async def decide(
        self, role: Role, own_pid: str, decision: OperatorDecision
    ) -> NegotiationRecord:
        handle = self._client.get_workflow_handle(negotiation_workflow_id(role, own_pid))
        record: NegotiationRecord = await self._call(
            own_pid,
            lambda: handle.execute_update(
                names.UPD_NEGOTIATION_DECIDE, decision, result_type=NegotiationRecord
            ),
        )
        return await self._applied_answer(record)

    async def pending(self, role: Role, own_pid: str) -> dict[str, Any]:
        """What the workflow is doing right now: retries with their last failure and next try."""
        handle = self._client.get_workflow_handle(negotiation_workflow_id(role, own_pid))
        try:
            description = await handle.describe(rpc_timeout=timedelta(seconds=2))
        except RPCError:
            return {}
        raw = description.raw_description
        activities = []
        for act in raw.pending_activities:
            entry: dict[str, Any] = {
                "activity": act.activity_type.name,
                "attempt": act.attempt,
                "state": str(act.state),
            }
            if act.HasField("last_failure"):
                entry["lastError"] = act.last_failure.message
            if act.HasField("next_attempt_schedule_time"):
                entry["nextRetryAt"] = act.next_attempt_schedule_time.ToDatetime().isoformat() + "Z"
            activities.append(entry)
        return {
            "workflowId": description.id,
            "status": description.status.name if description.status else None,
            "pendingActivities": activities,
        }
