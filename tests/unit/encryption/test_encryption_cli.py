"""`connector encryption init|status|rotate` and the start-up check of the key file, as
subprocesses."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path


def connector(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        env={**base, "CONNECTOR_LOGGING__FORMAT": "console", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_init_status_rotate_and_a_readable_key_file_stops_start_up(tmp_path: Path) -> None:
    key_file = tmp_path / "secret" / "data-keys.json"
    env = {"CONNECTOR_ENCRYPTION__KEY_FILE": str(key_file)}
    made = connector("encryption", "init", env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "created" in made.stdout
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "exists already" in connector("encryption", "init", env=env, cwd=tmp_path).stdout

    first = json.loads(key_file.read_text())["current"]
    rotated = connector("encryption", "rotate", env=env, cwd=tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    ring = json.loads(key_file.read_text())
    assert ring["current"] != first
    assert [k["kid"] for k in ring["keys"]] == [first, ring["current"]]
    status = connector("encryption", "status", env=env, cwd=tmp_path).stdout
    assert f"{ring['current']}" in status
    assert "(current)" in status
    for key in ring["keys"]:
        assert key["secret"] not in status

    key_file.chmod(0o644)
    refused = connector("encryption", "status", env=env, cwd=tmp_path)
    assert refused.returncode == 2
    assert "must not be accessible to group or others" in refused.stderr
    missing = connector(
        "temporal-bootstrap",
        env={"CONNECTOR_ENCRYPTION__KEY_FILE": str(tmp_path / "nope.json")},
        cwd=tmp_path,
    )
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
