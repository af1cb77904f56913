"""A data space on loopback in the `dcp` profile: the development issuer as an operator runs it
(`connector issuer init|serve` in subprocesses, decision 0024) and two of our connectors that
trust it and obtain their MembershipCredential through their own credential request workflow
(decision 0023). Shared by tests/e2e/test_dcp_two_connectors.py and `make demo PROFILE=dcp`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from connector.runtime.embedded import free_port
from tests.issuer.issuer_harness import IssuerProcess, issuer_cli, running_issuer
from tests.twoconn import Connector, did_for, running_connector

MEMBERSHIP = "MembershipCredential"
# "Members only" in the left operands the dcp profile gives policies (docs/security.md §2).
MEMBERS_POLICY: dict[str, Any] = {
    "@id": "members-only",
    "@type": "Set",
    "permission": [
        {
            "action": "use",
            "constraint": [{"leftOperand": MEMBERSHIP, "operator": "eq", "rightOperand": "active"}],
        }
    ],
}


@dataclass
class DcpSpace:
    issuer: IssuerProcess
    provider: Connector
    consumer: Connector
    # Connector name -> the id of the credential `join` got it.
    held: dict[str, str] = field(default_factory=dict)

    def register(self, connector: Connector) -> None:
        """`connector issuer participants add <DID>`: the issuer will issue to it."""
        done = issuer_cli(self.issuer.data_dir, "participants", "add", connector.did)
        assert done.returncode == 0, done.stderr

    def revoke(self, credential_id: str) -> str:
        done = issuer_cli(self.issuer.data_dir, "revoke", credential_id)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    async def request_membership(self, connector: Connector, timeout: float = 90) -> Any:
        """`POST /management/v1/credentials/requests` and the request once it has ended."""
        resp = await connector.post(
            "/credentials/requests", {"issuerDid": self.issuer.did, "credentialType": MEMBERSHIP}
        )
        assert resp.status_code == 201, resp.text
        return await wait_request(connector, resp.json()["holderPid"], timeout)

    async def join(self, connector: Connector) -> str:
        """Register with the issuer and request the membership: the held credential's id."""
        self.register(connector)
        done = await self.request_membership(connector)
        assert done["status"] == "ISSUED", done
        (credential_id,) = done["credentialIds"]
        self.held[connector.name] = str(credential_id)
        return self.held[connector.name]


async def wait_request(connector: Connector, holder_pid: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        resp = await connector.get(f"/credentials/requests/{holder_pid}")
        if resp.status_code == 200:
            last = resp.json()
            if last["status"] != "REQUESTED":
                return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"{connector.name}: request {holder_pid} still open: {last}")


@asynccontextmanager
async def dcp_space(
    pg_server_url: str,
    redis_url: str,
    temporal_address: str,
    root: Path,
    *,
    status_ttl: int = 300,
    provider_dcp: dict[str, Any] | None = None,
    consumer_dcp: dict[str, Any] | None = None,
    provider_credentials: dict[str, Any] | None = None,
    provider_dataplane: Literal["inproc", "process"] | None = None,
) -> AsyncIterator[DcpSpace]:
    """The issuer (status lists valid `status_ttl` s) and a provider and a consumer in the `dcp`
    profile trusting it for MembershipCredential. Neither is registered with the issuer yet:
    `DcpSpace.join` does that and gets the credential."""
    provider_port, consumer_port = free_port(), free_port()
    common: dict[str, Any] = {
        "pg_server_url": pg_server_url,
        "redis_url": redis_url,
        "temporal_address": temporal_address,
    }
    # A request answers in a few seconds here: the issuer writes back at once; polls and the
    # deadline are only the fallback (credentials.* settings).
    credentials = {"poll_interval_seconds": 2, "request_deadline_seconds": 60}
    with running_issuer(root / "issuer", status_ttl=status_ttl) as issuer:
        trust = {"trusted_issuers": {issuer.did: [MEMBERSHIP]}}
        async with (
            running_connector(
                "provider",
                provider_port,
                did_for(consumer_port),
                data_dir=root / "provider",
                dataplane=provider_dataplane,
                identity={"profile": "dcp", "trust": trust, "dcp": provider_dcp or {}},
                credentials={**credentials, **(provider_credentials or {})},
                **common,
            ) as provider,
            running_connector(
                "consumer",
                consumer_port,
                did_for(provider_port),
                data_dir=root / "consumer",
                identity={"profile": "dcp", "trust": trust, "dcp": consumer_dcp or {}},
                credentials=credentials,
                **common,
            ) as consumer,
        ):
            yield DcpSpace(issuer, provider, consumer)
