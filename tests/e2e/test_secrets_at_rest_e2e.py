"""Secrets at rest between two connectors (real Temporal, Postgres, HTTP on loopback): a pull and
a push with header credentials from an HTTP source that needs a secret header, then

- the workflow histories as Temporal stores them hold none of the secrets (EDR tokens, the sink's
  credentials, the source's secret header) in clear, while the same histories decoded with the
  connector's codec do hold them (so the search would see them if they were there);
- the consumer's Postgres holds the EDR tokens only sealed, and the EDR route still hands out a
  working token (also after a refresh).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client

from connector.encryption.runtime import data_keys
from connector.temporal.codec import EncryptionCodec
from tests.e2e.secret_scan import (
    SecretBackend,
    encrypted_share,
    found_in,
    payloads_in,
    raw_histories,
    sink_address,
)
from tests.e2e.transfer_helpers import Sink, agreement_for, edr, pull, start_transfer
from tests.twoconn import Connector, connector_pair

pytestmark = pytest.mark.e2e


def control_queue(connector: Connector) -> str:
    return f'TaskQueue="{connector.settings.temporal.task_queues.control}"'


async def plain_client(connector: Connector) -> Client:
    """A client without the codec: what anyone with access to Temporal (or its DB) sees."""
    temporal = connector.settings.temporal
    assert temporal.address is not None
    return await Client.connect(temporal.address, namespace=temporal.namespace)


async def test_histories_and_the_database_hold_no_secret_in_clear(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    backend_secret = f"backend-secret-{uuid.uuid4().hex}"
    sink_secret = f"sink-secret-{uuid.uuid4().hex}"
    async with (
        SecretBackend("X-Backend-Key", backend_secret, 256 * 1024) as backend,
        Sink() as sink,
        connector_pair(
            pg_server_url, redis_url, temporal_address, tmp_path, provider_dataplane="inproc"
        ) as (provider, consumer),
    ):
        source = {
            "type": "http",
            "baseUrl": backend.url,
            "headers": {"X-Backend-Key": backend_secret},
        }
        agreement_id = await agreement_for(provider, consumer, "secret-asset", data_address=source)

        # A pull: the consumer receives an EDR (token + refresh token) in TransferStartMessage.
        pulled = await start_transfer(consumer, provider, agreement_id)
        started = await consumer.wait_transfer(pulled, {"STARTED", "TERMINATED"})
        assert started["state"] == "STARTED", started
        first = await edr(consumer, pulled)
        status, digest, _ = await pull(first["endpoint"], first["authorization"])
        assert (status, digest) == (200, backend.sha256)
        refreshed = (await consumer.get(f"/transfers/{pulled}/edr", refresh="true")).json()
        assert refreshed["authorization"] != first["authorization"]
        again = await pull(refreshed["endpoint"], refreshed["authorization"])
        assert again[:2] == (200, backend.sha256)
        assert (await edr(consumer, pulled))["authorization"] == refreshed["authorization"]

        # A push to an HTTP sink that wants its own credentials.
        pushed = await start_transfer(
            consumer,
            provider,
            agreement_id,
            "HttpData-PUSH",
            dataDestination=sink_address(f"http://127.0.0.1:{sink.port}/sink/out", sink_secret),
        )
        done = await consumer.wait_transfer(pushed, {"COMPLETED", "TERMINATED"})
        assert done["state"] == "COMPLETED", done
        assert sink.received["out"] == (backend.sha256, len(backend.data))
        await provider.wait_transfer(done["providerPid"], {"COMPLETED"})

        secrets = [
            backend_secret,
            sink_secret,
            first["authorization"],
            refreshed["authorization"],
        ]
        for connector in (provider, consumer):
            client = await plain_client(connector)
            # Negotiation, pull and push transfer workflows of this connector.
            histories = await raw_histories(client, control_queue(connector), expected=3)
            raw = b"".join(h.SerializeToString() for h in histories)
            assert found_in(raw, secrets) == [], connector.name
            encrypted, total = encrypted_share(histories)
            assert encrypted > 20, (connector.name, encrypted, total)

            # The control: decoded with the connector's key ring, the secrets are there.
            codec = EncryptionCodec(data_keys(connector.settings))
            decoded = b""
            for history in histories:
                decoded += b"".join(p.data for p in await codec.decode(list(payloads_in(history))))
            expected_clear = (
                [backend_secret, sink_secret, first["authorization"]]
                if connector is provider
                else [sink_secret, first["authorization"]]
            )
            assert found_in(decoded, expected_clear) == expected_clear, connector.name

        # The consumer's Postgres: EDR tokens only sealed (record and refreshed EDR row).
        conn = await asyncpg.connect(consumer.db_url)
        try:
            rows = [
                *(r["record"] for r in await conn.fetch("SELECT record::text FROM transfers")),
                *(
                    r["data_address"]
                    for r in await conn.fetch("SELECT data_address::text FROM transfer_edrs")
                ),
            ]
        finally:
            await conn.close()
        stored = "\n".join(rows).encode()
        assert (
            found_in(stored, [first["authorization"], refreshed["authorization"], sink_secret])
            == []
        )
        assert stored.count(b"enc:v1:") >= 4
