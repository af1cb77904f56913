"""`connector up` end to end: the acceptance points of the runtime issue, on the real stack."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.metric_refs import referenced_metric_families
from tests.edge import Edge, pid_alive, processes_mentioning

pytestmark = pytest.mark.e2e


def _exposed_metric_names(text: str) -> set[str]:
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def _health_until(edge: Edge, predicate, timeout: float):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = edge.get("server", "/health")
            if predicate(last):
                return last
        except Exception as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"health never matched; last: {getattr(last, 'text', last)}")


async def test_up_runs_the_whole_stack_stops_cleanly_and_keeps_data(tmp_path):
    edge = Edge.allocate(tmp_path / "var")
    edge.start()
    try:
        edge.wait_ready()

        health = edge.get("server", "/health")
        assert health.status_code == 200, health.text
        body = health.json()
        assert set(body["checks"]) == {"database", "redis", "temporal"}
        assert all(c["healthy"] for c in body["checks"].values())
        assert {"status", "timestamp", "version"} <= set(body)
        assert edge.get("server", "/ready").status_code == 200
        assert edge.get("dataplane", "/health").status_code == 200
        assert edge.get("worker", "/ready").status_code == 200

        ui = edge.get("ui", "/")
        assert ui.status_code == 200
        assert "<html" in ui.text.lower()

        metrics = edge.get("metrics", "/metrics").text
        assert 'http_requests_total{endpoint="/health",method="GET",status="200"}' in metrics
        assert "http_request_duration_seconds_bucket" in metrics
        assert 'process_resident_memory_bytes{role="control-plane"}' in metrics
        assert "temporal_num_pollers" in metrics  # the SDK's worker metrics, via the supervisor

        db = f"postgresql://postgres@127.0.0.1:{edge.ports['postgres']}/connector"
        conn = await asyncpg.connect(db)
        await conn.execute("INSERT INTO connector_meta (key, value) VALUES ('marker', '\"kept\"')")
        await conn.close()

        # A workflow through the real worker: Temporal's state must persist too. The connector's
        # own client: the worker encrypts the result (payload codec, the stack's key ring).
        from connector.temporal.client import connect

        client = await connect(edge.settings())
        result = await client.execute_workflow(
            "bench.bare", "ping", id="edge-persistence-check", task_queue="connector.control"
        )
        assert result == "ping"

        # Every metric the alert rules and dashboards use is really exported (issue 7).
        exposed = _exposed_metric_names(edge.get("metrics", "/metrics").text)
        missing = sorted(referenced_metric_families() - exposed)
        assert missing == [], missing

        pids = edge.pids()
        took = edge.stop(signal.SIGINT)
        assert edge.process.returncode == 0, edge.log()
        assert took < 12, f"stop took {took:.1f}s"
        assert [name for name, pid in pids.items() if pid_alive(pid)] == []
        assert processes_mentioning(str(edge.data_dir)) == []

        # Second start: same data dir, everything found again.
        edge.start()
        edge.wait_ready()
        conn = await asyncpg.connect(db)
        assert (
            await conn.fetchval("SELECT value FROM connector_meta WHERE key = 'marker'") == '"kept"'
        )
        await conn.close()
        client = await connect(edge.settings())
        handle = client.get_workflow_handle("edge-persistence-check")
        assert (await handle.describe()).status.name == "COMPLETED"
    finally:
        edge.stop(signal.SIGTERM)
    assert processes_mentioning(str(edge.data_dir)) == []


def test_killing_embedded_postgres_turns_health_503_and_it_recovers(tmp_path):
    edge = Edge.allocate(tmp_path / "var")
    edge.start()
    try:
        edge.wait_ready()
        postgres_pid = edge.pids()["postgres"]
        os.kill(postgres_pid, signal.SIGKILL)

        down = _health_until(edge, lambda r: r.status_code == 503, timeout=10)
        checks = down.json()["checks"]
        assert checks["database"]["healthy"] is False
        assert checks["database"]["error"]
        assert checks["redis"]["healthy"] is True

        # The supervisor restarts Postgres; the control plane's pool reconnects by itself.
        back = _health_until(edge, lambda r: r.status_code == 200, timeout=60)
        assert back.json()["checks"]["database"]["healthy"] is True
        assert edge.pids()["control-plane"]  # the same control plane process kept running
    finally:
        edge.stop()
    assert processes_mentioning(str(edge.data_dir)) == []


def test_a_port_already_taken_is_a_clear_error_not_a_hang(tmp_path):
    edge = Edge.allocate(tmp_path / "var")
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", edge.ports["server"]))
    blocker.listen()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "connector", "up"],
            env=edge.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        blocker.close()
    assert result.returncode == 1
    assert f"port {edge.ports['server']} (server.port) is already in use" in result.stderr
    assert processes_mentioning(str(edge.data_dir)) == []


def test_a_child_crashing_at_start_stops_everything_and_leaves_no_orphan(tmp_path):
    edge = Edge.allocate(tmp_path / "var")
    result = subprocess.run(
        [sys.executable, "-m", "connector", "up"],
        # An address that cannot be bound: the data plane dies at start.
        env=edge.env(CONNECTOR_DATAPLANE__HOST="192.0.2.1"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "data-plane exited during start-up" in result.stderr
    assert processes_mentioning(str(edge.data_dir)) == []
