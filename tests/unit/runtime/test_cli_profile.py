"""The `dev` auth profile through the real CLI (subprocesses): refused without the explicit
insecure flag (exit 2, one clear line on stderr, nothing started); with it, an INSECURE warning
at every start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CONNECTOR_SCRIPT = Path(sys.executable).with_name("connector")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    env.update(CONNECTOR_DATA_DIR=str(tmp_path / "data"), **extra)
    return env


def _run(argv: list[str], tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _assert_refused(result: subprocess.CompletedProcess[str], tmp_path: Path) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("connector: auth profile 'dev'"), line
    assert "refusing to start" in line
    assert "CONNECTOR_IDENTITY__ALLOW_INSECURE=true" in line  # names the real variable
    assert not (tmp_path / "data").exists()  # nothing was created, let alone started


@pytest.mark.parametrize(
    "argv",
    [
        [sys.executable, "-m", "connector", "control-plane"],
        [str(CONNECTOR_SCRIPT), "up"],
        [sys.executable, "-m", "connector", "data-plane"],
        [sys.executable, "-m", "connector", "worker"],
    ],
    ids=["control-plane", "up", "data-plane", "worker"],
)
def test_dev_profile_without_insecure_flag_refuses_to_start(
    argv: list[str], tmp_path: Path
) -> None:
    env = _env(tmp_path, CONNECTOR_IDENTITY__PROFILE="dev")
    _assert_refused(_run(argv, tmp_path, env), tmp_path)


def test_dev_profile_from_a_config_file_is_refused_too(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("identity:\n  profile: dev\n")
    argv = [sys.executable, "-m", "connector", "--config", str(config), "control-plane"]
    _assert_refused(_run(argv, tmp_path, _env(tmp_path)), tmp_path)


def test_insecure_flag_lets_dev_start_with_a_warning(tmp_path: Path) -> None:
    # `worker --queue nope` gets past the profile check, then stops at its own (exit 2) before
    # connecting anywhere: enough to see that the flag unlocks `dev` and that it warns.
    env = _env(tmp_path, CONNECTOR_IDENTITY__PROFILE="dev", CONNECTOR_IDENTITY__ALLOW_INSECURE="1")
    result = _run([sys.executable, "-m", "connector", "worker", "--queue", "nope"], tmp_path, env)
    assert result.returncode == 2, result.stderr
    output = result.stdout + result.stderr
    assert "INSECURE" in output
    assert "refusing to start" not in output
    assert "unknown task queue(s): nope" in result.stderr


def test_dcp_profile_without_trusted_issuers_refuses_to_start(tmp_path: Path) -> None:
    # Every presentation would fail: a connector that turns every counterparty away.
    env = _env(tmp_path, CONNECTOR_IDENTITY__PROFILE="dcp")
    result = _run([sys.executable, "-m", "connector", "control-plane"], tmp_path, env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "identity.profile 'dcp' needs identity.trust.trusted_issuers" in result.stderr
    assert not (tmp_path / "data").exists()
