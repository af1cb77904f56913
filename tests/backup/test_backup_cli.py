"""`connector backup ...` and `connector restore` as an operator runs them (subprocesses)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path

import pytest
from temporalio.service import RPCError

from connector.settings import Settings, to_env
from tests.backup.backup_support import client_for, count, make_settings, ops_worker, seed
from workflows import names

pytestmark = [pytest.mark.integration, pytest.mark.workflow, pytest.mark.e2e]


async def _cli(settings: Settings, *args: str, stdin: bytes | None = None) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    env.update(to_env(settings))
    env["CONNECTOR_LOGGING__FORMAT"] = "console"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connector",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(stdin), timeout=120)
    return proc.returncode or 0, out.decode()


async def test_backup_now_list_pause_resume_and_restore_from_the_cli(
    tmp_path: Path, pg_url: str, redis_url: str, temporal_address: str
) -> None:
    await seed(pg_url, items=25)
    settings = make_settings(tmp_path, pg_url, redis_url, temporal_address)
    client = await client_for(settings)
    schedule = client.get_schedule_handle(names.SCHEDULE_BACKUP)
    async with ops_worker(settings, client):
        code, out = await _cli(settings, "backup", "now")
        assert code == 0, out
        assert "started ops.backup as backup-manual-" in out
        assert "  dump [" in out
        assert "verified" in out

        code, out = await _cli(settings, "backup", "list", "--json")
        assert code == 0, out
        (listed,) = json.loads(out[out.index("[") :])
        assert listed["status"] == "verified"
        assert listed["rows"] > 25
        backup_id = listed["backup_id"]

        code, out = await _cli(settings, "backup", "list")
        assert backup_id in out
        assert "verified" in out

        code, out = await _cli(settings, "backup", "verify", backup_id)
        assert code == 0, out
        assert f"backup {backup_id} verified" in out

        from commands.backup import ensure_backup_schedule

        await ensure_backup_schedule(client, settings)
        try:
            code, out = await _cli(settings, "backup", "pause", "--note", "cli test")
            assert code == 0
            assert "paused: cli test" in out
            assert (await schedule.describe()).schedule.state.paused is True
            code, out = await _cli(settings, "backup", "resume")
            assert code == 0
            assert "resumed" in out
            assert (await schedule.describe()).schedule.state.paused is False
        finally:
            with contextlib.suppress(RPCError):
                await schedule.delete()

        code, out = await _cli(settings, "restore")
        assert code == 2
        assert "--yes" in out

        conn_rows = await count(pg_url, "notes")
        assert conn_rows == 25
        code, out = await _cli(settings, "restore", "--backup", "latest", "--yes")
        assert code == 0, out
        assert f"restore of backup {backup_id} finished" in out
        assert "RTO" in out
        assert "RPO" in out
        assert "healthy" in out
        assert "started ops.restore as restore:" in out

        code, out = await _cli(settings, "restore", "--backup", backup_id, "--yes")
        assert code == 1
        assert "--again" in out
