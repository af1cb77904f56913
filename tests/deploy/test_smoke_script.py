"""deploy/tools/smoke-test.sh against a running stack (issue 17): the routed paths answer as the
connector, a misrouted path is caught, and the in-cluster part runs its /ready probes in the pods
(here: a kubectl stand-in that runs the probe the script sends against the stack's processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.edge import Edge

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "deploy" / "tools" / "smoke-test.sh"

# Stands in for kubectl: lists the release's Deployments, reports them rolled out, and runs what
# `exec deployment/X -- python -c CODE` sends with the container port swapped for the local one.
FAKE_KUBECTL = """#!{python}
import json, os, subprocess, sys
args = sys.argv[1:]
ports = json.loads(os.environ["FAKE_PORTS"])
broken = os.environ.get("FAKE_BROKEN", "")
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
if "get" in args and "deployments" in args:
    print("connector-cp control-plane")
    print("connector-dp data-plane")
    print("connector-worker-ops worker-ops")
    sys.exit(0)
if "rollout" in args:
    sys.exit(0)
if "exec" in args:
    target = args[args.index("exec") + 1]
    code = args[args.index("-c") + 1]
    for container_port, local_port in ports.items():
        code = code.replace(f"127.0.0.1:{{container_port}}/", f"127.0.0.1:{{local_port}}/")
    if target == f"deployment/{{broken}}":
        code = code.replace("/ready", "/no-such-route")
    sys.exit(subprocess.run([sys.executable, "-c", code]).returncode)
sys.exit(2)
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    edge = Edge.allocate(tmp_path_factory.mktemp("smoke") / "var")
    edge.separate_roles = True  # a worker with its own health port, as in a pod
    edge.start()
    try:
        edge.wait_ready()
        yield edge
    finally:
        edge.stop(signal.SIGTERM)


def smoke(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SMOKE), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "SMOKE_SLEEP_SECONDS": "0", **(env or {})},
    )


def test_routed_paths_answer_as_the_connector(stack: Edge) -> None:
    proc = smoke(
        stack.url("server", ""), "--data-plane-url", stack.url("dataplane", ""), "--attempts", "2"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "/.well-known, /dsp (control plane) and /public (data plane)" in proc.stdout


def test_a_misrouted_public_path_fails(stack: Edge) -> None:
    # /public sent to the control plane, as an Ingress with a wrong backend would
    proc = smoke(stack.url("server", ""), "--attempts", "1")
    assert proc.returncode == 1
    assert "GET /public/smoke-test without a token -> 404" in proc.stderr


def test_nothing_listening_fails_after_the_attempts() -> None:
    from connector.runtime.embedded import free_port

    proc = smoke(f"http://127.0.0.1:{free_port()}", "--attempts", "2")
    assert proc.returncode == 1
    assert "never answered 200" in proc.stderr


def _fake_kubectl(tmp_path: Path, stack: Edge, broken: str = "") -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(FAKE_KUBECTL.format(python=sys.executable))
    kubectl.chmod(0o755)
    ports = {"3000": stack.ports["server"], "3001": stack.ports["dataplane"]}
    ports["3002"] = stack.ports["worker"]
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_PORTS": json.dumps(ports),
        "FAKE_LOG": str(tmp_path / "kubectl.log"),
        "FAKE_BROKEN": broken,
    }


def test_in_cluster_health_probes_every_deployment(stack: Edge, tmp_path: Path) -> None:
    env = _fake_kubectl(tmp_path, stack)
    args = [stack.url("server", ""), "--data-plane-url", stack.url("dataplane", "")]
    proc = smoke(*args, "--namespace", "connector-prod", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = (tmp_path / "kubectl.log").read_text().splitlines()
    assert calls[0].startswith("-n connector-prod get deployments -l app.kubernetes.io/instance=")
    for name, port in (("cp", 3000), ("dp", 3001), ("worker-ops", 3002)):
        assert any(f"rollout status deployment/connector-{name}" in c for c in calls), name
        assert any(
            f"exec deployment/connector-{name} -- python -c" in c and f":{port}/ready" in c
            for c in calls
        ), name
    assert "3 deployments ready in connector-prod" in proc.stdout


def test_in_cluster_health_fails_on_a_pod_that_is_not_ready(stack: Edge, tmp_path: Path) -> None:
    env = _fake_kubectl(tmp_path, stack, broken="connector-worker-ops")
    args = [stack.url("server", ""), "--data-plane-url", stack.url("dataplane", "")]
    proc = smoke(*args, "--namespace", "connector-prod", env=env)
    assert proc.returncode == 1
    assert "deployment/connector-worker-ops: /ready on port 3002 did not answer 200" in proc.stderr
