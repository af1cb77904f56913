"""Replay tier (STYLE.md §15, 4b) over real histories: both roles of a negotiation to FINALIZED
and of a pull transfer to COMPLETED, recorded between two connectors, replayed in the sandbox.
A workflow that reads the clock, draws randomness, does I/O or takes another path on replay
fails here, also for an operator who runs workers with `workers.workflow_sandbox` off."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from connector.temporal.client import connect
from connector.temporal.codec import data_converter
from tests.e2e.transfer_helpers import MIB, agreement_for, edr, pull, random_file, start_transfer
from tests.twoconn import Connector, connector_pair
from workers.main import workflow_runner
from workflows import names
from workflows.negotiation import NegotiationWorkflow
from workflows.transfer import TransferWorkflow

pytestmark = pytest.mark.e2e


async def histories(connector: Connector, expected: int) -> list[WorkflowHistory]:
    """Every closed workflow of this connector's private control queue."""
    client = await connect(connector.settings)
    query = (
        f'TaskQueue="{connector.settings.temporal.task_queues.control}" '
        'AND ExecutionStatus="Completed"'
    )
    for _ in range(100):  # visibility trails the close by a moment
        found = [wf async for wf in client.list_workflows(query)]
        if len(found) >= expected:
            break
        await asyncio.sleep(0.1)
    return [
        await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history() for wf in found
    ]


async def test_recorded_histories_of_both_roles_replay_in_the_sandbox(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    async with connector_pair(
        pg_server_url, redis_url, temporal_address, tmp_path, provider_dataplane="inproc"
    ) as (provider, consumer):
        base = provider.settings.dataplane.file_base_path
        assert base is not None
        sha = random_file(base / "replay.bin", MIB)
        agreement_id = await agreement_for(
            provider, consumer, "replay-asset", data_address={"type": "file", "path": "replay.bin"}
        )
        transfer_id = await start_transfer(consumer, provider, agreement_id)
        started = await consumer.wait_transfer(transfer_id, {"STARTED", "TERMINATED"})
        assert started["state"] == "STARTED", started
        token = await edr(consumer, transfer_id)
        assert (await pull(token["endpoint"], token["authorization"]))[1] == sha
        done = await consumer.wait_transfer(transfer_id, {"COMPLETED", "TERMINATED"})
        assert done["state"] == "COMPLETED", done
        await provider.wait_transfer(done["providerPid"], {"COMPLETED"})

        for connector in (provider, consumer):
            # The histories hold encrypted payloads: the replayer decodes with the connector's
            # codec and key ring, as its workers do.
            replayer = Replayer(
                workflows=[NegotiationWorkflow, TransferWorkflow],
                workflow_runner=workflow_runner(sandbox=True),
                data_converter=data_converter(connector.settings),
            )
            recorded = await histories(connector, expected=2)
            types = sorted(
                h.events[0].workflow_execution_started_event_attributes.workflow_type.name
                for h in recorded
            )
            assert types == sorted([names.WF_NEGOTIATION, names.WF_TRANSFER]), types
            for history in recorded:
                result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
                assert result.replay_failure is None, (connector.name, history.workflow_id)
