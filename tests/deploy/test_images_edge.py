"""The edge image run as an operator would: deploy/edge/docker-compose.yaml with podman-compose.

Needs the images from deploy/images/build.sh (make images-check builds them first).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from tests.deploy.deploy_testlib import ROOT, TOOLS
from tests.deploy.images_testlib import (
    assert_unprivileged,
    free_port,
    http_get,
    image,
    podman,
    run,
    wait_healthy,
)

pytestmark = [pytest.mark.deploy, pytest.mark.images, pytest.mark.timeout(600)]

PROJECT = "edgeci"
CONTAINER = f"{PROJECT}_connector-edge_1"
COMPOSE = ROOT / "deploy" / "edge" / "docker-compose.yaml"


@pytest.fixture(scope="module")
def edge() -> Iterator[dict[str, int]]:
    image("edge")
    ports = {name: free_port() for name in ("http", "dataplane", "ui", "metrics")}
    env = {
        "CONNECTOR_VERSION": "ci",
        "MANAGEMENT_API_KEY": "ci-management-key-0123456789abcdefghijklmnop",
        "CONNECTOR_HTTP_PORT": str(ports["http"]),
        "CONNECTOR_DATAPLANE_PORT": str(ports["dataplane"]),
        "CONNECTOR_TEMPORAL_UI_PORT": str(ports["ui"]),
        "CONNECTOR_METRICS_PORT": str(ports["metrics"]),
    }
    compose = [str(TOOLS / "podman-compose"), "-p", PROJECT, "-f", str(COMPOSE)]
    run([*compose, "down", "-v"], env=env)
    started = time.monotonic()
    up = run([*compose, "up", "-d"], env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        healthy_after = wait_healthy(CONTAINER, timeout=240)
        print(f"edge healthy {healthy_after:.0f} s after up ({time.monotonic() - started:.0f} s)")
        yield ports
    finally:
        run([*compose, "down", "-v", "-t", "60"], env=env)


def test_health_metrics_and_temporal_ui_answer(edge: dict[str, int]) -> None:
    status, body = http_get(f"http://127.0.0.1:{edge['http']}/health")
    assert status == 200, body
    status, metrics = http_get(f"http://127.0.0.1:{edge['metrics']}/metrics")
    assert status == 200
    assert re.search(r"^connector_\w+", metrics, re.M), metrics[:500]
    status, ui = http_get(f"http://127.0.0.1:{edge['ui']}/")
    assert status == 200
    assert "<html" in ui.lower()


def test_runs_as_10001_without_capabilities(edge: dict[str, int]) -> None:
    procs = assert_unprivileged(CONTAINER)
    commands = " ".join(p["args"] for p in procs)
    for child in ("postgres", "valkey", "temporal"):  # the embedded stack, under the same user
        assert child in commands, commands


def test_backup_inside_the_container(edge: dict[str, int]) -> None:
    cli = ["exec", CONTAINER, "connector", "--config", "/etc/connector/config.yaml", "backup"]
    now = podman(*cli, "now", timeout=300, check=False)
    assert now.returncode == 0, now.stdout + now.stderr
    listing = podman(*cli, "list", check=False)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    assert listing.stdout.strip(), "backup list shows the backup just made"
