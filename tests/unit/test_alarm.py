"""The one deadline timer of a workflow (workflows/alarm.py, decision 0025), on the dev server:
waits that end early share one timer and cancel none, a deadline still fires, a later deadline
is served after an earlier one rang, and an earlier one re-arms the timer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow

# The sandbox re-imports this module for the test workflow: the test's own imports pass through.
with workflow.unsafe.imports_passed_through():
    import pytest
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client
    from temporalio.worker import Worker

    from workers.main import workflow_runner
    from workflows.alarm import Alarm

pytestmark = pytest.mark.workflow


@workflow.defn(name="test.alarm")
class AlarmWorkflow:
    """Waits for `poke` signals; each wait's deadline is `deadlines[i]` seconds from the start."""

    def __init__(self) -> None:
        self._pokes = 0
        self._waits = 0

    @workflow.query
    def waits(self) -> int:
        return self._waits

    @workflow.signal
    def poke(self) -> None:
        self._pokes += 1

    @workflow.run
    async def run(self, deadlines: list[float]) -> list[bool]:
        alarm = Alarm()
        start = workflow.now()
        outcomes = []
        for seconds in deadlines:
            self._waits += 1
            outcomes.append(await alarm.wait(self._poked(), start + timedelta(seconds=seconds)))
        return outcomes

    def _poked(self) -> Callable[[], bool]:
        seen = self._pokes
        return lambda: self._pokes != seen


async def _run(client: Client, deadlines: list[float], pokes: int) -> tuple[list[bool], list[str]]:
    queue = f"alarm-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client, task_queue=queue, workflows=[AlarmWorkflow], workflow_runner=workflow_runner()
    ):
        handle = await client.start_workflow(
            AlarmWorkflow.run, deadlines, id=f"alarm-{uuid.uuid4()}", task_queue=queue
        )
        for wait in range(1, pokes + 1):
            # One poke per wait, sent once the workflow waits.
            while await handle.query(AlarmWorkflow.waits) < wait:
                await asyncio.sleep(0.05)
            await handle.signal(AlarmWorkflow.poke)
        result: list[bool] = await handle.result()
        events = [EventType.Name(e.event_type) async for e in handle.fetch_history_events()]
    return result, events


@pytest.fixture
async def client(temporal_address: str) -> Client:
    return await Client.connect(temporal_address, namespace="connector")


async def test_waits_that_end_early_share_one_timer_and_the_last_deadline_fires(
    client: Client,
) -> None:
    result, events = await _run(client, [60, 60, 60, 5], pokes=3)
    assert result == [True, True, True, False]
    # One timer for the three early waits (never cancelled), then the 5 s deadline: earlier
    # than the running timer, so that one is cancelled and a new one fires.
    assert events.count("EVENT_TYPE_TIMER_STARTED") == 2, events
    assert events.count("EVENT_TYPE_TIMER_CANCELED") == 1, events
    assert events.count("EVENT_TYPE_TIMER_FIRED") == 1, events


async def test_a_later_deadline_is_served_after_an_earlier_one_rang(client: Client) -> None:
    # The first wait ends early; its 3 s timer rings during the second wait (deadline 6 s),
    # which then waits on for the rest and ends at its own deadline.
    result, events = await _run(client, [3, 6], pokes=1)
    assert result == [True, False]
    assert events.count("EVENT_TYPE_TIMER_FIRED") == 2, events
    assert events.count("EVENT_TYPE_TIMER_CANCELED") == 0, events
