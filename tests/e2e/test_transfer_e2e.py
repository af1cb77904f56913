"""Two connectors on loopback: negotiate, then transfer through the provider's data plane."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.transfer_helpers import (
    MIB,
    agreement_for,
    edr,
    pull,
    random_file,
    schema_problems,
    start_transfer,
)
from tests.twoconn import catalog_offer, connector_pair, publish_offer

pytestmark = pytest.mark.e2e


async def test_pull_a_file_through_the_data_plane(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    async with connector_pair(
        pg_server_url, redis_url, temporal_address, tmp_path, provider_dataplane="inproc"
    ) as (provider, consumer):
        base = provider.settings.dataplane.file_base_path
        assert base is not None
        sha = random_file(base / "data.bin", 3 * MIB + 123)
        agreement_id = await agreement_for(
            provider, consumer, "file-asset", data_address={"type": "file", "path": "data.bin"}
        )
        transfer_id = await start_transfer(consumer, provider, agreement_id)
        started = await consumer.wait_transfer(transfer_id, {"STARTED", "TERMINATED"})
        assert started["state"] == "STARTED", started
        token = await edr(consumer, transfer_id)
        assert token["authType"] == "bearer"
        status, digest, size = await pull(token["endpoint"], token["authorization"])
        assert (status, size) == (200, 3 * MIB + 123)
        assert digest == sha
        done = await consumer.wait_transfer(transfer_id, {"COMPLETED", "TERMINATED"})
        assert done["state"] == "COMPLETED", done
        provider_side = await provider.wait_transfer(done["providerPid"], {"COMPLETED"})
        assert provider_side["agreementId"] == agreement_id
        kinds = [e["kind"] for e in done["timeline"]]
        assert kinds == ["transfer_request", "transfer_start", "transfer_completion"]
        # Completed: the token is revoked.
        status, _, _ = await pull(token["endpoint"], token["authorization"])
        assert status == 403
        await provider.recorder.quiet()
        await consumer.recorder.quiet()
        exchanged = provider.recorder.exchanges + consumer.recorder.exchanges
        assert all(ex.status < 400 for ex in exchanged), [
            (ex.path, ex.status, ex.response) for ex in exchanged if ex.status >= 400
        ]
        assert schema_problems(exchanged) == []


async def test_offer_instead_of_agreement_negotiates_then_transfers(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    async with connector_pair(
        pg_server_url, redis_url, temporal_address, tmp_path, provider_dataplane="inproc"
    ) as (provider, consumer):
        base = provider.settings.dataplane.file_base_path
        assert base is not None
        sha = random_file(base / "s.bin", MIB)
        await publish_offer(
            provider,
            "shortcut",
            data_address={"type": "file", "path": "s.bin"},
            distributions=["HttpData-PULL"],
        )
        offer = await catalog_offer(consumer, provider, "shortcut")
        resp = await consumer.post(
            "/transfers",
            {
                "counterPartyAddress": provider.dsp,
                "counterPartyId": provider.did,
                "offer": offer,
                "format": "HttpData-PULL",
            },
        )
        assert resp.status_code == 201, resp.text
        transfer_id = resp.json()["id"]
        started = await consumer.wait_transfer(transfer_id, {"STARTED", "TERMINATED"})
        assert started["state"] == "STARTED", started
        negotiation = await consumer.get(f"/negotiations/{started['negotiationId']}")
        assert negotiation.json()["state"] == "FINALIZED"
        assert negotiation.json()["agreementId"] == started["agreementId"]
        token = await edr(consumer, transfer_id)
        assert await pull(token["endpoint"], token["authorization"]) == (200, sha, MIB)
