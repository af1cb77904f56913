"""Durable Temporal names: workflow, update, query and activity types. Renaming Python symbols
never changes these strings; changing a string breaks running histories."""

from __future__ import annotations

from typing import Final

WF_NEGOTIATION: Final = "dsp.negotiation"
UPD_NEGOTIATION_RECEIVE: Final = "negotiation.receive"
UPD_NEGOTIATION_DECIDE: Final = "negotiation.decide"
QRY_NEGOTIATION_VIEW: Final = "negotiation.view"
ACT_SEND_NEGOTIATION_MESSAGE: Final = "dsp.send_negotiation_message"
# Whether any attempt of an outbound message got as far as writing it (decision 0010).
ACT_DELIVERY_SENT: Final = "dsp.delivery_sent"
ACT_PROJECT_NEGOTIATION: Final = "projection.upsert_negotiation"

WF_TRANSFER: Final = "dsp.transfer"
UPD_TRANSFER_RECEIVE: Final = "transfer.receive"
UPD_TRANSFER_COMMAND: Final = "transfer.command"
QRY_TRANSFER_VIEW: Final = "transfer.view"
ACT_SEND_TRANSFER_MESSAGE: Final = "dsp.send_transfer_message"
ACT_PROJECT_TRANSFER: Final = "projection.upsert_transfer"
# Data Plane Signaling calls (the data plane process moves the bytes, never a worker).
ACT_DATAPLANE_START: Final = "dataplane.start_flow"
ACT_DATAPLANE_RESUME: Final = "dataplane.resume_flow"
ACT_DATAPLANE_STOP: Final = "dataplane.stop_flow"
ACT_DATAPLANE_AWAIT: Final = "dataplane.await_flow"
# The operator webhook: a process started waiting for a person (decision 0013).
ACT_NOTIFY_OPERATOR: Final = "operator.notify"

# ApplicationError types activities raise (the `type` string, never a class name).
ERR_PEER_REJECTED: Final = "dsp_peer_rejected"
ERR_PEER_UNREACHABLE: Final = "dsp_peer_unreachable"
# Nothing of the request was written (no connection, or its journal mark failed): this attempt
# cannot have delivered it (retryable, like unreachable).
ERR_PEER_NOT_CONNECTED: Final = "dsp_peer_not_connected"
ERR_OUTBOUND_REFUSED: Final = "dsp_outbound_refused"
ERR_ILLEGAL_TRANSITION: Final = "illegal_transition"
ERR_BAD_REQUEST: Final = "bad_request"
ERR_DATAPLANE_REFUSED: Final = "dataplane_refused"

# --- backup and disaster recovery (task queue `connector.ops`, issue 8) ---------------------
WF_BACKUP: Final = "ops.backup"
WF_BACKUP_VERIFY: Final = "ops.backup_verify"
WF_RESTORE: Final = "ops.restore"
QRY_OPS_PROGRESS: Final = "ops.progress"

ACT_BACKUP_DUMP: Final = "backup.dump"
ACT_BACKUP_VERIFY: Final = "backup.verify"
ACT_BACKUP_PRUNE: Final = "backup.prune"
ACT_BACKUP_RECORD_OUTCOME: Final = "backup.record_outcome"
ACT_RESTORE_RESOLVE: Final = "restore.resolve_backup"
ACT_RESTORE_ENTER_MAINTENANCE: Final = "restore.enter_maintenance"
ACT_RESTORE_DATABASE: Final = "restore.restore_database"
ACT_RESTORE_RECONCILE: Final = "restore.reconcile"
ACT_RESTORE_LEAVE_MAINTENANCE: Final = "restore.leave_maintenance"
ACT_RESTORE_HEALTH_CHECK: Final = "restore.health_check"

SCHEDULE_BACKUP: Final = "nightly-db-backup"
SCHEDULE_BACKUP_ACTION_ID: Final = "backup"  # the Schedule appends the scheduled time


def manual_backup_workflow_id(stamp: str) -> str:
    return f"backup-manual-{stamp}"


def verify_workflow_id(backup_id: str, stamp: str) -> str:
    return f"backup-verify:{backup_id}:{stamp}"


def restore_workflow_id(backup_id: str) -> str:
    return f"restore:{backup_id}"


# --- DCP holder: credential issuance and renewal (decision 0023) ------------------------------
WF_CREDENTIAL_REQUEST: Final = "dcp.credential_request"
WF_CREDENTIAL_RENEWAL: Final = "dcp.credential_renewal"
# The Storage API received what the issuer wrote back for one request.
SIG_CREDENTIAL_RECEIVED: Final = "credential.received"
QRY_CREDENTIAL_REQUEST_VIEW: Final = "credential_request.view"
ACT_REQUEST_CREDENTIAL: Final = "dcp.request_credential"
ACT_CREDENTIAL_STATUS: Final = "dcp.credential_status"
ACT_EXPIRING_CREDENTIALS: Final = "dcp.expiring_credentials"
ACT_PROJECT_CREDENTIAL_REQUEST: Final = "projection.upsert_credential_request"
ERR_ISSUER_REJECTED: Final = "dcp_issuer_rejected"

SCHEDULE_CREDENTIAL_RENEWAL: Final = "credential-renewal"
SCHEDULE_CREDENTIAL_RENEWAL_ACTION_ID: Final = "credential-renewal"  # + the scheduled time


def credential_request_workflow_id(holder_pid: str) -> str:
    return f"credential-request:{holder_pid}"
