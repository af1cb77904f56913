"""`connector up` end to end: the acceptance points of the runtime issue, on the real stack, in
the default layout (control plane, data plane and workers in the one process of `connector up`,
decision 0016) and with `--separate-roles` (one process per role, decision 0004)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from connector.core.ids import negotiation_workflow_id
from connector.core.negotiation.aggregate import JsonObject, new_negotiation
from connector.core.negotiation.record import NegotiationRecord
from connector.core.negotiation.states import NegotiationState, Role
from connector.runtime.embedded import free_port
from connector.runtime.metrics import BACKUP_LAST_SUCCESS, BACKUP_LAST_VERIFIED, BACKUP_SIZE_BYTES
from connector.settings import TASK_QUEUE_CONTROL
from connector.temporal.client import connect
from tests.deploy.metric_refs import referenced_metric_families
from tests.edge import Edge, pid_alive, processes_mentioning
from workflows import names
from workflows.contracts import NegotiationStart

pytestmark = pytest.mark.e2e


def _exposed_metric_names(text: str) -> set[str]:
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def _health_until(
    edge: Edge, predicate: Callable[[httpx.Response], bool], timeout: float
) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last: httpx.Response | Exception | None = None
    while time.monotonic() < deadline:
        try:
            answer = edge.get("server", "/health")
            last = answer
            if predicate(answer):
                return answer
        except Exception as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"health never matched; last: {getattr(last, 'text', last)}")


# The outbound guard refuses plain http and loopback addresses by default; the negotiation below
# names a counterparty on a loopback port, to be tried and retried.
LOOPBACK_PEER = {
    "CONNECTOR_OUTBOUND__ALLOW_HTTP": "true",
    "CONNECTOR_OUTBOUND__ALLOW_CIDRS": '["127.0.0.0/8"]',
}


async def _negotiation_through_the_worker(edge: Edge, client: Client, timeout: float = 30) -> str:
    """A real workflow through the edge's worker: a consumer negotiation towards a loopback port
    nobody listens on, with a deadline 8 s away. Its request is tried as a local activity, then
    retried as a scheduled one until the deadline, when it ends TERMINATED. Started from this
    process's client, not the edge's, so the worker takes it from the task queue (a start of the
    control plane is handed to the in-process worker eagerly, decision 0016). Returns the
    workflow id."""
    now = datetime.now(UTC)
    pid = f"urn:uuid:{uuid.uuid4()}"
    offer_id = "urn:offer:edge-check"
    offer: JsonObject = {"@id": offer_id, "target": "urn:asset:edge-check"}
    negotiation = new_negotiation(
        role=Role.CONSUMER,
        initiator=Role.CONSUMER,
        own_pid=pid,
        participant_id="did:web:edge.test",
        counterparty_id="did:web:nobody.test",
        counterparty_address=f"http://127.0.0.1:{free_port()}/dsp/2025-1",
        offer=offer,
        at=now,
    )
    record = NegotiationRecord(
        negotiation=negotiation, offer_id=offer_id, deadline_at=now + timedelta(seconds=8)
    )
    workflow_id = negotiation_workflow_id(Role.CONSUMER, pid)
    handle = await client.start_workflow(
        names.WF_NEGOTIATION,
        NegotiationStart(record=record, callback_address=edge.url("server", "/dsp/2025-1")),
        id=workflow_id,
        task_queue=TASK_QUEUE_CONTROL,
        result_type=NegotiationRecord,
    )
    ended = await asyncio.wait_for(handle.result(), timeout=timeout)
    assert ended.negotiation.state is NegotiationState.TERMINATED, ended
    return workflow_id


def _environ(pid: int) -> dict[str, str]:
    """The environment a running process was started with."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode().partition("=")[::2] for item in raw.split(b"\0") if item)


def test_the_embedded_temporal_server_gets_the_configured_go_runtime_settings(
    tmp_path: Path,
) -> None:
    edge = Edge.allocate(tmp_path / "var")
    edge.start(
        **LOOPBACK_PEER,
        CONNECTOR_TEMPORAL__EMBEDDED_GO_ENV='{"GOGC": "150", "GOMEMLIMIT": "200MiB"}',
    )
    try:
        edge.wait_ready()
        environ = _environ(edge.pids()["temporal"])
        assert (environ["GOGC"], environ["GOMEMLIMIT"]) == ("150", "200MiB")
        # The setting replaces the default (GOMAXPROCS=1) rather than adding to it.
        assert environ.get("GOMAXPROCS") == os.environ.get("GOMAXPROCS")
        assert edge.get("server", "/ready").status_code == 200
    finally:
        edge.stop(signal.SIGTERM)
    assert processes_mentioning(str(edge.data_dir)) == []


