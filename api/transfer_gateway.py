"""The API's door to Temporal for transfer processes: inbound DSP messages and operator commands
become workflow updates; answers become projections before the HTTP answer leaves
(read-your-writes, as for negotiations in `api.gateway`).

Temporal errors are mapped to the connector's error vocabulary in one function, `_map`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
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
from connector.core.ids import transfer_workflow_id
from connector.core.transfer.record import TransferRecord
from connector.core.transfer.states import Role
from connector.stores import transfers
from workflows import names
from workflows.contracts import InboundTransferMessage, TransferCommand, TransferStart

T = TypeVar("T")


def update_id(own_pid: str, msg: InboundTransferMessage) -> str:
    """Stable per message content: a counterparty's retry is answered, not applied twice."""
    canonical = json.dumps(msg.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"transfer|{own_pid}|{canonical}".encode()).hexdigest()[:32]


class _AlreadyClosed(ConnectorError):
    """Internal: update-with-start met a closed workflow with the same id."""


class TransferGateway:
    def __init__(self, client: Client, pool: asyncpg.Pool, task_queue: str) -> None:
        self._client = client
        self._pool = pool
        self._task_queue = task_queue

    async def _project(self, record: TransferRecord) -> TransferRecord:
        async with self._pool.acquire() as conn:
            await transfers.upsert_view(conn, record)
        return record

    async def deliver(
        self, role: Role, own_pid: str, msg: InboundTransferMessage
    ) -> TransferRecord:
        handle = self._client.get_workflow_handle(transfer_workflow_id(role, own_pid))
        record: TransferRecord = await self._call(
            own_pid,
            lambda: handle.execute_update(
                names.UPD_TRANSFER_RECEIVE,
                msg,
                id=update_id(own_pid, msg),
                result_type=TransferRecord,
            ),
        )
        return await self._project(record)

    async def start_with_message(
        self, start: TransferStart, msg: InboundTransferMessage
    ) -> TransferRecord:
        """The consumer's TransferRequestMessage creates our (provider) side."""
        t = start.record.transfer
        own_pid = start.record.own_pid
        operation: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            names.WF_TRANSFER,
            start,
            id=transfer_workflow_id(t.role, own_pid),
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            result_type=TransferRecord,
        )
        try:
            record: TransferRecord = await self._call(
                own_pid,
                lambda: self._client.execute_update_with_start_workflow(
                    names.UPD_TRANSFER_RECEIVE,
                    msg,
                    start_workflow_operation=operation,
                    id=update_id(own_pid, msg),
                    result_type=TransferRecord,
                ),
            )
        except _AlreadyClosed:
            existing = await transfers.get(self._pool, own_pid)
            if existing is None:
                raise NotFoundError(f"transfer {own_pid} is unknown") from None
            return existing
        finally:
            await settle_start(operation)
        return await self._project(record)

    async def start(self, start: TransferStart) -> TransferRecord:
        """We initiate (consumer request): start the workflow; joins one already running."""
        t = start.record.transfer
        own_pid = start.record.own_pid
        with contextlib.suppress(_AlreadyClosed):
            await self._call(
                own_pid,
                lambda: self._client.start_workflow(
                    names.WF_TRANSFER,
                    start,
                    id=transfer_workflow_id(t.role, own_pid),
                    task_queue=self._task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                ),
            )
        existing = await transfers.get(self._pool, own_pid)
        return existing or await self._project(start.record)

    async def command(self, role: Role, own_pid: str, cmd: TransferCommand) -> TransferRecord:
        handle = self._client.get_workflow_handle(transfer_workflow_id(role, own_pid))
        record: TransferRecord = await self._call(
            own_pid,
            lambda: handle.execute_update(
                names.UPD_TRANSFER_COMMAND, cmd, result_type=TransferRecord
            ),
        )
        return record

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
                existing = await transfers.get(self._pool, own_pid)
                if existing is not None and existing.transfer.is_terminal:
                    state = existing.transfer.state.value
                    return IllegalTransitionError(f"transfer {own_pid} is {state}")
                return NotFoundError(f"transfer {own_pid} is unknown")
            if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                return UnavailableError("the workflow engine is not reachable; retry shortly")
            return UnavailableError(f"workflow engine error: {exc.message}")
        return exc  # pragma: no cover
