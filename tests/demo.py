"""`make demo`: two connectors on this machine, a catalog request, a negotiation and a transfer.

Starts its own Postgres, Redis and Temporal dev server under a temporary directory, runs a
provider and a consumer connector (real HTTP on loopback), and prints what happened: the offer
seen in the catalog, the agreement id and the bytes moved.

`--profile secure` (the default): did:web identities with generated keys, each trusting the other
by DID. `--profile dcp` (`make demo PROFILE=dcp`): the Decentralized Claims Protocol instead
(docs/security.md §2, §7a): a development issuer (`connector issuer serve`) is started too, both
connectors request their MembershipCredential from it through their credential request
workflow, and the dataset is offered under a members-only policy that the provider checks
against the consumer's credential, read from the consumer's Credential Service.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from tests import services
from tests.dcp_space import MEMBERS_POLICY, dcp_space
from tests.e2e.transfer_helpers import MIB, agreement_for, edr, pull, random_file, start_transfer
from tests.twoconn import Connector, connector_pair

SIZE = 8 * MIB


async def transfer(
    provider: Connector, consumer: Connector, policy: dict[str, Any] | None = None
) -> None:
    print(f"provider  {provider.did}  ({provider.dsp})")
    print(f"consumer  {consumer.did}  ({consumer.dsp})")
    base = provider.settings.dataplane.file_base_path
    assert base is not None
    digest = random_file(base / "demo.bin", SIZE)
    started = time.monotonic()
    agreement_id = await agreement_for(
        provider,
        consumer,
        "demo-asset",
        data_address={"type": "file", "path": "demo.bin"},
        policy=policy,
    )
    print(f"agreement {agreement_id}  ({time.monotonic() - started:.2f}s from catalog)")
    transfer_id = await start_transfer(consumer, provider, agreement_id)
    await consumer.wait_transfer(transfer_id, {"STARTED"})
    token = await edr(consumer, transfer_id)
    status, received, size = await pull(token["endpoint"], token["authorization"])
    done = await consumer.wait_transfer(transfer_id, {"COMPLETED", "TERMINATED"})
    print(f"transfer  {transfer_id}  {done['state']}")
    print(f"moved     {size} bytes (HTTP {status}), sha256 match: {received == digest}")


async def main(profile: str) -> None:
    with tempfile.TemporaryDirectory(prefix="connector-demo-") as tmp:
        root = Path(tmp)
        print("starting Postgres, Redis and the Temporal dev server ...", flush=True)
        async with (
            services.postgres(root / "pg") as pg,
            services.redis(root / "redis") as redis,
            services.temporal(root / "temporal", ["provider", "consumer"]) as temporal,
        ):
            if profile == "secure":
                async with connector_pair(
                    pg, redis, temporal, root, provider_dataplane="inproc"
                ) as (provider, consumer):
                    await transfer(provider, consumer)
                return
            print("starting the development issuer (connector issuer serve) ...", flush=True)
            async with dcp_space(pg, redis, temporal, root, provider_dataplane="inproc") as space:
                print(f"issuer    {space.issuer.did}  ({space.issuer.url})")
                for connector in (space.provider, space.consumer):
                    started = time.monotonic()
                    credential_id = await space.join(connector)
                    print(
                        f"{connector.name:<9} holds MembershipCredential {credential_id}  "
                        f"({time.monotonic() - started:.2f}s: registered, requested, issued)"
                    )
                print(
                    "policy    members only: MembershipCredential eq active "
                    "(catalog access and contract)"
                )
                await transfer(space.provider, space.consumer, MEMBERS_POLICY)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tests.demo", description=__doc__)
    parser.add_argument("--profile", choices=("secure", "dcp"), default="secure")
    asyncio.run(main(parser.parse_args().profile))