def _health_on(sock: socket.socket) -> bytes:
    """GET /health on an open connection; its status line, once the whole answer is read."""
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            return received or b"closed"
        received += chunk
    head, body = received.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    length = next(
        int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return lines[0]


def _answers_after_idle(ports: list[int], idle: float) -> list[bytes]:
    """Each listener answers a second request on a connection left idle for `idle` seconds
    (`server.keep_alive_seconds`: a client pausing for a `Retry-After` meets no reset)."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for port in ports]
    try:
        firsts = [_health_on(sock) for sock in socks]
        assert all(line.startswith(b"HTTP/1.1 200") for line in firsts), firsts
        time.sleep(idle)
        return [_health_on(sock) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


async def test_up_runs_the_whole_stack_stops_cleanly_and_keeps_data(tmp_path: Path) -> None:
    edge = Edge.allocate(tmp_path / "var")
    edge.start(**LOOPBACK_PEER)
    try:
        edge.wait_ready()
        # One connector process beside the three services, nothing else.
        assert set(edge.pids()) == {"connector", "postgres", "redis", "temporal"}
        assert edge.process is not None
        assert edge.pids()["connector"] == edge.process.pid
        # The dev server runs with the Go runtime settings of `temporal.embedded_go_env`.
        assert _environ(edge.pids()["temporal"])["GOMAXPROCS"] == "1"

        health = edge.get("server", "/health")
        assert health.status_code == 200, health.text
        body = health.json()
        assert set(body["checks"]) == {"database", "redis", "temporal"}
        assert all(c["healthy"] for c in body["checks"].values())
        assert {"status", "timestamp", "version"} <= set(body)
        assert edge.get("server", "/ready").status_code == 200
        assert edge.get("dataplane", "/health").status_code == 200
        # Longer than uvicorn's default keep-alive (5 s), shorter than ours (75 s).
        seconds = _answers_after_idle([edge.ports["server"], edge.ports["dataplane"]], 6.0)
        assert all(line.startswith(b"HTTP/1.1 200") for line in seconds), seconds

        ui = edge.get("ui", "/")
        assert ui.status_code == 200
        assert "<html" in ui.text.lower()

        metrics = edge.get("metrics", "/metrics").text
        assert 'http_requests_total{endpoint="/health",method="GET",status="200"}' in metrics
        assert "http_request_duration_seconds_bucket" in metrics
        assert 'process_resident_memory_bytes{role="connector"}' in metrics
        assert 'process_resident_memory_bytes{role="temporal"}' in metrics
        for role in ("control-plane", "data-plane", "worker"):
            assert f'connector_up{{role="{role}"}} 1.0' in metrics
        assert "temporal_num_pollers" in metrics  # the SDK's worker metrics, same process

        db = f"postgresql://postgres@127.0.0.1:{edge.ports['postgres']}/connector"
        conn = await asyncpg.connect(db)
        await conn.execute("INSERT INTO connector_meta (key, value) VALUES ('marker', '\"kept\"')")
        await conn.close()

        # A workflow through the real worker: Temporal's state must persist too. The connector's
        # own client: the worker encrypts the result (payload codec, the stack's key ring).
        client = await connect(edge.settings())
        persisted = await _negotiation_through_the_worker(edge, client)

        # Every metric the alert rules and dashboards use is really exported (issue 7), except
        # the last backup's gauges: exported once a backup is known, none on a fresh stack.
        exposed = _exposed_metric_names(edge.get("metrics", "/metrics").text)
        until_known = {BACKUP_LAST_SUCCESS, BACKUP_LAST_VERIFIED, BACKUP_SIZE_BYTES}
        missing = sorted(referenced_metric_families() - exposed - until_known)
        assert missing == [], missing

        pids = edge.pids()
        took = edge.stop(signal.SIGINT)
        assert edge.process is not None
        assert edge.process.returncode == 0, edge.log()
        assert took < 12, f"stop took {took:.1f}s"
        assert [name for name, pid in pids.items() if pid_alive(pid)] == []
        assert processes_mentioning(str(edge.data_dir)) == []

        # Second start: same data dir, everything found again.
        edge.start(**LOOPBACK_PEER)
        edge.wait_ready()
        conn = await asyncpg.connect(db)
        assert (
            await conn.fetchval("SELECT value FROM connector_meta WHERE key = 'marker'") == '"kept"'
        )
        await conn.close()
        client = await connect(edge.settings())
        handle = client.get_workflow_handle(persisted)
        status = (await handle.describe()).status
        assert status is not None
        assert status.name == "COMPLETED"
    finally:
        edge.stop(signal.SIGTERM)
    assert processes_mentioning(str(edge.data_dir)) == []


def test_killing_embedded_postgres_turns_health_503_and_it_recovers(tmp_path: Path) -> None:
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
        assert edge.process is not None
        assert edge.pids()["connector"] == edge.process.pid  # the connector kept running
    finally:
        edge.stop()
    assert processes_mentioning(str(edge.data_dir)) == []


def test_a_port_already_taken_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
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


def test_a_child_crashing_at_start_stops_everything_and_leaves_no_orphan(tmp_path: Path) -> None:
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


async def test_separate_roles_runs_one_process_per_role(tmp_path: Path) -> None:
    edge = Edge.allocate(tmp_path / "var")
    edge.separate_roles = True
    edge.start(**LOOPBACK_PEER)
    try:
        edge.wait_ready()
        pids = edge.pids()
        assert set(pids) == {
            "supervisor",
            "control-plane",
            "data-plane",
            "worker-1",
            "postgres",
            "redis",
            "temporal",
        }
        assert len(set(pids.values())) == len(pids)
        assert edge.get("server", "/ready").status_code == 200
        assert edge.get("dataplane", "/ready").status_code == 200
        assert edge.get("worker", "/ready").status_code == 200
        metrics = edge.get("metrics", "/metrics").text
        for role in ("control-plane", "data-plane", "worker-1", "supervisor"):
            assert f'process_resident_memory_bytes{{role="{role}"}}' in metrics
        assert "temporal_num_pollers" in metrics  # proxied from the worker process

        await _negotiation_through_the_worker(edge, await connect(edge.settings()))

        took = edge.stop(signal.SIGTERM)
        assert edge.process is not None
        assert edge.process.returncode == 0, edge.log()
        assert took < 12, f"stop took {took:.1f}s"
        assert [name for name, pid in pids.items() if pid_alive(pid)] == []
    finally:
        edge.stop(signal.SIGTERM)
    assert processes_mentioning(str(edge.data_dir)) == []


def test_a_killed_connector_process_takes_its_services_with_it(tmp_path: Path) -> None:
    """SIGKILL (or a crash, or the OOM killer) of the one connector process: no clean stop runs,
    and the services still end (each has the parent-death signal); a new `connector up` on the
    same data dir starts."""
    edge = Edge.allocate(tmp_path / "var")
    edge.start()
    try:
        edge.wait_ready()
        services = {k: v for k, v in edge.pids().items() if k != "connector"}
        assert edge.process is not None
        edge.process.kill()
        edge.process.wait(timeout=10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and processes_mentioning(str(edge.data_dir)):
            time.sleep(0.1)
        assert processes_mentioning(str(edge.data_dir)) == []
        assert [name for name, pid in services.items() if pid_alive(pid)] == []

        edge.start()
        edge.wait_ready()
        assert edge.get("server", "/ready").status_code == 200
    finally:
        edge.stop(signal.SIGTERM)
    assert processes_mentioning(str(edge.data_dir)) == []


async def test_the_in_process_workers_come_back_after_temporal_was_killed(tmp_path: Path) -> None:
    """The runner restarts a killed Temporal dev server; the workers inside the connector
    process poll it again (the SDK reconnects, or the runner restarts the worker part)."""
    edge = Edge.allocate(tmp_path / "var")
    edge.start(**LOOPBACK_PEER)
    try:
        edge.wait_ready()
        connector_pid = edge.pids()["connector"]
        temporal_pid = edge.pids()["temporal"]
        os.kill(temporal_pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = edge.pids().get("temporal")
            if now and now != temporal_pid and pid_alive(now):
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"temporal not restarted:\n{edge.log()[-3000:]}")

        client = None
        while client is None and time.monotonic() < deadline:
            try:
                client = await connect(edge.settings())
            except RuntimeError:
                time.sleep(0.2)
        assert client is not None
        await _negotiation_through_the_worker(edge, client, timeout=60)
        assert edge.pids()["connector"] == connector_pid
        assert edge.get("server", "/ready").status_code == 200
    finally:
        edge.stop(signal.SIGTERM)
    assert processes_mentioning(str(edge.data_dir)) == []
