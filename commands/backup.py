"""Operator side of backups and DR: the backup Schedule and the `connector backup|restore` commands.

They start workflows, so they need the workflow names and contracts, which `connector` may not
import (decision 0029). `connector.cli` calls in lazily; the ops worker ensures the Schedule when
it starts, and so does `connector temporal-bootstrap` (`commands.bootstrap`).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TextIO

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from connector.backup.node import node_sources
from connector.backup.service import BackupService
from connector.backup.storage import StorageError, describe
from connector.core.errors import ConnectorError
from connector.encryption.runtime import data_keys
from connector.settings import Settings
from connector.stores.pool import database_url
from workflows import names
from workflows.backup_contracts import (
    BackupInput,
    BackupResult,
    OpsProgress,
    RestoreInput,
    RestoreReport,
    VerifyInput,
    VerifyResult,
)

MANAGED_NOTE: Final = "managed by the connector (backup.* settings)"
DISABLED_NOTE: Final = "disabled in configuration (backup.enabled=false)"
BACKUP_EXECUTION_TIMEOUT: Final = timedelta(hours=6)
POLL_SECONDS: Final = 0.5

Out = Callable[[str], None]


def _printer(stream: TextIO) -> Out:
    def out(line: str) -> None:
        print(line, file=stream, flush=True)

    return out


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def backup_input(settings: Settings, *, trigger: str, verify: bool | None = None) -> BackupInput:
    b = settings.backup
    return BackupInput(
        trigger=trigger,
        verify=b.verify if verify is None else verify,
        keep_daily=b.keep_daily,
        keep_weekly=b.keep_weekly,
    )


def desired_schedule(settings: Settings) -> Schedule:
    b = settings.backup
    return Schedule(
        action=ScheduleActionStartWorkflow(
            names.WF_BACKUP,
            backup_input(settings, trigger="schedule"),
            id=names.SCHEDULE_BACKUP_ACTION_ID,
            task_queue=settings.temporal.task_queues.ops,
            execution_timeout=BACKUP_EXECUTION_TIMEOUT,
        ),
        spec=ScheduleSpec(cron_expressions=[b.schedule], time_zone_name=b.time_zone),
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP,
            catchup_window=timedelta(seconds=b.catchup_window_seconds),
            pause_on_failure=False,  # alert on connector_backup_failures_total instead
        ),
        state=ScheduleState(
            note=MANAGED_NOTE if b.enabled else DISABLED_NOTE, paused=not b.enabled
        ),
    )


async def ensure_backup_schedule(client: Client, settings: Settings) -> str:
    """Create/update `nightly-db-backup` from configuration; an operator's pause survives."""
    from connector.temporal.client import ensure_schedule

    return await ensure_schedule(
        client, names.SCHEDULE_BACKUP, desired_schedule(settings), disabled_note=DISABLED_NOTE
    )


def service_for(settings: Settings) -> BackupService:
    try:
        url = database_url(settings.database)
    except ValueError:
        url = ""  # listing and resolving backups need no database
    return BackupService(
        settings.backup,
        settings.data_dir,
        url,
        keys=data_keys(settings),
        encrypt=settings.encryption.backups,
        node=node_sources(settings),
    )


async def connect_client(settings: Settings) -> Client:
    from connector.temporal.client import connect

    temporal = settings.temporal
    if temporal.address is None:
        # `connector up` runs the dev server on the embedded port.
        temporal = temporal.model_copy(update={"address": f"127.0.0.1:{temporal.embedded_port}"})
        settings = settings.model_copy(update={"temporal": temporal})
    return await connect(settings)


# --- progress ------------------------------------------------------------------------------


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


async def _heartbeat_detail(client: Client, handle: WorkflowHandle[Any, Any]) -> str:
    try:
        described = await handle.describe()
    except RPCError:
        return ""
    parts = []
    for pending in described.raw_description.pending_activities:
        if not pending.heartbeat_details.payloads:
            continue
        details = await client.data_converter.decode(pending.heartbeat_details.payloads)
        for detail in details:
            if isinstance(detail, dict):
                if "bytes" in detail:
                    parts.append(f"{detail.get('stage', '')} {_human_bytes(detail['bytes'])}")
                elif "total" in detail:
                    parts.append(
                        f"{detail.get('kind', '')} {detail.get('done')}/{detail.get('total')}"
                    )
        if pending.attempt > 1:
            parts.append(f"attempt {pending.attempt}")
    return ", ".join(p.strip() for p in parts if p.strip())


