"""One durable timer for a workflow's deadlines (decision 0025).

A wait bounded by `workflow.wait_condition(..., timeout=...)` starts a timer for every wait and
cancels it when the wait ends early, which it nearly always does: two history events, two
server commands and a timer task per wait. The alarm instead keeps one timer running for the
earliest deadline asked for; a wait that ends early leaves it running for the next wait, and a
later deadline is served by re-arming once the earlier one rang. A finished workflow drops a
timer still running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow


class Alarm:
    def __init__(self) -> None:
        # Counts rings: a waiter compares it with the count it saw when it began.
        self.rang = 0
        # The time the last ring was set for: a deadline at or before it has passed, whatever
        # the clock's rounding says.
        self.rang_for: datetime | None = None
        self._at: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    def arm(self, at: datetime) -> None:
        """Make sure the alarm rings at `at` or before."""
        running = self._task is not None and not self._task.done()
        if running and self._at is not None and self._at <= at:
            return
        if self._task is not None:
            self._task.cancel()
        self._at = at
        self._task = asyncio.create_task(self._ring(at))

    async def _ring(self, at: datetime) -> None:
        await workflow.sleep(max(at - workflow.now(), timedelta(milliseconds=1)))
        self.rang += 1
        self.rang_for = at

    async def wait(self, done: Callable[[], bool], deadline: datetime | None) -> bool:
        """Wait until `done()` holds (True) or `deadline` passed (False)."""
        while not done():
            if deadline is not None:
                if deadline <= workflow.now() or (
                    self.rang_for is not None and deadline <= self.rang_for
                ):
                    return False
                self.arm(deadline)
            await self._ring_or(done)
        return True

    async def _ring_or(self, done: Callable[[], bool]) -> None:
        rang = self.rang
        await workflow.wait_condition(lambda: done() or self.rang != rang)
