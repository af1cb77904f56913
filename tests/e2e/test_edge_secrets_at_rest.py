"""Secrets at rest on two `connector up` edge stacks (as an operator runs them): after a pull and a
push with header credentials, and a backup on each side,

- no data-address secret or token is in the Temporal dev server's SQLite database (every row of
  every table, and the raw files incl. the WAL), in the backups, or in Redis's files;
- the Temporal Web UI is wired to the control plane's codec endpoint, which decodes a payload of
  a stored history with the management key;
- the data dir is 0700 (0710 for the Postgres user's group when run as root) and nothing below it
  is accessible to group or others (Postgres, Redis, the Temporal dev server, logs, backups).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.client import Client

from connector.runtime.embedded import PG_SYSTEM_USER
from tests.e2e.secret_scan import (
    SecretBackend,
    encrypted_share,
    found_in,
    payloads_in,
    raw_histories,
    sink_address,
)
from tests.e2e.transfer_helpers import Sink, pull
from tests.edge import Edge, processes_mentioning

pytestmark = pytest.mark.e2e

OPEN_POLICY = {"@id": "open", "@type": "Set", "permission": [{"action": "use"}]}
TIMEOUT = 60.0


class Stack:
    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.edge = Edge.allocate(root / name / "var")
        self.key = ""

    @property
    def did(self) -> str:
        return f"did:web:localhost%3A{self.edge.ports['server']}"

    @property
    def dsp(self) -> str:
        return f"http://localhost:{self.edge.ports['server']}/dsp/2025-1"

    def env(self, peer: Stack) -> dict[str, str]:
        return {
            "CONNECTOR_IDENTITY__TRUST__ALLOWED_DIDS": json.dumps([peer.did]),
            "CONNECTOR_OUTBOUND__ALLOW_CIDRS": json.dumps(["127.0.0.0/8", "::1/128"]),
            "CONNECTOR_OUTBOUND__ALLOW_HTTP": "true",
        }

    def start(self, peer: Stack) -> None:
        self.edge.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.edge.start(**self.env(peer))

    def ready(self) -> None:
        self.edge.wait_ready(timeout=180)
        self.key = (self.edge.data_dir / "management-api-key").read_text().strip()

    async def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        async with httpx.AsyncClient(timeout=30) as http:
            resp = await http.request(
                method,
                self.edge.url("server", f"/management/v1{path}"),
                json=body,
                params=params,
                headers={"X-Api-Key": self.key},
            )
        assert resp.status_code < 300, (self.name, method, path, resp.status_code, resp.text)
        return resp.json()

    async def wait(self, kind: str, pid: str, states: set[str]) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        last: Any = None
        while time.monotonic() < deadline:
            async with httpx.AsyncClient(timeout=10) as http:
                resp = await http.get(
                    self.edge.url("server", f"/management/v1/{kind}/{pid}"),
                    headers={"X-Api-Key": self.key},
                )
            if resp.status_code == 200:
                last = resp.json()
                if last["state"] in states:
                    return dict(last)
            await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name}: {kind}/{pid} not in {states}: {last}")

    def backup_now(self) -> str:
        env = self.edge.env(**self.env(self))
        result = subprocess.run(
            [sys.executable, "-m", "connector", "backup", "now"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout


async def negotiate(provider: Stack, consumer: Stack, source: dict[str, Any]) -> str:
    await provider.call(
        "POST",
        "/assets",
        {
            "id": "edge-secret-asset",
            "properties": {"name": "secret asset"},
            "dataAddress": source,
            "distributions": ["HttpData-PULL", "HttpData-PUSH"],
        },
    )
    await provider.call("POST", "/policies", {"id": "open", "policy": OPEN_POLICY})
    await provider.call(
        "POST",
        "/offers",
        {
            "id": "offer-edge-secret-asset",
            "assetSelector": ["edge-secret-asset"],
            "accessPolicyId": "open",
            "contractPolicyId": "open",
        },
    )
    catalog = await consumer.call(
        "POST",
        "/catalog/request",
        {"counterPartyAddress": provider.dsp, "counterPartyId": provider.did},
    )
    datasets = catalog["dataset"] if isinstance(catalog["dataset"], list) else [catalog["dataset"]]
    (dataset,) = [d for d in datasets if d["@id"] == "edge-secret-asset"]
    offers = dataset["hasPolicy"]
    offer = dict(offers[0] if isinstance(offers, list) else offers)
    offer["target"] = "edge-secret-asset"
    started = await consumer.call(
        "POST",
        "/negotiations",
        {"counterPartyAddress": provider.dsp, "counterPartyId": provider.did, "offer": offer},
    )
    done = await consumer.wait("negotiations", started["id"], {"FINALIZED", "TERMINATED"})
    assert done["state"] == "FINALIZED", done
    agreement_id: str = done["agreementId"]
    deadline = time.monotonic() + TIMEOUT
    async with httpx.AsyncClient(timeout=10) as http:
        while (
            await http.get(
                provider.edge.url("server", f"/management/v1/agreements/{agreement_id}"),
                headers={"X-Api-Key": provider.key},
            )
        ).status_code != 200:
            assert time.monotonic() < deadline, "the provider never recorded the agreement"
            await asyncio.sleep(0.1)
    return agreement_id


def sqlite_rows(path: Path) -> bytes:
    """Every value of every row of every table of a SQLite database, as bytes."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        out = bytearray()
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - catalog names
                for value in row:
                    if isinstance(value, bytes):
                        out += value
                    elif value is not None:
                        out += str(value).encode()
                    out += b"\0"
        return bytes(out)
    finally:
        conn.close()


