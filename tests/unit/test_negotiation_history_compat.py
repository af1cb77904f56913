"""Negotiations started before decision 0008 (update-with-start, three scheduled sends) still
replay with today's workflow code: the new paths depend on the start input's `revision`, which
their histories lack, so a worker upgraded mid-negotiation takes the running ones over without a
non-determinism failure.

The histories were recorded between two connectors on loopback with the code of commit 4c319db
(provider and consumer of one negotiation to FINALIZED)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workers.main import workflow_runner
from workflows.negotiation import NegotiationWorkflow

HISTORIES = Path(__file__).parents[1] / "fixtures" / "histories"


@pytest.mark.parametrize("role", ["provider", "consumer"])
@pytest.mark.parametrize("sandbox", [True, False])
async def test_a_negotiation_recorded_before_0008_replays(role: str, sandbox: bool) -> None:
    path = HISTORIES / f"negotiation-{role}-before-0008.json"
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    kinds = [e.event_type for e in history.events]
    assert kinds.count(10) >= 1  # EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: the old scheduled sends
    replayer = Replayer(
        workflows=[NegotiationWorkflow],
        workflow_runner=workflow_runner(sandbox=sandbox),
        data_converter=pydantic_data_converter,
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
