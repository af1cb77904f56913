"""Acceptance: negotiate, then pull a 1 GiB file through the data plane and push a 1 GiB file
to an HTTP sink; SHA-256 equal at both ends; every DSP message validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.transfer_helpers import (
    Sink,
    agreement_for,
    edr,
    pull,
    schema_problems,
    start_transfer,
    write_file,
)
from tests.twoconn import connector_pair

pytestmark = pytest.mark.e2e

GIB = 1024 * 1024 * 1024


async def test_pull_and_push_one_gib(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    async with (
        Sink() as sink,
        connector_pair(
            pg_server_url, redis_url, temporal_address, tmp_path, provider_dataplane="inproc"
        ) as (provider, consumer),
    ):
        base = provider.settings.dataplane.file_base_path
        assert base is not None
        sha = write_file(base / "gib.bin", GIB)
        agreement_id = await agreement_for(
            provider, consumer, "gib", data_address={"type": "file", "path": "gib.bin"}
        )

        pulled = await start_transfer(consumer, provider, agreement_id)
        await consumer.wait_transfer(pulled, {"STARTED"})
        token = await edr(consumer, pulled)
        assert await pull(token["endpoint"], token["authorization"]) == (200, sha, GIB)
        done = await consumer.wait_transfer(pulled, {"COMPLETED", "TERMINATED"}, timeout=60)
        assert done["state"] == "COMPLETED", done

        pushed = await start_transfer(
            consumer, provider, agreement_id, "HttpData-PUSH", dataDestination=sink.address("g")
        )
        done = await consumer.wait_transfer(pushed, {"COMPLETED", "TERMINATED"}, timeout=120)
        assert done["state"] == "COMPLETED", done
        assert sink.received["g"] == (sha, GIB)
        assert sink.incomplete == []

        await provider.recorder.quiet()
        await consumer.recorder.quiet()
        exchanged = provider.recorder.exchanges + consumer.recorder.exchanges
        assert all(ex.status < 400 for ex in exchanged)
        assert schema_problems(exchanged) == []
