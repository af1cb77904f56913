"""Admission of new processes (decision 0032): while the control task queue holds at least
`admission.max_backlog` tasks no worker has taken, a new negotiation or transfer waits at the door
up to `admission.wait_seconds`, then is refused 503 + `Retry-After`. Messages of running processes
are always taken: they are what lets the backlog fall.

The backlog is the one KEDA scales workers on (`task_queue_backlog`), read from Temporal at most
every `admission.refresh_seconds` per process and shared by every request of that process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Final

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from connector.core.errors import OverloadedError
from connector.runtime.logging import get_logger
from connector.runtime.metrics import Metrics
from connector.settings import AdmissionSettings

__all__ = ["Admission", "task_queue_backlog"]

log = get_logger(__name__)

_DESCRIBE_TIMEOUT: Final = timedelta(seconds=2)
#: How long a request waits for a new reading of the backlog before it uses the last one.
_FRESH_WAIT: Final = 0.25


async def task_queue_backlog(client: Client, namespace: str, queue: str) -> int:
    """Approximate number of workflow and activity tasks waiting for a worker on `queue`."""
    total = 0
    for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
        described = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=namespace,
                task_queue=TaskQueue(name=queue),
                task_queue_type=kind,
                report_stats=True,
            ),
            timeout=_DESCRIBE_TIMEOUT,
        )
        total += described.stats.approximate_backlog_count
    return total


class Admission:
    """The door new processes pass (one per control plane process)."""

    def __init__(
        self,
        measure: Callable[[], Awaitable[int]],
        settings: AdmissionSettings,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._measure = measure
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._backlog = 0
        self._measured_at = -float("inf")
        self._reading: asyncio.Task[None] | None = None

    async def backlog(self) -> int:
        """The backlog, read anew when the last reading is older than `refresh_seconds`.

        A request waits at most `_FRESH_WAIT` for a new reading, then goes on with the last one
        (the reading goes on in the background): with Temporal hung, the start's own bound
        answers for it (api/worker_wait.py), not this one.
        """
        stale = self._clock() - self._measured_at >= self._settings.refresh_seconds
        if stale:
            if self._reading is None or self._reading.done():
                self._reading = asyncio.get_running_loop().create_task(self.refresh())
            await asyncio.wait({self._reading}, timeout=_FRESH_WAIT)
        return self._backlog

    async def refresh(self) -> None:
        """Read the backlog now. When it cannot be read, processes are admitted: the start itself
        then meets whatever keeps Temporal from answering, and answers for it."""
        try:
            self._backlog = await self._measure()
        except Exception as exc:
            log.warning("task queue backlog unreadable; admitting", error=str(exc))
            self._backlog = 0
        self._measured_at = self._clock()

    async def aclose(self) -> None:
        """Stop a reading in flight (the control plane is shutting down)."""
        if self._reading is not None:
            self._reading.cancel()
            await asyncio.gather(self._reading, return_exceptions=True)

    async def admit(self, process: str) -> None:
        """Return once a new `process` ("negotiation", "transfer") may start; raise
        `OverloadedError` when the backlog stayed at or over the limit for `wait_seconds`."""
        cfg = self._settings
        if cfg.max_backlog == 0:
            return
        arrived = self._clock()
        while (backlog := await self.backlog()) >= cfg.max_backlog:
            waited = self._clock() - arrived
            if waited + cfg.refresh_seconds > cfg.wait_seconds:
                self._observe(process, waited, refused=True)
                raise OverloadedError(
                    f"the connector is at capacity: {backlog} tasks wait for a worker (limit "
                    f"{cfg.max_backlog}); no {process} was started, send the request again later",
                    retry_after=cfg.retry_after_seconds,
                )
            await asyncio.sleep(cfg.refresh_seconds)
        self._observe(process, self._clock() - arrived, refused=False)

    def _observe(self, process: str, waited: float, *, refused: bool) -> None:
        if self._metrics is None:
            return
        self._metrics.admission_wait.labels(process).observe(waited)
        if refused:
            self._metrics.admission_refused.labels(process).inc()
