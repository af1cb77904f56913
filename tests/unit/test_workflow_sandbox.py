"""The workers' workflow runner (`workers.main.workflow_runner`, decision 0030) on the dev server:
workflow code still runs restricted (the clock, randomness and entropy are refused), and the
serialization contexts it hands the data converter are the ones the SDK's own sandbox hands it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

# The sandbox re-imports this module for the test workflows: the test's own imports pass through.
with workflow.unsafe.imports_passed_through():
    import os
    import random
    from datetime import UTC, datetime

    import pytest
    from temporalio.api.common.v1 import Payload
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client, WorkflowHandle
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.converter import (
        ActivitySerializationContext,
        PayloadCodec,
        SerializationContext,
        WithSerializationContext,
        WorkflowSerializationContext,
    )
    from temporalio.worker import Worker, WorkflowRunner
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    from workers.main import SANDBOX_PASSTHROUGH, workflow_runner

pytestmark = pytest.mark.workflow

ACTIVITY = "test.sandbox.echo"


@workflow.defn(name="test.sandbox.nondeterministic")
class NondeterministicWorkflow:
    """Makes the call its argument names: each is refused inside the sandbox."""

    @workflow.run
    async def run(self, call: str) -> str:
        if call == "clock":
            return datetime.now(UTC).isoformat()
        if call == "random":
            return str(random.random())  # noqa: S311 - the point is that it is refused
        return os.urandom(4).hex()


@activity.defn(name=ACTIVITY)
async def echo(value: str) -> str:
    return value


@workflow.defn(name="test.sandbox.activities")
class ActivitiesWorkflow:
    """One scheduled and one local activity: payloads with activity contexts both ways."""

    @workflow.run
    async def run(self, value: str) -> str:
        remote: str = await workflow.execute_activity(
            ACTIVITY, value, start_to_close_timeout=timedelta(seconds=10)
        )
        local: str = await workflow.execute_local_activity(
            ACTIVITY, remote + "!", start_to_close_timeout=timedelta(seconds=10)
        )
        return local


async def _failed_task_message(handle: WorkflowHandle[Any, Any]) -> str:
    """The failure of the run's first failed workflow task (it is retried, never completes)."""
    for _ in range(200):
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                return str(event.workflow_task_failed_event_attributes.failure.message)
        await asyncio.sleep(0.05)
    raise AssertionError("no workflow task failed")


@pytest.mark.parametrize(
    ("call", "refused"),
    [
        ("clock", "datetime.datetime.now"),
        ("random", "random.random"),
        ("entropy", "os.urandom"),
    ],
)
async def test_the_sandbox_refuses_nondeterministic_calls(
    temporal_address: str, call: str, refused: str
) -> None:
    client = await Client.connect(temporal_address, namespace="connector")
    queue = f"sandbox-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[NondeterministicWorkflow],
        workflow_runner=workflow_runner(sandbox=True),
    ):
        handle = await client.start_workflow(
            NondeterministicWorkflow.run,
            call,
            id=f"sandbox-{uuid.uuid4()}",
            task_queue=queue,
            execution_timeout=timedelta(seconds=30),
        )
        try:
            message = await _failed_task_message(handle)
        finally:
            await handle.terminate()
    assert "Cannot access" in message, message
    assert refused in message, message


class ContextRecorder(PayloadCodec, WithSerializationContext):
    """A pass-through codec that records every serialization context it is given."""

    def __init__(
        self, seen: list[tuple[str, str]], context: SerializationContext | None = None
    ) -> None:
        self.seen, self.context = seen, context

    def with_context(self, context: SerializationContext) -> ContextRecorder:
        return ContextRecorder(self.seen, context)

    def _note(self, direction: str) -> None:
        ctx = self.context
        if isinstance(ctx, ActivitySerializationContext):
            what = f"activity {ctx.activity_type} local={ctx.is_local} {ctx.activity_task_queue}"
        elif isinstance(ctx, WorkflowSerializationContext):
            what = f"workflow {ctx.workflow_id}"
        else:
            what = repr(ctx)
        self.seen.append((direction, what))

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        self._note("encode")
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        self._note("decode")
        return list(payloads)


async def _contexts(temporal_address: str, runner: WorkflowRunner) -> list[tuple[str, str]]:
    """What the codec saw for one run, ids and queue made the same across runs."""
    seen: list[tuple[str, str]] = []
    converter = dataclasses.replace(pydantic_data_converter, payload_codec=ContextRecorder(seen))
    client = await Client.connect(temporal_address, namespace="connector", data_converter=converter)
    queue = f"contexts-{uuid.uuid4().hex[:8]}"
    workflow_id = f"contexts-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[ActivitiesWorkflow],
        activities=[echo],
        workflow_runner=runner,
    ):
        result = await client.execute_workflow(
            ActivitiesWorkflow.run, "hi", id=workflow_id, task_queue=queue
        )
    assert result == "hi!"
    return [(d, w.replace(workflow_id, "<id>").replace(queue, "<queue>")) for d, w in seen]


async def test_the_codec_gets_the_contexts_the_sdk_sandbox_gives_it(
    temporal_address: str,
) -> None:
    sdk = SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*SANDBOX_PASSTHROUGH)
    )
    ours = await _contexts(temporal_address, workflow_runner(sandbox=True))
    theirs = await _contexts(temporal_address, sdk)
    # Both the workflow's own and the activities' contexts were asked for.
    assert ("encode", "activity test.sandbox.echo local=False <queue>") in ours, ours
    assert ("encode", "activity test.sandbox.echo local=True <queue>") in ours, ours
    assert ("decode", "workflow <id>") in ours, ours
    assert sorted(ours) == sorted(theirs)