async def follow(client: Client, handle: WorkflowHandle[Any, Any], out: Out) -> None:
    """Print stage changes and heartbeat progress until the workflow closes."""
    result = asyncio.ensure_future(handle.result())
    last = ""
    try:
        while not result.done():
            line = ""
            try:
                progress = await handle.query(names.QRY_OPS_PROGRESS, result_type=OpsProgress)
                line = f"  {progress.stage}"
                if progress.backup_id:
                    line += f" [{progress.backup_id}]"
            except (RPCError, Exception):  # the workflow may not have started a task yet
                line = "  waiting for a worker"
            detail = await _heartbeat_detail(client, handle)
            if detail:
                line += f"  {detail}"
            if line != last:
                out(line)
                last = line
            await asyncio.wait({result}, timeout=POLL_SECONDS)
    finally:
        if not result.done():
            result.cancel()


def _failure(exc: WorkflowFailureError) -> str:
    cause: BaseException | None = exc.cause
    messages = []
    while cause is not None:
        messages.append(str(cause))
        cause = cause.__cause__
    return " <- ".join(m for m in messages if m) or str(exc)


# --- commands ------------------------------------------------------------------------------


async def backup_now(
    client: Client, settings: Settings, *, verify: bool | None, wait: bool, out: Out
) -> int:
    handle = await client.start_workflow(
        names.WF_BACKUP,
        backup_input(settings, trigger="manual", verify=verify),
        id=names.manual_backup_workflow_id(_stamp()),
        task_queue=settings.temporal.task_queues.ops,
        execution_timeout=BACKUP_EXECUTION_TIMEOUT,
        result_type=BackupResult,
    )
    out(f"started {names.WF_BACKUP} as {handle.id} (namespace {settings.temporal.namespace})")
    if not wait:
        return 0
    await follow(client, handle, out)
    try:
        result: BackupResult = await handle.result()
    except WorkflowFailureError as exc:
        out(f"backup FAILED: {_failure(exc)}")
        return 1
    verified = {True: "verified", False: "NOT verified", None: "not verified (disabled)"}
    out(
        f"backup {result.backup_id} done in {result.duration_seconds:.1f} s: "
        f"{_human_bytes(result.size_bytes)}, {result.total_rows} rows, "
        f"{verified[result.verified]}; sha256 {result.sha256}"
    )
    if result.pruned:
        out(f"pruned: {', '.join(result.pruned)}")
    return 0


async def backup_list(settings: Settings, *, as_json: bool, out: Out) -> int:
    service = service_for(settings)
    entries = await service.entries()
    rows = describe(entries)
    if as_json:
        out(json.dumps(rows, indent=2))
        return 0
    out(f"backups in {service.storage.description}:")
    if not rows:
        out("  (none)")
    for row in rows:
        out(
            f"  {row['backup_id']}  {row['created_at']}  {_human_bytes(row['size_bytes']):>10}"
            f"  {row['rows']:>9} rows  schema {row['schema_version']}  {row['status']}"
            + ("  node" if row["node_parts"] else "")
        )
    return 0


async def backup_verify(client: Client, settings: Settings, backup_id: str, out: Out) -> int:
    handle = await client.start_workflow(
        names.WF_BACKUP_VERIFY,
        VerifyInput(backup_id=backup_id),
        id=names.verify_workflow_id(backup_id, _stamp()),
        task_queue=settings.temporal.task_queues.ops,
        execution_timeout=BACKUP_EXECUTION_TIMEOUT,
        result_type=VerifyResult,
    )
    out(f"started {names.WF_BACKUP_VERIFY} as {handle.id}")
    await follow(client, handle, out)
    try:
        result: VerifyResult = await handle.result()
    except WorkflowFailureError as exc:
        out(f"verification FAILED: {_failure(exc)}")
        return 1
    out(f"backup {result.backup_id} verified in {result.duration_seconds:.1f} s")
    return 0


async def backup_pause(client: Client, note: str | None, out: Out) -> int:
    text = note or f"paused by {getpass.getuser()} at {datetime.now(UTC).isoformat()}"
    await client.get_schedule_handle(names.SCHEDULE_BACKUP).pause(note=text)
    out(f"schedule {names.SCHEDULE_BACKUP} paused: {text}")
    return 0


async def backup_resume(client: Client, out: Out) -> int:
    await client.get_schedule_handle(names.SCHEDULE_BACKUP).unpause(note=MANAGED_NOTE)
    out(f"schedule {names.SCHEDULE_BACKUP} resumed")
    return 0


