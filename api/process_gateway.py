"""What the negotiation and transfer gateways share: starting a process's workflow, the first
inbound message (update-with-start, or a plain start of a process the service already opened,
decision 0008), projection before the HTTP answer (read-your-writes, decision 0003), and the one
mapping of Temporal errors to the connector's (`ProcessGateway._map`).

`api.negotiation.gateway.NegotiationGateway` (negotiations) and
`api.transfer.gateway.TransferGateway` add what differs: the updates each process accepts and what
an operator may ask of it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Generic, Protocol, TypeVar

import asyncpg
from pydantic import BaseModel
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.admission import Admission
from api.worker_wait import WORKER_ANSWER_SECONDS, settle_start, within_worker_wait
from connector.core.errors import (
    BadRequestError,
    ConnectorError,
    IllegalTransitionError,
    NotFoundError,
    UnavailableError,
)
from connector.http.errors import outage
from connector.runtime.logging import get_logger
from workflows import names

__all__ = ["AlreadyStarted", "ProcessGateway", "ProcessKind", "StartedUnprojected", "content_id"]

log = get_logger(__name__)


class _Versioned(Protocol):
    @property
    def version(self) -> int: ...


R = TypeVar("R", bound=_Versioned)
T = TypeVar("T")

# The server aborts an update whose workflow task failed (say UNHANDLED_COMMAND: an activity
# result arrived while the task ran); the update was not accepted, so sending it again is safe.
_TASK_FAILURE_MARK: Final = "unexpected workflow task failure"
_TASK_FAILURE_RETRIES: Final = 4
_TASK_FAILURE_PAUSE_SECONDS: Final = 0.05
#: How long a resend waits for the answer the first copy of its message got.
_ANSWER_POLL: Final = timedelta(seconds=2)
# A start that joins (USE_EXISTING) is idempotent by workflow id: when the engine failed while
# it ran, it may have started the workflow or not, so it is sent again until this budget is
# spent rather than answered 5xx (decision 0021).
_AMBIGUOUS_START_SECONDS: Final = 20.0
_AMBIGUOUS_START_PAUSE_SECONDS: Final = 0.25
# Set when `_call` sent an update again after such an abort (per request: a context variable).
_RESENT_AFTER_ABORT: ContextVar[bool] = ContextVar("resent_after_abort", default=False)


def content_id(scope: str, msg: BaseModel) -> str:
    """Stable per message content within `scope`: the update id of a counterparty's message, so
    a retry is answered, not applied twice (decision 0003)."""
    canonical = json.dumps(msg.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{scope}|{canonical}".encode()).hexdigest()[:32]


class StartedUnprojected(Exception):
    """Internal: the workflow was started (or joined), but its projection could not be read or
    written; `record` is what it was started with. The management routes answer 202 with it."""

    def __init__(self, record: Any) -> None:
        super().__init__(f"started, not projected: {record!r:.80}")
        self.record = record


class AlreadyStarted(ConnectorError):
    """Internal: a start met a workflow with the same id (closed, or running if the start
    refuses to join it)."""


@dataclass(frozen=True)
class ProcessKind(Generic[R]):
    """One kind of DSP process as the gateway sees it."""

    name: str  # "negotiation" / "transfer", in error messages
    workflow: str
    receive_update: str
    record_type: type[R]
    load: Callable[[asyncpg.Pool, str], Awaitable[R | None]]
    store: Callable[[asyncpg.Connection, R], Awaitable[Any]]
    # The state's name when the process has ended, else None.
    ended_in: Callable[[R], str | None]


class ProcessGateway(Generic[R]):
    #: Ask the server to hand a started workflow's first task straight back to a worker of this
    #: process's client (eager start: no poll for it). Only taken up when a worker shares the
    #: client (`connector up`, decision 0016); otherwise the SDK does not ask. A class attribute
    #: so the negotiation benchmark can measure without it.
    eager_start: bool = True

    def __init__(
        self,
        client: Client,
        pool: asyncpg.Pool,
        task_queue: str,
        kind: ProcessKind[R],
        admission: Admission | None = None,
    ) -> None:
        self._client = client
        self._pool = pool
        self._task_queue = task_queue
        self._kind = kind
        self._admission = admission

    async def _admit(self) -> None:
        """Wait at the door before a new process starts (decision 0032); nothing is started
        when it refuses."""
        if self._admission is not None:
            await self._admission.admit(self._kind.name)

    async def _project(self, record: R) -> R:
        async with self._pool.acquire() as conn:
            result = await self._kind.store(conn, record)
        self._projected(record, result)
        return record

    async def _applied_answer(self, record: R) -> R:
        """Project what an applied message (or decision) produced, and answer with it.

        The message is applied: the workflow holds it and projects its own state. A database
        outage here must not turn the answer into a 5xx after the side effect (DEVELOPERS.md):
        the caller would only re-send what we already took.
        """
        try:
            return await self._project(record)
        except Exception as exc:
            if outage(exc) is None:
                raise
            log.warning("applied, projection unavailable", kind=self._kind.name, error=str(exc))
            return record

    def _projected(self, record: R, result: Any) -> None:
        """Hook: the service wrote `record` (`result` is the store's answer)."""

    async def _deliver_message(
        self,
        handle: WorkflowHandle[Any, Any],
        own_pid: str,
        msg: BaseModel,
        *,
        update: str,
        seen_version: int,
    ) -> R:
        """Apply a counterparty's message as update `update` (its content id).

        Only a true retry, a copy of the message that produced the current state, is answered
        from what the first copy got; any other copy is judged again (an illegal one is a DSP
        400), also when the server still holds an answer for that content (decision 0019).
        `seen_version` is the version the service read before sending the update.
        """
        kind = self._kind

        def execute(update_id: str) -> Callable[[], Awaitable[R]]:
            return lambda: handle.execute_update(
                kind.receive_update, msg, id=update_id, result_type=kind.record_type
            )

        _RESENT_AFTER_ABORT.set(False)
        try:
            record: R = await self._call(own_pid, execute(update))
        except IllegalTransitionError:
            # Sent again after an abort, the message may have been applied by the retried
            # workflow task and then judged against its own result: it was ours to answer.
            current = await self._produced_current(
                handle, own_pid, update, applied_is_enough=_RESENT_AFTER_ABORT.get()
            )
            if current is None:
                raise
            return current
        if record.version < seen_version:
            # The answer stored for an earlier copy, and the process has moved on since: this
            # copy is a new message (e.g. the same offer again while ACCEPTED), judged now.
            record = await self._call(own_pid, execute(f"{update}@{seen_version}"))
        return await self._applied_answer(record)

    async def _produced_current(
        self,
        handle: WorkflowHandle[Any, Any],
        own_pid: str,
        update: str,
        *,
        applied_is_enough: bool = False,
    ) -> R | None:
        """The current record, if update `update` produced the current state (its answer got
        lost), or merely was applied when `applied_is_enough`; else None.

        The current state is the update's when the version is still its, or when both are the
        same terminal state (a terminal state is entered once; the workflow may still add to
        its timeline after it).
        """
        try:
            answered = handle.get_update_handle(update, result_type=self._kind.record_type)
            first: R = await answered.result(rpc_timeout=_ANSWER_POLL)
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            # The first copy is still being applied: its outcome is not ours to judge yet.
            raise UnavailableError(
                f"{self._kind.name} {own_pid}: this message is still being applied; "
                "send it again shortly"
            ) from None
        except (WorkflowUpdateFailedError, RPCError):
            return None
        current = await self._kind.load(self._pool, own_pid)
        if current is None:
            return first if applied_is_enough else None
        ended = self._kind.ended_in(first)
        same_end = ended is not None and ended == self._kind.ended_in(current)
        if applied_is_enough or same_end or current.version == first.version:
            return current
        return None

    async def _start_with_message(
        self, start: Any, msg: Any, *, workflow_id: str, own_pid: str, update: str
    ) -> R:
        """The counterparty's first message creates our side (update-with-start); a re-sent one
        joins the running workflow, and one for a finished process gets its last state."""
        await self._admit()
        kind = self._kind
        operation: WithStartWorkflowOperation[Any, R] = WithStartWorkflowOperation(
            kind.workflow,
            start,
            id=workflow_id,
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            # A finished process is final.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            result_type=kind.record_type,
        )
        try:
            record: R = await self._call(
                own_pid,
                lambda: self._client.execute_update_with_start_workflow(
                    kind.receive_update,
                    msg,
                    start_workflow_operation=operation,
                    id=update,
                    result_type=kind.record_type,
                ),
            )
        except AlreadyStarted:
            existing = await kind.load(self._pool, own_pid)
            if existing is None:
                raise NotFoundError(f"{kind.name} {own_pid} is unknown") from None
            return existing
        finally:
            await settle_start(operation)
        return await self._applied_answer(record)

    async def _start_workflow(
        self,
        start: Any,
        *,
        workflow_id: str,
        own_pid: str,
        conflict: WorkflowIDConflictPolicy,
        search_attributes: TypedSearchAttributes | None,
    ) -> bool:
        """Start the process's workflow; False when one with this id exists and is not joined
        (closed: a finished process is final; running, with `conflict` FAIL).

        A joining start whose outcome the engine left unknown is sent again within
        `_AMBIGUOUS_START_SECONDS` (decision 0021).
        """
        await self._admit()
        joins = conflict is WorkflowIDConflictPolicy.USE_EXISTING
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (_AMBIGUOUS_START_SECONDS if joins else 0.0)
        pause = _AMBIGUOUS_START_PAUSE_SECONDS
        while True:
            left = max(deadline - loop.time(), 0.0)
            try:
                await self._call(
                    own_pid,
                    lambda: self._client.start_workflow(
                        self._kind.workflow,
                        start,
                        id=workflow_id,
                        task_queue=self._task_queue,
                        id_conflict_policy=conflict,
                        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                        search_attributes=search_attributes,
                        request_eager_start=self.eager_start,
                    ),
                    wait_seconds=min(WORKER_ANSWER_SECONDS, left) if joins else None,
                )
            except AlreadyStarted:
                return False
            except UnavailableError:
                if not joins or loop.time() + pause >= deadline:
                    raise
                log.info("workflow start outcome unknown; sending it again", pid=own_pid)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
                continue
            return True

    async def _open(
        self,
        start: Any,
        *,
        workflow_id: str,
        own_pid: str,
        search_attributes: TypedSearchAttributes | None = None,
    ) -> bool:
        """Start the workflow of a process the service opened (the counterparty's first message is
        already applied to the start's record): no workflow task stands between the message and
        the answer (decision 0008). False when a workflow with this id exists, running or not.
        """
        return await self._start_workflow(
            start,
            workflow_id=workflow_id,
            own_pid=own_pid,
            conflict=WorkflowIDConflictPolicy.FAIL,
            search_attributes=search_attributes,
        )

    async def _start(
        self,
        start: Any,
        *,
        workflow_id: str,
        own_pid: str,
        initial: R,
        search_attributes: TypedSearchAttributes | None = None,
    ) -> R:
        """We initiate: start the workflow, or join the one already running.

        Raises:
            StartedUnprojected: the workflow runs, but its projection could not be read or
                written (Postgres down): the caller answers with the started record, not 5xx.
        """
        await self._start_workflow(
            start,
            workflow_id=workflow_id,
            own_pid=own_pid,
            conflict=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=search_attributes,
        )
        try:
            existing = await self._kind.load(self._pool, own_pid)
            return existing or await self._project(initial)
        except Exception as exc:
            # The process exists from here on (the workflow is the write model, decision 0001)
            # and projects itself; a 5xx now would make a retrying client start another one.
            log.warning(
                "started, projection unavailable", kind=self._kind.name, pid=own_pid, error=str(exc)
            )
            raise StartedUnprojected(initial) from exc

    async def _call(
        self,
        own_pid: str,
        call: Callable[[], Awaitable[T]],
        *,
        wait_seconds: float | None = None,
    ) -> T:
        for attempt in range(_TASK_FAILURE_RETRIES + 1):
            try:
                return await within_worker_wait(call, wait_seconds or WORKER_ANSWER_SECONDS)
            except RPCError as exc:
                aborted = _TASK_FAILURE_MARK in exc.message.lower()
                if not aborted or attempt == _TASK_FAILURE_RETRIES:
                    raise await self._map(own_pid, exc) from None
                log.info("update aborted by a failed workflow task; sending it again", pid=own_pid)
                _RESENT_AFTER_ABORT.set(True)
                await asyncio.sleep(_TASK_FAILURE_PAUSE_SECONDS * 2**attempt)
            except (WorkflowUpdateFailedError, WorkflowAlreadyStartedError) as exc:
                raise await self._map(own_pid, exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

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
            return AlreadyStarted()
        if isinstance(exc, RPCError):
            if exc.status == RPCStatusCode.NOT_FOUND:
                # The workflow is gone (closed, or never existed): the projection knows which.
                existing = await self._kind.load(self._pool, own_pid)
                ended = self._kind.ended_in(existing) if existing is not None else None
                if ended is not None:
                    return IllegalTransitionError(f"{self._kind.name} {own_pid} is {ended}")
                return NotFoundError(f"{self._kind.name} {own_pid} is unknown")
            if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                return UnavailableError("the workflow engine is not reachable; retry shortly")
            return UnavailableError(f"workflow engine error: {exc.message}")
        return exc  # pragma: no cover
