"""`make demo`: two connectors on this machine, a catalog request, a negotiation and a transfer.

Starts its own Postgres, Redis and Temporal dev server under a temporary directory, runs a
provider and a consumer connector (secure did:web identities, real HTTP on loopback), and prints
what happened: the offer seen in the catalog, the agreement id and the bytes moved.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from tests import services
from tests.e2e.transfer_helpers import MIB, agreement_for, edr, pull, random_file, start_transfer
from tests.twoconn import connector_pair

SIZE = 8 * MIB


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="connector-demo-") as tmp:
        root = Path(tmp)
        print("starting Postgres, Redis and the Temporal dev server ...", flush=True)
        async with (
            services.postgres(root / "pg") as pg,
            services.redis(root / "redis") as redis,
            services.temporal(root / "temporal", ["provider", "consumer"]) as temporal,
            connector_pair(pg, redis, temporal, root, provider_dataplane="inproc") as (
                provider,
                consumer,
            ),
        ):
            print(f"provider  {provider.did}  ({provider.dsp})")
            print(f"consumer  {consumer.did}  ({consumer.dsp})")
            base = provider.settings.dataplane.file_base_path
            assert base is not None
            digest = random_file(base / "demo.bin", SIZE)
            started = time.monotonic()
            agreement_id = await agreement_for(
                provider, consumer, "demo-asset", data_address={"type": "file", "path": "demo.bin"}
            )
            print(f"agreement {agreement_id}  ({time.monotonic() - started:.2f}s from catalog)")
            transfer_id = await start_transfer(consumer, provider, agreement_id)
            await consumer.wait_transfer(transfer_id, {"STARTED"})
            token = await edr(consumer, transfer_id)
            status, received, size = await pull(token["endpoint"], token["authorization"])
            done = await consumer.wait_transfer(transfer_id, {"COMPLETED", "TERMINATED"})
            print(f"transfer  {transfer_id}  {done['state']}")
            print(f"moved     {size} bytes (HTTP {status}), sha256 match: {received == digest}")


if __name__ == "__main__":
    asyncio.run(main())