def files_below(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def open_modes(data_dir: Path) -> list[str]:
    """Paths below `data_dir` with any group/other permission bit (must be none)."""
    found = []
    for path in data_dir.rglob("*"):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            continue
        if stat.S_IMODE(info.st_mode) & 0o077:
            found.append(f"{path.relative_to(data_dir)} {stat.S_IMODE(info.st_mode):o}")
    return found


def assert_private_data_dir(data_dir: Path) -> None:
    info = data_dir.stat()
    mode = stat.S_IMODE(info.st_mode)
    if os.geteuid() == 0:
        import grp

        # Postgres runs as its own user and passes through (search only, its group only).
        assert mode == 0o710, oct(mode)
        assert grp.getgrgid(info.st_gid).gr_name == PG_SYSTEM_USER
    else:
        assert mode == 0o700, oct(mode)
    assert open_modes(data_dir) == []


async def test_edge_stacks_keep_secrets_out_of_temporal_backups_and_open_files(
    tmp_path: Path,
) -> None:
    backend_secret = f"backend-secret-{uuid.uuid4().hex}"
    sink_secret = f"sink-secret-{uuid.uuid4().hex}"
    provider, consumer = Stack("provider", tmp_path), Stack("consumer", tmp_path)
    # A data dir from an older version: world-readable files must become private at start.
    stale = provider.edge.data_dir / "backups" / "old"
    stale.mkdir(parents=True)
    stale.chmod(0o755)
    (stale / "connector.dump").write_bytes(b"old")
    (stale / "connector.dump").chmod(0o644)
    provider.edge.data_dir.chmod(0o755)
    provider.start(consumer)
    consumer.start(provider)
    try:
        provider.ready()
        consumer.ready()
        async with (
            SecretBackend("X-Backend-Key", backend_secret, 128 * 1024) as backend,
            Sink() as sink,
        ):
            source = {
                "type": "http",
                "baseUrl": backend.url,
                "headers": {"X-Backend-Key": backend_secret},
            }
            agreement_id = await negotiate(provider, consumer, source)
            transfer = {
                "counterPartyAddress": provider.dsp,
                "counterPartyId": provider.did,
                "agreementId": agreement_id,
            }
            pulled = await consumer.call(
                "POST", "/transfers", {**transfer, "format": "HttpData-PULL"}
            )
            started = await consumer.wait("transfers", pulled["id"], {"STARTED", "TERMINATED"})
            assert started["state"] == "STARTED", started
            token = await consumer.call("GET", f"/transfers/{pulled['id']}/edr")
            assert (await pull(token["endpoint"], token["authorization"]))[:2] == (
                200,
                backend.sha256,
            )
            renewed = await consumer.call("GET", f"/transfers/{pulled['id']}/edr", refresh="true")
            pushed = await consumer.call(
                "POST",
                "/transfers",
                {
                    **transfer,
                    "format": "HttpData-PUSH",
                    "dataDestination": sink_address(
                        f"http://127.0.0.1:{sink.port}/sink/out", sink_secret
                    ),
                },
            )
            done = await consumer.wait("transfers", pushed["id"], {"COMPLETED", "TERMINATED"})
            assert done["state"] == "COMPLETED", done
            assert sink.received["out"] == (backend.sha256, len(backend.data))
            await provider.wait("transfers", done["providerPid"], {"COMPLETED"})

        secrets = [backend_secret, sink_secret, token["authorization"], renewed["authorization"]]
        for stack in (provider, consumer):
            assert "verified" in stack.backup_now()

        # The Web UI asks the control plane's codec endpoint, which decodes stored payloads.
        async with httpx.AsyncClient(timeout=10) as http:
            ui = (await http.get(consumer.edge.url("ui", "/api/v1/settings"))).json()
        endpoint = f"http://localhost:{consumer.edge.ports['server']}/management/codec"
        assert ui["Codec"]["Endpoint"] == endpoint
        plain = await Client.connect(
            f"127.0.0.1:{consumer.edge.ports['temporal']}", namespace="connector"
        )
        histories = await raw_histories(plain, 'WorkflowType="dsp.transfer"', expected=2)
        encrypted, _ = encrypted_share(histories)
        assert encrypted > 10
        stored = [p for h in histories for p in payloads_in(h)]
        body = json_format.MessageToDict(Payloads(payloads=stored))
        async with httpx.AsyncClient(timeout=10) as http:
            refused = await http.post(f"{endpoint}/decode", json=body)
            decoded = await http.post(
                f"{endpoint}/decode",
                json=body,
                headers={
                    "X-Api-Key": consumer.key,
                    "X-Namespace": "connector",
                    "Origin": f"http://127.0.0.1:{consumer.edge.ports['ui']}",
                },
            )
        assert refused.status_code == 401
        assert decoded.status_code == 200, decoded.text
        assert decoded.headers["access-control-allow-origin"].startswith("http://127.0.0.1:")
        clear = b"".join(p.data for p in json_format.ParseDict(decoded.json(), Payloads()).payloads)
        assert found_in(clear, [sink_secret, token["authorization"]]) == [
            sink_secret,
            token["authorization"],
        ]
    finally:
        for stack in (provider, consumer):
            stack.edge.stop(signal.SIGINT)
    for stack in (provider, consumer):
        assert processes_mentioning(str(stack.edge.data_dir)) == []
        data = stack.edge.data_dir
        temporal_db = data / "temporal" / "temporal.db"
        rows = sqlite_rows(temporal_db)
        # The control: history blobs are stored uncompressed, so clear text would be found.
        assert b"dsp.send_transfer_message" in rows, stack.name
        assert found_in(rows, secrets) == [], stack.name
        assert found_in(files_below(data / "temporal"), secrets) == [], stack.name
        backups = files_below(data / "backups")
        assert len(backups) > 10_000, stack.name
        assert found_in(backups, secrets) == [], stack.name
        assert found_in(files_below(data / "redis"), secrets) == [], stack.name
        assert_private_data_dir(data)
        assert (data / "keys" / "data-keys.json").exists()
