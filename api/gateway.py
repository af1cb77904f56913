"""The API's door to Temporal: inbound DSP messages become workflow updates, answers become
projections before the HTTP answer leaves (read-your-writes, decision 0003).

Temporal errors are mapped to the connector's error vocabulary in one function, `_map`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import asyncpg
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.worker_wait import settle_start, within_worker_wait
from connector.core.errors import (
    BadRequestError,
    ConnectorError,
    IllegalTransitionError,
    NotFoundError,
    UnavailableError,
)
from connector.core.ids import negotiation_workflow_id
from connector.core.negotiation.record import NegotiationRecord
from connector.core.negotiation.states import Direction, Role
from connector.stores import negotiations
from workflows import names
from workflows.contracts import InboundNegotiationMessage, NegotiationStart, OperatorDecision

T = TypeVar("T")


def update_id(own_pid: str, msg: InboundNegotiationMessage, seen_version: int = 0) -> str:
    """Stable per message content and the negotiation version it was judged against.

    A counterparty's retry is answered, not applied twice (see `deliver`); the same message sent
    again once the negotiation has moved on is judged again (a second identical offer while
    ACCEPTED, or a verification after FINALIZED, is a DSP 400, not the first one's cached 200).
    """
    # Content only: a retry is recognised whatever happened since (a crashed peer re-sends the
    # message after we acted on it). `seen_version` is kept for callers but not part of the id.
    del seen_version
    canonical = json.dumps(msg.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{own_pid}|{canonical}".encode()).hexdigest()[:32]


class TemporalGateway:
    def __init__(self, client: Client, pool: asyncpg.Pool, task_queue: str) -> None:
        self._client = client
        self._pool = pool
        self._task_queue = task_queue

    async def _project(self, record: NegotiationRecord) -> NegotiationRecord:
        async with self._pool.acquire() as conn:
            await negotiations.upsert_view(conn, record)
        return record

    async def deliver(
        self, role: Role, own_pid: str, msg: InboundNegotiationMessage, seen_version: int = 0
    ) -> NegotiationRecord:
        """Apply a counterparty's message; `seen_version` is the version the edge looked at.

        A retry of the message that made the current version (its answer was lost, or our worker
        crashed before the peer saw it) is answered with the current state instead of being
        judged again; anything else is judged by the state machine.
        """
        handle = self._client.get_workflow_handle(negotiation_workflow_id(role, own_pid))
        try:
            record: NegotiationRecord = await self._call(
                own_pid,
                lambda: handle.execute_update(
                    names.UPD_NEGOTIATION_RECEIVE,
                    msg,
                    id=update_id(own_pid, msg, seen_version),
                    result_type=NegotiationRecord,
                ),
            )
        except IllegalTransitionError:
            # The peer's last message, sent again: it never saw our answer (lost, or a crash),
            # even if we have acted on it since. Answer with the current state.
            current = await negotiations.get(self._pool, own_pid)
            judged_at = _last_inbound_version(current) if current is not None else None
            if judged_at is None or not await self._applied(
                handle, update_id(own_pid, msg, judged_at)
            ):
                raise
            return current  # type: ignore[return-value]  # checked above
        return await self._project(record)

    @staticmethod
    async def _applied(handle: WorkflowHandle[Any, Any], update: str) -> bool:
        """Whether update `update` was accepted and completed (also after the workflow closed)."""
        try:
            await handle.get_update_handle(update, result_type=NegotiationRecord).result(
                rpc_timeout=timedelta(seconds=2)
            )
        except (WorkflowUpdateFailedError, RPCError):
            return False
        return True

    async def start_with_message(
        self, start: NegotiationStart, msg: InboundNegotiationMessage
    ) -> NegotiationRecord:
        """The counterparty's first message creates our side (update-with-start)."""
        n = start.record.negotiation
        own_pid = start.record.own_pid
        operation: WithStartWorkflowOperation[Any, NegotiationRecord] = WithStartWorkflowOperation(
            names.WF_NEGOTIATION,
            start,
            id=negotiation_workflow_id(n.role, own_pid),
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            # A finished negotiation is final; a re-sent initial request gets its last state.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            result_type=NegotiationRecord,
        )
        try:
            record: NegotiationRecord = await self._call(
                own_pid,
                lambda: self._client.execute_update_with_start_workflow(
                    names.UPD_NEGOTIATION_RECEIVE,
                    msg,
                    start_workflow_operation=operation,
                    id=update_id(own_pid, msg),
                    result_type=NegotiationRecord,
                ),
            )
        except _AlreadyClosed:
            existing = await negotiations.get(self._pool, own_pid)
            if existing is None:
                raise NotFoundError(f"negotiation {own_pid} is unknown") from None
            return existing
        finally:
            await settle_start(operation)
        return await self._project(record)

    async def start(self, start: NegotiationStart) -> NegotiationRecord:
        """We initiate (consumer request): start the workflow; joins one already running."""
        n = start.record.negotiation
        own_pid = start.record.own_pid
        with contextlib.suppress(_AlreadyClosed):
            await self._call(
                own_pid,
                lambda: self._client.start_workflow(
                    names.WF_NEGOTIATION,
                    start,
                    id=negotiation_workflow_id(n.role, own_pid),
                    task_queue=self._task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                ),
            )
        existing = await negotiations.get(self._pool, own_pid)
        return existing or await self._project(start.record)

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
        return await self._project(record)

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

    async def _call(self, own_pid: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await within_worker_wait(call)
        except (WorkflowUpdateFailedError, RPCError, WorkflowAlreadyStartedError) as exc:
            raise await self._map(own_pid, exc) from None

    async def _map(self, own_pid: str, exc: Exception) -> Exception:
        if isinstance(exc, WorkflowUpdateFailedError):
            cause: BaseException | None = exc.cause
            while cause is not None and not isinstance(cause, ApplicationError):
                cause = cause.__cause__
            message = cause.message if isinstance(cause, ApplicationError) else str(exc)
            if isinstance(cause, ApplicationError) and cause.type == names.ERR_BAD_REQUEST:
                return BadRequestError(message)
            return IllegalTransitionError(message)
        if isinstance(exc, WorkflowAlreadyStartedError):
            return _AlreadyClosed()
        if isinstance(exc, RPCError):
            if exc.status == RPCStatusCode.NOT_FOUND:
                # The workflow is gone (closed, or never existed): the projection knows which.
                existing = await negotiations.get(self._pool, own_pid)
                if existing is not None and existing.negotiation.is_terminal:
                    state = existing.negotiation.state.value
                    return IllegalTransitionError(f"negotiation {own_pid} is {state}")
                return NotFoundError(f"negotiation {own_pid} is unknown")
            if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                return UnavailableError("the workflow engine is not reachable; retry shortly")
            return UnavailableError(f"workflow engine error: {exc.message}")
        return exc  # pragma: no cover


def _last_inbound_version(record: NegotiationRecord) -> int | None:
    """The version the peer's most recent message was judged against (None: it sent nothing)."""
    timeline = record.negotiation.timeline
    first_version = record.negotiation.version - len(timeline) + 1
    for index in range(len(timeline) - 1, -1, -1):
        if timeline[index].direction is Direction.IN:
            return first_version + index - 1
    return None


class _AlreadyClosed(ConnectorError):
    """Internal: update-with-start met a closed workflow with the same id."""
