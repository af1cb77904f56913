"""Which workflows and activities each task queue runs (one Worker per queue per process)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from activities.backup import BackupActivities
from activities.dataplane import DataPlaneActivities
from activities.dcp_issuance import DcpIssuanceActivities, request_row
from activities.dsp_client import DspClientActivities
from activities.operator_webhook import OperatorWebhookActivities
from activities.projections import ProjectionActivities
from activities.restore import RestoreActivities
from connector.backup.node import node_sources
from connector.backup.service import BackupService
from connector.core.negotiation.record import NegotiationRecord
from connector.core.transfer.record import TransferRecord
from connector.encryption.keyring import DataKeys
from connector.encryption.runtime import data_keys
from connector.identity.holder import build_resolver
from connector.identity.runtime import Identity
from connector.runtime.metrics import Metrics
from connector.runtime.resources import Resources
from connector.services.maintenance import maintenance_key
from connector.services.reconcile import Projection, ProjectionKind, Upsert
from connector.settings import TaskQueues
from connector.stores import credentials, negotiations, transfers
from connector.stores.pool import database_url
from dataplane.client import SignalingClient
from dataplane.signaling import signaling_secret
from workflows import names
from workflows.backup import BackupWorkflow
from workflows.backup_verify import BackupVerifyWorkflow
from workflows.credential_contracts import CredentialRequestView
from workflows.credential_renewal import CredentialRenewalWorkflow
from workflows.credential_request import CredentialRequestWorkflow
from workflows.negotiation import NegotiationWorkflow
from workflows.restore import RestoreWorkflow
from workflows.transfer import TransferWorkflow


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
    dsp = DspClientActivities(ctx.identity, ctx.resources.pool)
    settings = ctx.resources.settings
    projections = ProjectionActivities(ctx.resources.pool, data_keys(settings), ctx.metrics)
    signaling = SignalingClient(settings.dataplane.signaling_base(), signaling_secret(settings))
    data_plane = DataPlaneActivities(signaling)
    webhook = OperatorWebhookActivities(settings.operator_webhook, ctx.identity.http)
    issuance = DcpIssuanceActivities(
        ctx.identity.http,
        ctx.identity.issuer,
        build_resolver(settings, ctx.resources.redis, ctx.identity.http),
        ctx.resources.pool,
    )
    return [
        dsp.send_negotiation_message,
        dsp.delivery_sent,
        projections.upsert_negotiation,
        dsp.send_transfer_message,
        projections.upsert_transfer,
        data_plane.start_flow,
        data_plane.resume_flow,
        data_plane.stop_flow,
        data_plane.await_flow,
        webhook.notify,
        issuance.request_credential,
        issuance.credential_status,
        issuance.expiring_credentials,
        issuance.upsert_credential_request,
    ]


async def _upsert_negotiation_view(conn: asyncpg.Connection, view: Mapping[str, Any]) -> bool:
    result = await negotiations.upsert_view(conn, NegotiationRecord.model_validate(view))
    return result.changed


async def _upsert_credential_request(conn: asyncpg.Connection, view: Mapping[str, Any]) -> bool:
    return await credentials.upsert_request(
        conn, request_row(CredentialRequestView.model_validate(view))
    )


def _transfer_upsert(keys: DataKeys) -> Upsert:
    async def upsert(conn: asyncpg.Connection, view: Mapping[str, Any]) -> bool:
        result = await transfers.upsert_view(conn, TransferRecord.model_validate(view), keys)
        return result.changed

    return upsert


def projection_kinds(keys: DataKeys, task_queue: str | None = None) -> list[ProjectionKind]:
    """Projection tables the DR restore rebuilds from their workflows
    (connector.services.reconcile), from the workflows of `task_queue` (the control queue they run
    on) when given; transfer records are written with their secrets sealed under `keys`."""
    return [
        Projection(
            name="negotiations",
            table=negotiations.TABLE,
            workflow_type=names.WF_NEGOTIATION,
            workflow_id_prefix="negotiation:",
            query=names.QRY_NEGOTIATION_VIEW,
            upsert_fn=_upsert_negotiation_view,
            version_field="negotiation.version",
            task_queue=task_queue,
        ),
        Projection(
            name="transfers",
            table=transfers.TABLE,
            workflow_type=names.WF_TRANSFER,
            workflow_id_prefix="transfer:",
            query=names.QRY_TRANSFER_VIEW,
            upsert_fn=_transfer_upsert(keys),
            version_field="transfer.version",
            task_queue=task_queue,
        ),
        Projection(
            name="credential_requests",
            table=credentials.REQUESTS_TABLE,
            workflow_type=names.WF_CREDENTIAL_REQUEST,
            workflow_id_prefix="credential-request:",
            query=names.QRY_CREDENTIAL_REQUEST_VIEW,
            upsert_fn=_upsert_credential_request,
            task_queue=task_queue,
        ),
    ]


def ops_activities(
    resources: Resources,
    metrics: Metrics | None = None,
    *,
    kinds: Sequence[ProjectionKind] | None = None,
) -> list[Callable[..., Any]]:
    """Backup, verification and restore activities (task queue `connector.ops`)."""
    settings = resources.settings
    keys = data_keys(settings)
    service = BackupService(
        settings.backup,
        settings.data_dir,
        database_url(settings.database),
        keys=keys,
        encrypt=settings.encryption.backups,
        node=node_sources(settings),
    )
    backup = BackupActivities(service, pool=resources.pool, metrics=metrics)
    restore = RestoreActivities(
        service,
        pool=resources.pool,
        redis=resources.redis,
        temporal=resources.temporal,
        maintenance_key=maintenance_key(settings.identity.resolved_participant_id(settings.server)),
        projection_kinds=(
            projection_kinds(keys, settings.temporal.task_queues.control)
            if kinds is None
            else kinds
        ),
    )
    return [
        backup.dump,
        backup.verify,
        backup.prune,
        backup.record_outcome,
        restore.resolve,
        restore.enter_maintenance,
        restore.restore_database,
        restore.reconcile,
        restore.leave_maintenance,
        restore.health_check,
    ]


def registry(queues: TaskQueues) -> dict[str, QueueRegistration]:
    return {
        queues.control: QueueRegistration(
            workflows=[
                NegotiationWorkflow,
                TransferWorkflow,
                CredentialRequestWorkflow,
                CredentialRenewalWorkflow,
            ],
            activities=_control_activities,
        ),
        queues.ops: QueueRegistration(
            workflows=[BackupWorkflow, BackupVerifyWorkflow, RestoreWorkflow],
            activities=lambda ctx: ops_activities(ctx.resources, ctx.metrics),
        ),
    }
