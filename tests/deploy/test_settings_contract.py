"""Cross-check the deployment artefacts against the application itself.

Every command line parses with the real `connector` CLI parser and every environment + config.yaml
loads with the real settings model (`extra="forbid"`, so a misspelt key or a Kubernetes service-link
variable would be caught).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

import connector.cli as cli
import connector.settings as settings_mod
from tests.deploy.deploy_testlib import ROOT, SCENARIOS, Run, compose_binary, workloads
from tests.deploy.test_docker import stages

pytestmark = pytest.mark.deploy


SECRET_PLACEHOLDERS = {
    "CONNECTOR_DATABASE__URL": "postgresql://connector:secret@postgres:5432/connector",
    "CONNECTOR_REDIS__URL": "redis://:secret@redis:6379/0",
    "CONNECTOR_MANAGEMENT__API_KEYS": '["k1"]',
    "CONNECTOR_TEMPORAL__API_KEY": "temporal-api-key",
}
KEY_FILE_ENV = "CONNECTOR_IDENTITY__KEY_PATH"


def parse_cli(argv: list[str]) -> Any:
    return cli._parser().parse_args(argv)


def load(env: dict[str, str], config: Path | None) -> Any:
    env = {k: v for k, v in env.items() if k != KEY_FILE_ENV}  # the file exists only at run time
    return settings_mod.load_settings(config, env=env)


def container_env(container: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            assert item["valueFrom"]["secretKeyRef"], item
            env[item["name"]] = SECRET_PLACEHOLDERS[item["name"]]
    return env


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_pod_command_and_environment_is_accepted(
    scenario: str, rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    docs = rendered[scenario]
    cm = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-config")
    )
    config_file = tmp_path / "config.yaml"
    config_file.write_text(cm["data"]["config.yaml"])
    for obj, pod in workloads(docs):
        spec = pod["spec"]
        where = f"{scenario}:{obj['kind']}/{obj['metadata']['name']}"
        assert spec.get("enableServiceLinks") is False, (
            f"{where}: service links collide with CONNECTOR_*"
        )
        c = spec["containers"][0]
        args = parse_cli(c["args"])
        uses_config = "--config" in c["args"]
        assert (args.config is not None) == uses_config, where
        settings = load(container_env(c), config_file if uses_config else None)
        assert settings.server.host == "0.0.0.0", where
        assert settings.metrics.host == "0.0.0.0", where
        assert settings.metrics.port == 9090, where
        assert settings.database.url is not None, where
        if args.command == "worker":
            assert args.queue == [obj["metadata"]["labels"]["connector.io/task-queue"]], where
            assert settings.workers.health_port == 3002, where
        if KEY_FILE_ENV in {e["name"] for e in c["env"]}:
            init = {i["name"] for i in spec.get("initContainers", [])}
            assert "identity-key" in init, f"{where}: key file must be copied to a 0400 file"


def test_temporal_cloud_settings(rendered: dict[str, list[dict[str, Any]]]) -> None:
    _, pod = next(w for w in workloads(rendered["temporal-cloud"]) if w[0]["kind"] == "Deployment")
    settings = load(container_env(pod["spec"]["containers"][0]), None)
    assert settings.temporal.tls is True
    assert settings.temporal.api_key is not None


def test_dockerfile_commands_parse() -> None:
    for target in ("control-plane", "data-plane", "worker", "edge"):
        cmd = re.search(r"^CMD (\[.*\])$", stages()[target], re.M)
        assert cmd, target
        assert parse_cli(json.loads(cmd.group(1))).command == target.replace("edge", "up"), target


def test_compose_commands_and_environment(run: Run, tmp_path: Path) -> None:
    proc = run(compose_binary(), "-f", "docker-compose.yaml", "config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    services = json.loads(proc.stdout)["services"]
    for name, svc in services.items():
        if "lightweight-dataspace-connector" not in svc.get("image", "") or name == "identity-key":
            continue
        args = parse_cli(svc["command"])
        env = {k: v for k, v in svc["environment"].items() if v is not None}
        settings = load(env, None)
        assert settings.temporal.address == "temporal:7233", name
        assert args.command in {
            "migrate",
            "temporal-bootstrap",
            "control-plane",
            "data-plane",
            "worker",
        }


def test_edge_command_environment_and_config(run: Run) -> None:
    proc = run(
        compose_binary(),
        "-f",
        "deploy/edge/docker-compose.yaml",
        "config",
        "--format",
        "json",
        env={"MANAGEMENT_API_KEY": "k"},
    )
    assert proc.returncode == 0, proc.stderr
    edge = json.loads(proc.stdout)["services"]["connector-edge"]
    args = parse_cli(edge["command"])
    assert args.command == "up"
    settings = load(edge["environment"], ROOT / "deploy" / "edge" / "config" / "config.yaml")
    assert settings.identity.key_path is None, "edge keeps a managed key ring in the data volume"


def test_systemd_exec_start_parses() -> None:
    unit = (ROOT / "deploy" / "edge" / "connector.service").read_text()
    line = next(x for x in unit.splitlines() if x.startswith("ExecStart="))
    argv = shlex.split(line.split("=", 1)[1])
    assert argv[0].endswith("/venv/bin/connector")
    assert parse_cli(argv[1:]).command == "up"
    settings = load({}, ROOT / "deploy" / "edge" / "config" / "config.yaml")
    assert settings.metrics.host == "127.0.0.1"


def test_helm_config_yaml_matches_the_seed_shape(rendered: dict[str, list[dict[str, Any]]]) -> None:
    cm = next(
        d
        for d in rendered["prod"]
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-config")
    )
    data = yaml.safe_load(cm["data"]["config.yaml"])
    assert {"server", "database", "redis", "temporal", "logging", "identity", "adapters"} <= set(
        data
    )


def test_generated_identity_keys_load(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """The dev Secret's key (Helm genPrivateKey "ecdsa") loads with the connector's key loader."""
    from connector.identity.keys import load_private_key

    secret = next(d for d in rendered["dev"] if d["kind"] == "Secret")
    pem = tmp_path / "identity-key.pem"
    pem.write_text(secret["stringData"]["identity-key.pem"])
    pem.chmod(0o400)  # what the identity-key init container produces
    assert load_private_key(pem).curve_name == "P-256"
    tf = (ROOT / "deploy" / "terraform" / "modules" / "connector" / "main.tf").read_text()
    assert 'ecdsa_curve = "P256"' in tf


def test_generated_data_key_rings_load(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """The dev Secret's data key ring (Helm randBytes) loads with the connector's key ring, and
    every pod that gets it finds it at CONNECTOR_ENCRYPTION__KEY_FILE."""
    from connector.encryption.keyring import DataKeys

    secret = next(d for d in rendered["dev"] if d["kind"] == "Secret")
    ring = tmp_path / "data-keys.json"
    ring.write_text(secret["stringData"]["data-keys.json"])
    ring.chmod(0o400)  # what the init container produces
    kid, subkey = DataKeys.open(ring, create=False).current("temporal-payload")
    assert kid.startswith("dk-")
    assert len(subkey) == 32
    for obj, pod in workloads(rendered["dev"]):
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env", [])}
        if obj["kind"] == "Deployment":
            assert env["CONNECTOR_ENCRYPTION__KEY_FILE"] == "/etc/connector/keys/data-keys.json"
    tf = (ROOT / "deploy" / "terraform" / "modules" / "connector" / "main.tf").read_text()
    assert 'resource "random_bytes" "data_key"' in tf
    assert '"data-keys.json"' in tf
