"""DSP 0.8 beside 2025-1: the same workflows, only the codec differs (issues 4.8 and 5.6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.core.dsp import DspVersion, validate_against_schema
from tests.e2e.transfer_helpers import MIB, edr, pull, random_file
from tests.twoconn import catalog_offer, connector_pair, publish_offer

pytestmark = pytest.mark.e2e


async def test_negotiation_and_transfer_over_dsp_0_8(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    async with connector_pair(
        pg_server_url, redis_url, temporal_address, tmp_path, provider_dataplane="inproc"
    ) as (provider, consumer):
        base = provider.settings.dataplane.file_base_path
        assert base is not None
        sha = random_file(base / "old.bin", MIB + 7)
        await publish_offer(provider, "asset-08")
        offer = await catalog_offer(consumer, provider, "asset-08")
        dsp08 = f"{provider.base}/dsp/0.8"
        started = await consumer.post(
            "/negotiations",
            {"counterPartyAddress": dsp08, "counterPartyId": provider.did, "offer": offer},
        )
        assert started.status_code == 201, started.text
        done = await consumer.wait_state(started.json()["id"], {"FINALIZED", "TERMINATED"})
        assert done["state"] == "FINALIZED", done
        assert done["dspVersion"] == "0.8"

        # Every message went over /dsp/0.8 in the 0.8 shape.
        exchanged = [
            ex
            for ex in provider.recorder.exchanges + consumer.recorder.exchanges
            if "/negotiations" in ex.path
        ]
        assert exchanged
        assert all(ex.path.startswith("/dsp/0.8/") for ex in exchanged)
        for ex in exchanged:
            if isinstance(ex.request, dict):
                assert ex.request["@type"].startswith("dspace:"), ex.request
        for ex in exchanged:
            if isinstance(ex.response, dict) and ex.response.get("@type"):
                type_name = ex.response["@type"].removeprefix("dspace:")
                assert validate_against_schema(ex.response, type_name, DspVersion.V0_8) == []

        # Transfer on the same version, pulling a file the asset points at.
        put = await provider.http.put(
            "/management/v1/assets/asset-08",
            json={
                "properties": {"name": "Dataset asset-08"},
                "dataAddress": {"type": "file", "path": "old.bin"},
                "distributions": ["HttpData-PULL"],
            },
            headers={"X-Api-Key": "two-connector-test-management-key-0123456789"},
        )
        assert put.status_code == 200, put.text
        transfer = await consumer.post(
            "/transfers",
            {
                "counterPartyAddress": dsp08,
                "counterPartyId": provider.did,
                "agreementId": done["agreementId"],
                "format": "HttpData-PULL",
            },
        )
        assert transfer.status_code == 201, transfer.text
        transfer_id = transfer.json()["id"]
        await consumer.wait_transfer(transfer_id, {"STARTED"})
        token = await edr(consumer, transfer_id)
        assert await pull(token["endpoint"], token["authorization"]) == (200, sha, MIB + 7)
        finished = await consumer.wait_transfer(transfer_id, {"COMPLETED", "TERMINATED"})
        assert finished["state"] == "COMPLETED", finished
        transfer_paths = [ex.path for ex in provider.recorder.exchanges if "/transfers" in ex.path]
        assert transfer_paths
        assert all(p.startswith("/dsp/0.8/") for p in transfer_paths)