def format_report(report: RestoreReport) -> list[str]:
    lines = [
        f"restore of backup {report.backup_id} finished",
        f"  RTO {report.rto_seconds:.1f} s (start to healthy), RPO {report.rpo_seconds:.1f} s "
        f"(age of the backup, taken {report.backup_created_at.isoformat()})",
        f"  restored rows: {report.restored_rows_total} in {len(report.restored_rows)} tables",
    ]
    lines += [f"    {table:<40} {rows:>10}" for table, rows in sorted(report.restored_rows.items())]
    if report.migrations_applied:
        lines.append(f"  migrations applied after restore: {report.migrations_applied}")
    lines.append(f"  reconciled rows: {report.reconciled_rows_total}")
    for kind, counts in sorted(report.reconciled.items()):
        lines.append(
            f"    {kind:<20} examined {counts.examined}, re-projected {counts.reprojected}, "
            f"unchanged {counts.unchanged}, failed {counts.failed}"
        )
        lines += [f"      ! {e}" for e in counts.errors]
    health = ", ".join(
        f"{k} {'ok' if v is None else 'FAILED: ' + v}" for k, v in report.health.items()
    )
    lines.append(f"  health: {'healthy' if report.healthy else 'UNHEALTHY'} ({health})")
    return lines


async def restore(
    client: Client,
    settings: Settings,
    backup_id: str,
    *,
    again: bool,
    as_json: bool,
    out: Out,
) -> int:
    service = service_for(settings)
    try:
        entry = await service.resolve(backup_id)
    except ConnectorError as exc:
        out(f"connector restore: {exc}")
        return 1
    chosen = entry.backup_id
    out(
        f"restoring backup {chosen} taken {entry.manifest.created_at.isoformat()} "
        f"({entry.manifest.total_rows} rows, {entry.status.value}) "
        f"from {service.storage.description}"
    )
    workflow_id = names.restore_workflow_id(chosen)
    if again:
        workflow_id = f"{workflow_id}:{_stamp()}"
    try:
        handle = await client.start_workflow(
            names.WF_RESTORE,
            RestoreInput(backup_id=chosen),
            id=workflow_id,
            task_queue=settings.temporal.task_queues.ops,
            # A double start attaches to the running restore; a failed one may be retried; a
            # successful one is not repeated by accident (use --again).
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            result_type=RestoreReport,
        )
    except WorkflowAlreadyStartedError:
        out(f"backup {chosen} was already restored by {workflow_id}; pass --again to repeat")
        return 1
    out(f"started {names.WF_RESTORE} as {handle.id}; writes answer 503 until it finishes")
    await follow(client, handle, out)
    try:
        report: RestoreReport = await handle.result()
    except WorkflowFailureError as exc:
        out(f"restore FAILED: {_failure(exc)}")
        return 1
    if as_json:
        out(report.model_dump_json(indent=2))
    else:
        for line in format_report(report):
            out(line)
    return 0 if report.healthy else 1


async def run_backup_command(settings: Settings, args: Any, stream: TextIO = sys.stdout) -> int:
    """`connector backup now|list|verify|pause|resume` (argparse namespace from connector.cli)."""
    out = _printer(stream)
    try:
        return await _backup_command(settings, args, out)
    except (ConnectorError, StorageError, RPCError, RuntimeError, ValueError) as exc:
        out(f"connector backup {args.backup_command}: {exc}")
        return 1


async def _backup_command(settings: Settings, args: Any, out: Out) -> int:
    command = args.backup_command
    if command == "list":
        return await backup_list(settings, as_json=args.json, out=out)
    client = await connect_client(settings)
    if command == "now":
        return await backup_now(
            client,
            settings,
            verify=False if args.no_verify else None,
            wait=not args.no_wait,
            out=out,
        )
    if command == "verify":
        return await backup_verify(client, settings, args.backup_id, out)
    if command == "pause":
        return await backup_pause(client, args.note, out)
    if command == "resume":
        return await backup_resume(client, out)
    out(f"unknown backup command {command}")
    return 2


async def run_restore_command(settings: Settings, args: Any, stream: TextIO = sys.stdout) -> int:
    out = _printer(stream)
    try:
        client = await connect_client(settings)
        return await restore(
            client, settings, args.backup, again=args.again, as_json=args.json, out=out
        )
    except (StorageError, RPCError, RuntimeError, ValueError) as exc:
        out(f"connector restore: {exc}")
        return 1
