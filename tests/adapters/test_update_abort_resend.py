"""What the gateway's resend after an aborted update (decision 0019) can meet on the dev server,
when the process's run closes between the abort and the resend.

The server aborts an update whose workflow task it failed itself (UNHANDLED_COMMAND: the task
completed the run while a signal was waiting). The aborted update is dropped, not applied by the
retried task; so a resend that finds the run closed meets a run that never took the message, and
judging it (a DSP 400 for a finished process) is the truthful answer, not an error after a side
effect. A same-id resend to a closed run that did take the message is answered with the stored
result by the server itself.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

from temporalio import workflow

# The test workflow runs unsandboxed: its validator blocks the worker thread on purpose.
with workflow.unsafe.imports_passed_through():
    import asyncpg
    import pytest
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import (
        Client,
        WorkflowExecutionStatus,
        WorkflowHandle,
        WorkflowUpdateStage,
    )
    from temporalio.worker import Worker

    from api import process_gateway
    from api.negotiation.gateway import NEGOTIATION
    from api.process_gateway import _RESENT_AFTER_ABORT, ProcessGateway
    from connector.core.errors import NotFoundError, UnavailableError
    from connector.core.negotiation.record import NegotiationRecord
    from connector.stores.migrate import migrate
    from workers.main import workflow_runner

pytestmark = pytest.mark.workflow

# Long enough for the test to send the closing signal while the update's task runs.
_SLOW_TASK_SECONDS = 1.0


@workflow.defn(name="test.abort-resend")
class ClosingWorkflow:
    """Applies `take` updates; a `close` signal ends the run."""

    def __init__(self) -> None:
        self._taken: list[str] = []
        self._closing = False

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: self._closing or bool(self._taken))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._taken

    @workflow.signal
    def close(self) -> None:
        self._closing = True

    @workflow.update
    def take(self, message: str) -> list[str]:
        self._taken.append(message)
        return self._taken

    @take.validator
    def _slow(self, message: str) -> None:
        if not workflow.unsafe.is_replaying():
            time.sleep(_SLOW_TASK_SECONDS)


@pytest.fixture
async def pool(pg_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(pg_url, min_size=0, max_size=1)
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


def _gateway(client: Client, pool: asyncpg.Pool) -> ProcessGateway[NegotiationRecord]:
    # `_call` reads the projection only to name a closed process; none was written here.
    return ProcessGateway(client, pool, "unused", NEGOTIATION)


async def _accepted_updates(handle: WorkflowHandle[ClosingWorkflow, list[str]]) -> list[str]:
    return [
        event.workflow_execution_update_accepted_event_attributes.accepted_request.meta.update_id
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]


def _worker(client: Client, workflow: type) -> Worker:
    """A worker for `workflow` alone, on a task queue of its own."""
    return Worker(
        client,
        task_queue=f"abort-resend-{uuid.uuid4().hex[:8]}",
        workflows=[workflow],
        workflow_runner=workflow_runner(sandbox=False),
    )


async def _closing_during_the_update(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> tuple[WorkflowHandle[ClosingWorkflow, list[str]], Worker]:
    worker = _worker(client, ClosingWorkflow)
    # The resend waits until the retried task has closed the run.
    monkeypatch.setattr(process_gateway, "_TASK_FAILURE_PAUSE_SECONDS", 1.5)
    handle: WorkflowHandle[ClosingWorkflow, list[str]] = await client.start_workflow(
        ClosingWorkflow.run, id=f"abort-resend-{uuid.uuid4()}", task_queue=worker.task_queue
    )
    return handle, worker


async def test_a_resend_after_the_run_closed_meets_a_run_that_never_took_it(
    temporal_address: str, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await Client.connect(temporal_address, namespace="connector")
    handle, worker = await _closing_during_the_update(client, monkeypatch)
    async with worker:
        await handle.describe()  # started; its first task is done before the update goes out
        await asyncio.sleep(0.5)

        async def close_while_the_update_runs() -> None:
            await asyncio.sleep(_SLOW_TASK_SECONDS / 2)
            await handle.signal(ClosingWorkflow.close)

        closer = asyncio.create_task(close_while_the_update_runs())
        _RESENT_AFTER_ABORT.set(False)
        with pytest.raises(NotFoundError):
            await _gateway(client, pool)._call(
                "pid-1",
                lambda: handle.execute_update(ClosingWorkflow.take, "m", id="update-1"),
            )
        await closer
        assert _RESENT_AFTER_ABORT.get() is True  # the first copy was aborted, then sent again
        assert await handle.result() == []  # the run closed without the message
        assert (await handle.describe()).status is WorkflowExecutionStatus.COMPLETED
        assert await _accepted_updates(handle) == []


async def test_a_same_id_resend_to_a_closed_run_that_took_it_gets_the_stored_answer(
    temporal_address: str, pool: asyncpg.Pool
) -> None:
    client = await Client.connect(temporal_address, namespace="connector")
    async with _worker(client, ClosingWorkflow) as worker:
        handle = await client.start_workflow(
            ClosingWorkflow.run, id=f"abort-resend-{uuid.uuid4()}", task_queue=worker.task_queue
        )
        assert await handle.execute_update(ClosingWorkflow.take, "m", id="update-1") == ["m"]
        assert await handle.result() == ["m"]
        again = await _gateway(client, pool)._call(
            "pid-2", lambda: handle.execute_update(ClosingWorkflow.take, "m", id="update-1")
        )
        assert again == ["m"]
        answered = handle.get_update_handle("update-1", result_type=list)
        assert await answered.result() == ["m"]


@workflow.defn(name="test.abort-resend-held")
class HeldWorkflow:
    """Its `take` update is accepted and then waits for `release`: an update still in flight."""

    def __init__(self) -> None:
        self._released = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self._released)
        await workflow.wait_condition(workflow.all_handlers_finished)

    @workflow.signal
    def release(self) -> None:
        self._released = True

    @workflow.update
    async def take(self, message: str) -> str:
        await workflow.wait_condition(lambda: self._released)
        return message


async def test_a_resend_whose_first_copy_is_still_in_flight_is_asked_again_later(
    temporal_address: str, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first copy's answer does not come within the poll: a 503 (send it again), never the
    SDK's timeout escaping as a 500."""
    monkeypatch.setattr(process_gateway, "_ANSWER_POLL", timedelta(seconds=0.5))
    client = await Client.connect(temporal_address, namespace="connector")
    async with _worker(client, HeldWorkflow) as worker:
        handle = await client.start_workflow(
            HeldWorkflow.run, id=f"abort-resend-{uuid.uuid4()}", task_queue=worker.task_queue
        )
        await handle.start_update(
            HeldWorkflow.take, "m", id="update-held", wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )
        gateway = _gateway(client, pool)
        with pytest.raises(UnavailableError, match="still being applied"):
            await gateway._produced_current(handle, "pid-3", "update-held")
        await handle.signal(HeldWorkflow.release)
        await handle.result()
