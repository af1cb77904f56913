"""Two connectors, each as `connector up` runs it by default (decision 0016: control plane,
data plane and workers in one process on shared resources): negotiate, then pull a file
through the provider's in-process data plane."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.transfer_helpers import (
    MIB,
    agreement_for,
    edr,
    pull,
    random_file,
    start_transfer,
)
from tests.twoconn import connector_pair

pytestmark = pytest.mark.e2e


async def test_negotiate_and_pull_between_two_one_process_connectors(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    async with connector_pair(
        pg_server_url, redis_url, temporal_address, tmp_path, edge_process=True
    ) as (provider, consumer):
        base = provider.settings.dataplane.file_base_path
        assert base is not None
        sha = random_file(base / "data.bin", MIB + 7)
        agreement_id = await agreement_for(
            provider, consumer, "file-asset", data_address={"type": "file", "path": "data.bin"}
        )
        transfer_id = await start_transfer(consumer, provider, agreement_id)
        started = await consumer.wait_transfer(transfer_id, {"STARTED", "TERMINATED"})
        assert started["state"] == "STARTED", started
        token = await edr(consumer, transfer_id)
        status, digest, size = await pull(token["endpoint"], token["authorization"])
        assert (status, size, digest) == (200, MIB + 7, sha)
        done = await consumer.wait_transfer(transfer_id, {"COMPLETED", "TERMINATED"})
        assert done["state"] == "COMPLETED", done
        await provider.wait_transfer(done["providerPid"], {"COMPLETED"})
        # Every role's metrics land in the one registry of each process.
        assert consumer.metric("connector_negotiations_total", role="consumer", state="FINALIZED")
        assert provider.metric("connector_negotiations_total", role="provider", state="FINALIZED")
        await provider.recorder.quiet()
        await consumer.recorder.quiet()
        exchanged = provider.recorder.exchanges + consumer.recorder.exchanges
        assert all(ex.status < 400 for ex in exchanged), [
            (ex.path, ex.status, ex.response) for ex in exchanged if ex.status >= 400
        ]
