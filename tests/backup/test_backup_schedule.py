"""The backup Schedule: created/updated idempotently from configuration; a pause survives."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import ScheduleActionStartWorkflow, ScheduleOverlapPolicy
from temporalio.service import RPCError

from commands.backup import (
    DISABLED_NOTE,
    backup_pause,
    backup_resume,
    ensure_backup_schedule,
)
from tests.backup.backup_support import client_for, make_settings
from workflows import names

pytestmark = pytest.mark.workflow


async def test_schedule_is_applied_idempotently_and_keeps_an_operator_pause(
    tmp_path: Path, pg_url: str, redis_url: str, temporal_address: str
) -> None:
    client = await client_for(temporal_address)
    handle = client.get_schedule_handle(names.SCHEDULE_BACKUP)
    with contextlib.suppress(RPCError):
        await handle.delete()
    settings = make_settings(
        tmp_path,
        pg_url,
        redis_url,
        temporal_address,
        backup={"schedule": "30 3 * * *", "catchup_window_seconds": 7200, "keep_daily": 3},
    )
    lines: list[str] = []
    try:
        assert "created" in await ensure_backup_schedule(client, settings)
        assert "updated" in await ensure_backup_schedule(client, settings)
        described = await handle.describe()
        schedule = described.schedule
        # The server stores a cron expression as a structured calendar.
        (calendar,) = schedule.spec.calendars
        assert [r.start for r in calendar.hour] == [3]
        assert [r.start for r in calendar.minute] == [30]
        assert schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
        assert schedule.policy.catchup_window == timedelta(hours=2)
        action = schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert action.workflow == names.WF_BACKUP
        assert action.id == names.SCHEDULE_BACKUP_ACTION_ID
        assert action.task_queue == settings.temporal.task_queues.ops
        assert schedule.state.paused is False

        await backup_pause(client, "maintenance window", lines.append)
        await ensure_backup_schedule(client, settings)  # e.g. a redeploy
        state = (await handle.describe()).schedule.state
        assert state.paused is True
        assert state.note == "maintenance window"

        await backup_resume(client, lines.append)
        assert (await handle.describe()).schedule.state.paused is False

        disabled = make_settings(
            tmp_path, pg_url, redis_url, temporal_address, backup={"enabled": False}
        )
        await ensure_backup_schedule(client, disabled)
        state = (await handle.describe()).schedule.state
        assert state.paused is True
        assert state.note == DISABLED_NOTE
        await ensure_backup_schedule(client, settings)
        assert (await handle.describe()).schedule.state.paused is False
        assert any("paused" in line for line in lines)
    finally:
        with contextlib.suppress(RPCError):
            await handle.delete()
