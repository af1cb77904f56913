"""Operator side of the DCP holder (decision 0023): the `credential-renewal` Schedule and the
`connector credentials list|request|import|requests` commands.

In the composition-root package: it shares the management API's request use case
(`api.management.credentials`), which `commands/` may not import (decision 0029).
`connector.cli` calls in lazily; the control worker ensures the Schedule when it starts.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TextIO

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.service import RPCError

from api.management.credentials import (
    check_request,
    credential_view,
    request_view,
    start_request,
)
from commands.backup import connect_client
from connector.core.errors import ConnectorError
from connector.encryption.runtime import data_keys
from connector.http.outbound import GuardedHttp
from connector.identity.holder import CredentialHolder
from connector.identity.runtime import load_keyring
from connector.runtime.clock import utc_now
from connector.runtime.resources import open_resources
from connector.settings import Settings
from connector.stores import credentials
from workflows import names
from workflows.credential_contracts import RenewalInput

MANAGED_NOTE: Final = "managed by the connector (credentials.* settings)"
DISABLED_NOTE: Final = "disabled in configuration (credentials.renewal_enabled=false)"

Out = Callable[[str], None]


def renewal_input(settings: Settings) -> RenewalInput:
    c = settings.credentials
    return RenewalInput(
        window_seconds=c.renewal_window_seconds,
        deadline_seconds=c.request_deadline_seconds,
        poll_interval_seconds=c.poll_interval_seconds,
    )


def desired_schedule(settings: Settings) -> Schedule:
    c = settings.credentials
    return Schedule(
        action=ScheduleActionStartWorkflow(
            names.WF_CREDENTIAL_RENEWAL,
            renewal_input(settings),
            id=names.SCHEDULE_CREDENTIAL_RENEWAL_ACTION_ID,
            task_queue=settings.temporal.task_queues.control,
        ),
        spec=ScheduleSpec(cron_expressions=[c.renewal_schedule], time_zone_name="UTC"),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(
            note=MANAGED_NOTE if c.renewal_enabled else DISABLED_NOTE,
            paused=not c.renewal_enabled,
        ),
    )


async def ensure_renewal_schedule(client: Client, settings: Settings) -> str:
    """Create/update `credential-renewal` from configuration; an operator's pause survives."""
    from connector.temporal.client import ensure_schedule

    return await ensure_schedule(
        client,
        names.SCHEDULE_CREDENTIAL_RENEWAL,
        desired_schedule(settings),
        disabled_note=DISABLED_NOTE,
    )


def _printer(stream: TextIO) -> Out:
    def out(line: str) -> None:
        print(line, file=stream, flush=True)

    return out


async def run_credentials_command(
    settings: Settings, args: Any, stream: TextIO = sys.stdout
) -> int:
    """`connector credentials list|requests|request|import` (argparse namespace from the CLI)."""
    out = _printer(stream)
    try:
        return await _command(settings, args, out)
    except (ConnectorError, RPCError, OSError, ValueError) as exc:
        reason = "; ".join(exc.reasons) if isinstance(exc, ConnectorError) else str(exc)
        out(f"connector credentials {args.credentials_command}: {reason}")
        return 1


async def _command(settings: Settings, args: Any, out: Out) -> int:
    command = args.credentials_command
    if command == "request":
        check_request(settings, args.issuer_did, args.credential_type)
        client = await connect_client(settings)
        holder_pid = f"urn:uuid:{uuid.uuid4()}"
        started = await start_request(
            client, settings, args.issuer_did, args.credential_type, holder_pid
        )
        out(json.dumps(request_view(started), indent=2))
        return 0
    async with open_resources(settings, temporal=False) as resources:
        if command == "list":
            held = await credentials.list_held(resources.pool)
            out(json.dumps([credential_view(c) for c in held], indent=2))
            return 0
        if command == "requests":
            rows = await credentials.list_requests(resources.pool, renewals_only=args.renewals)
            out(json.dumps([request_view(r) for r in rows], indent=2))
            return 0
        if command == "import":
            token = Path(args.file).read_text("utf-8")  # noqa: ASYNC240 - a small file, once
            http = GuardedHttp(settings.outbound)
            try:
                holder = CredentialHolder.build(
                    settings,
                    resources.pool,
                    resources.redis,
                    http,
                    data_keys(settings),
                    load_keyring(settings),
                    utc_now,
                )
                imported = await holder.import_credential(token)
            finally:
                await http.aclose()
            out(json.dumps(credential_view(imported), indent=2))
            return 0
    out(f"unknown credentials command {command}")
    return 2
