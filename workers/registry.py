"""Which workflows and activities each task queue runs (one Worker per queue per process)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from activities import bench as bench_activities
from connector.resources import Resources
from connector.settings import TaskQueues
from workflows.bench import BareWorkflow


@dataclass(frozen=True)
class QueueRegistration:
    workflows: Sequence[type]
    activities: Callable[[Resources], Sequence[Callable[..., Any]]]


def registry(queues: TaskQueues) -> dict[str, QueueRegistration]:
    return {
        queues.control: QueueRegistration(
            workflows=[BareWorkflow],
            activities=lambda _: [bench_activities.noop],
        ),
        queues.dataplane: QueueRegistration(
            workflows=[],
            activities=lambda _: [bench_activities.noop],
        ),
        queues.ops: QueueRegistration(
            workflows=[],
            activities=lambda _: [bench_activities.noop],
        ),
    }
