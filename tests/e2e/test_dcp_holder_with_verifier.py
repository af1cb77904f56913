"""Holder meets verifier: two connectors in the `dcp` profile on loopback. The consumer holds a
MembershipCredential an issuer wrote to its Storage API; the provider (decision 0022's
verifier) queries the consumer's own Credential Service (decision 0023) with the access token
the consumer's STS put in its DSP token, and shows its members-only dataset only once the
consumer holds the credential."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from connector.runtime.embedded import free_port
from tests.dcp_issuer_peer import DcpPeer, dcp_peer
from tests.twoconn import OPEN_POLICY, Connector, did_for, running_connector

pytestmark = [pytest.mark.e2e, pytest.mark.workflow]

MEMBERSHIP = "MembershipCredential"
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
class Pair:
    provider: Connector
    consumer: Connector
    issuer: DcpPeer


@pytest.fixture(scope="module")
async def pair(
    pg_server_url: str,
    redis_url: str,
    temporal_address: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Pair]:
    tmp = tmp_path_factory.mktemp("dcp-pair")
    provider_port, consumer_port = free_port(), free_port()
    common: dict[str, Any] = {
        "pg_server_url": pg_server_url,
        "redis_url": redis_url,
        "temporal_address": temporal_address,
    }
    async with dcp_peer(tmp / "issuer") as issuer:
        trust = {"trusted_issuers": {issuer.did: [MEMBERSHIP]}}
        async with (
            running_connector(
                "provider",
                provider_port,
                did_for(consumer_port),
                data_dir=tmp / "provider",
                identity={
                    "profile": "dcp",
                    "trust": trust,
                    # Missing credentials reach the policy (the dataset is hidden, not a 401);
                    # no presentation cache, so the credential counts as soon as it is held.
                    "dcp": {"credential_failures": "policy", "presentation_cache_seconds": 0},
                },
                **common,
            ) as provider,
            running_connector(
                "consumer",
                consumer_port,
                did_for(provider_port),
                data_dir=tmp / "consumer",
                identity={"profile": "dcp", "trust": trust},
                **common,
            ) as consumer,
        ):
            for path, body in (
                ("/policies", {"id": OPEN_POLICY["@id"], "policy": OPEN_POLICY}),
                ("/policies", {"id": MEMBERS_POLICY["@id"], "policy": MEMBERS_POLICY}),
                (
                    "/assets",
                    {
                        "id": "members-data",
                        "properties": {"name": "members-data"},
                        "dataAddress": {"type": "http", "baseUrl": "http://127.0.0.1:9/data"},
                        "distributions": ["HttpData-PULL"],
                    },
                ),
                (
                    "/offers",
                    {
                        "id": "offer-members-data",
                        "assetSelector": ["members-data"],
                        "accessPolicyId": "members-only",
                        "contractPolicyId": OPEN_POLICY["@id"],
                    },
                ),
            ):
                resp = await provider.post(path, body)
                assert resp.status_code == 201, resp.text
            yield Pair(provider, consumer, issuer)


async def _datasets(pair: Pair) -> list[str]:
    resp = await pair.consumer.post(
        "/catalog/request",
        {"counterPartyAddress": pair.provider.dsp, "counterPartyId": pair.provider.did},
    )
    assert resp.status_code == 200, resp.text
    raw = resp.json().get("dataset", [])
    return [d["@id"] for d in (raw if isinstance(raw, list) else [raw])]


async def test_the_verifier_reads_the_membership_from_our_credential_service(pair: Pair) -> None:
    assert "members-data" not in await _datasets(pair)

    vc = pair.issuer.vc(pair.consumer.did)
    message = pair.issuer.credential_message("urn:uuid:imported-by-issuer", [vc])
    assert await pair.issuer.store_at(pair.consumer.base, pair.consumer.did, message) == 200

    assert "members-data" in await _datasets(pair)
    # Only the consumer's Credential Service could have shown the provider that credential:
    # nothing but the access token in the consumer's DSP token points the provider to it.
    held = (await pair.consumer.get("/credentials")).json()["items"]
    assert [c["issuerDid"] for c in held] == [pair.issuer.did]
