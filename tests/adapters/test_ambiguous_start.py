"""A start the operator asked for survives the workflow engine going away during it: the joining
start is sent again until the engine is back, so the answer is the started process, never a
5xx after a side effect (decision 0021). Real Temporal dev server, killed and started again on
the same port and database file."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy

from api.negotiation.gateway import NEGOTIATION
from api.process_gateway import ProcessGateway
from api.worker_wait import WORKER_ANSWER_SECONDS
from connector.core.negotiation.record import NegotiationRecord
from connector.runtime import embedded
from connector.runtime.runner import Child, _from_spec
from tests.services import _await

pytestmark = pytest.mark.integration

NAMESPACE = "connector"


async def _serve(root: Path, port: int) -> Child:
    child = _from_spec(embedded.temporal_spec(root, port, 0, NAMESPACE))
    await child.spawn()
    await _await(child)
    return child


async def test_a_joining_start_is_sent_again_while_the_engine_restarts(tmp_path: Path) -> None:
    port = embedded.free_port()
    server = await _serve(tmp_path, port)
    client = await Client.connect(f"127.0.0.1:{port}", namespace=NAMESPACE)
    gateway: ProcessGateway[NegotiationRecord] = ProcessGateway(
        client,
        None,  # the start alone reads no projection
        "ambiguous-start-test",
        NEGOTIATION,
    )
    gateway.eager_start = False  # no worker shares this client

    async def restart_later() -> Child:
        await asyncio.sleep(WORKER_ANSWER_SECONDS + 1.0)
        return await _serve(tmp_path, port)

    # The engine dies just before the start is sent; it is back only after a whole worker wait.
    assert server.process is not None
    server.process.kill()
    await server.process.wait()
    revived = asyncio.create_task(restart_later())
    try:
        started = await gateway._start_workflow(
            {"any": "input"},
            workflow_id="negotiation:ambiguous-1",
            own_pid="ambiguous-1",
            conflict=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=None,
        )
        assert started is True
        described = await client.get_workflow_handle("negotiation:ambiguous-1").describe()
        assert described.status is WorkflowExecutionStatus.RUNNING
        # Sent again (a retry after an unknown outcome): joins the same run, no second one.
        again = await gateway._start_workflow(
            {"any": "input"},
            workflow_id="negotiation:ambiguous-1",
            own_pid="ambiguous-1",
            conflict=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=None,
        )
        assert again is True
        assert (
            await client.get_workflow_handle("negotiation:ambiguous-1").describe()
        ).run_id == described.run_id
    finally:
        server = await revived
        await client.get_workflow_handle("negotiation:ambiguous-1").terminate()
        await server.stop(time.monotonic() + 5)
