"""Which workflows and activities each task queue runs (one Worker per queue per process)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from activities import bench as bench_activities
from activities.dsp_client import DspClientActivities
from activities.projections import ProjectionActivities
from connector.identity.runtime import Identity
from connector.metrics import Metrics
from connector.resources import Resources
from connector.settings import TaskQueues
from workflows.bench import BareWorkflow
from workflows.negotiation import NegotiationWorkflow


@dataclass(frozen=True)
class WorkerContext:
    """What activities are built from, once per worker process."""

    resources: Resources
    identity: Identity
    metrics: Metrics | None = None


@dataclass(frozen=True)
class QueueRegistration:
    workflows: Sequence[type]
    activities: Callable[[WorkerContext], Sequence[Callable[..., Any]]]


def _control_activities(ctx: WorkerContext) -> list[Callable[..., Any]]:
    dsp = DspClientActivities(ctx.identity)
    projections = ProjectionActivities(ctx.resources.pool, ctx.metrics)
    return [bench_activities.noop, dsp.send_negotiation_message, projections.upsert_negotiation]


def registry(queues: TaskQueues) -> dict[str, QueueRegistration]:
    return {
        queues.control: QueueRegistration(
            workflows=[BareWorkflow, NegotiationWorkflow],
            activities=_control_activities,
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
