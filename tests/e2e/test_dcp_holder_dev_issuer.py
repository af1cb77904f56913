"""The DCP holder against the real development issuer (`connector issuer serve`, decision 0024)
in a subprocess on loopback: our credential request workflow gets a MembershipCredential the
issuer writes back to our Storage API, and a credential the issuer's CLI printed imports."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from connector.core.identity.dcp_holder import unverified_claims
from connector.runtime.embedded import free_port
from tests.dcp_issuer_peer import credentials_cli
from tests.issuer.issuer_harness import issuer_cli, running_issuer
from tests.twoconn import Connector, did_for, running_connector

pytestmark = [pytest.mark.e2e, pytest.mark.workflow]

MEMBERSHIP = "MembershipCredential"


async def _wait_request(cut: Connector, holder_pid: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        resp = await cut.get(f"/credentials/requests/{holder_pid}")
        if resp.status_code == 200:
            last = resp.json()
            if last["status"] != "REQUESTED":
                return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"request {holder_pid} still open: {last}")


async def test_a_membership_credential_from_the_dev_issuer(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    port = free_port()
    our_did = did_for(port)
    with running_issuer(tmp_path / "issuer") as issuer:
        assert issuer_cli(issuer.data_dir, "participants", "add", our_did).returncode == 0
        async with running_connector(
            "connector",
            port,
            issuer.did,
            pg_server_url=pg_server_url,
            redis_url=redis_url,
            temporal_address=temporal_address,
            data_dir=tmp_path / "cut",
            identity={"trust": {"trusted_issuers": {issuer.did: [MEMBERSHIP]}}},
            credentials={"poll_interval_seconds": 2, "request_deadline_seconds": 60},
        ) as cut:
            resp = await cut.post(
                "/credentials/requests", {"issuerDid": issuer.did, "credentialType": MEMBERSHIP}
            )
            assert resp.status_code == 201, resp.text
            done = await _wait_request(cut, resp.json()["holderPid"])
            assert done["status"] == "ISSUED", done
            (credential_id,) = done["credentialIds"]
            held = {c["id"]: c for c in (await cut.get("/credentials")).json()["items"]}
            assert held[credential_id]["issuerDid"] == issuer.did
            assert held[credential_id]["types"] == [MEMBERSHIP]

            printed = issuer_cli(issuer.data_dir, "issue", our_did, "--days", "30")
            assert printed.returncode == 0, printed.stderr
            (tmp_path / "vc.jwt").write_text(printed.stdout)
            code, out = await credentials_cli(cut.settings, "import", str(tmp_path / "vc.jwt"))
            assert code == 0, out
            assert json.loads(out)["id"] == unverified_claims(printed.stdout.strip())["jti"]
