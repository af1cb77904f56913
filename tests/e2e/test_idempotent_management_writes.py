"""`Idempotency-Key` on `POST /management/v1/negotiations` and `/transfers`, two connectors on
loopback (decision 0009): one process per key, also for concurrent requests and for the retry
after a control plane died between starting the workflow and storing its answer; and never a 5xx
once the workflow was started, even when the projection cannot be read (issue 14)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.e2e.transfer_helpers import agreement_for
from tests.twoconn import HEADERS, Connector, catalog_offer, connector_pair, publish_offer

pytestmark = pytest.mark.e2e

# What a control plane killed after the side effect, before it stored the answer, leaves behind
# (its lease ran out since).
CRASHED = (
    "UPDATE idempotency_keys SET status = NULL, response = NULL, "
    "leased_until = now() - interval '1 second'"
)


async def post(connector: Connector, path: str, body: Any, key: str) -> httpx.Response:
    return await connector.http.post(
        f"/management/v1{path}", json=body, headers={**HEADERS, "Idempotency-Key": key}
    )


async def sql(connector: Connector, statement: str) -> None:
    conn = await asyncpg.connect(connector.db_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def total(connector: Connector, kind: str) -> int:
    count: int = (await connector.get(f"/{kind}")).json()["total"]
    return count


@contextlib.asynccontextmanager
async def projection_unreadable(connector: Connector, table: str) -> AsyncIterator[None]:
    """The projection table is gone for a moment: every read and write of it fails in Postgres
    (the route's read-your-writes and the workflow's own projection alike)."""
    await sql(connector, f"ALTER TABLE {table} RENAME TO {table}_away")
    try:
        yield
    finally:
        await sql(connector, f"ALTER TABLE {table}_away RENAME TO {table}")


def negotiation_body(provider: Connector, offer: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "counterPartyAddress": provider.dsp,
        "counterPartyId": provider.did,
        "offer": offer,
        **extra,
    }


async def test_one_negotiation_per_key_also_for_concurrent_requests(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    async with connector_pair(pg_server_url, redis_url, temporal_address, tmp_path) as (
        provider,
        consumer,
    ):
        await publish_offer(provider, "asset-1")
        offer = await catalog_offer(consumer, provider, "asset-1")
        body = negotiation_body(provider, offer)

        first = await post(consumer, "/negotiations", body, "n-1")
        assert first.status_code == 201, first.text
        again = await post(consumer, "/negotiations", body, "n-1")
        assert (again.status_code, again.content) == (201, first.content)
        assert again.headers["idempotent-replayed"] == "true"

        # The same key with another body names another request: refused, nothing started.
        other = await post(consumer, "/negotiations", {**body, "reuse": True}, "n-1")
        assert other.status_code == 422, other.text
        assert other.headers["content-type"].startswith("application/problem+json")

        answers = await asyncio.gather(
            *(post(consumer, "/negotiations", body, "n-2") for _ in range(6))
        )
        assert [a.status_code for a in answers] == [201] * 6, [a.text for a in answers]
        assert len({a.content for a in answers}) == 1
        second_id = answers[0].json()["id"]
        assert second_id != first.json()["id"]

        assert await total(consumer, "negotiations") == 2
        for negotiation_id in (first.json()["id"], second_id):
            done = await consumer.wait_state(negotiation_id, {"FINALIZED", "TERMINATED"})
            assert done["state"] == "FINALIZED", done
        assert await total(provider, "negotiations") == 2


async def test_a_retry_after_a_crash_joins_the_negotiation_the_first_try_started(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    async with connector_pair(pg_server_url, redis_url, temporal_address, tmp_path) as (
        provider,
        consumer,
    ):
        await publish_offer(provider, "asset-1")
        offer = await catalog_offer(consumer, provider, "asset-1")
        body = negotiation_body(provider, offer)
        first = await post(consumer, "/negotiations", body, "n-1")
        assert first.status_code == 201, first.text
        negotiation_id = first.json()["id"]

        await sql(consumer, CRASHED)
        retried = await post(consumer, "/negotiations", body, "n-1")
        assert retried.status_code == 201, retried.text
        assert retried.json()["id"] == negotiation_id
        assert "idempotent-replayed" not in retried.headers  # it ran again
        replayed = await post(consumer, "/negotiations", body, "n-1")
        assert replayed.content == retried.content
        assert await total(consumer, "negotiations") == 1
        done = await consumer.wait_state(negotiation_id, {"FINALIZED", "TERMINATED"})
        assert done["state"] == "FINALIZED", done
        assert await total(provider, "negotiations") == 1

        # Once the key has expired it is a new key: a new negotiation.
        await sql(consumer, "UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
        fresh = await post(consumer, "/negotiations", body, "n-1")
        assert fresh.status_code == 201, fresh.text
        assert fresh.json()["id"] != negotiation_id
        assert await total(consumer, "negotiations") == 2


async def test_a_started_negotiation_is_202_with_its_id_when_the_projection_fails(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    async with connector_pair(pg_server_url, redis_url, temporal_address, tmp_path) as (
        provider,
        consumer,
    ):
        await publish_offer(provider, "asset-1")
        offer = await catalog_offer(consumer, provider, "asset-1")
        body = negotiation_body(provider, offer)
        async with projection_unreadable(consumer, "negotiations"):
            plain = await consumer.post("/negotiations", body)
            keyed = await post(consumer, "/negotiations", body, "n-1")
            replayed = await post(consumer, "/negotiations", body, "n-1")
        for answer in (plain, keyed):
            assert answer.status_code == 202, answer.text
            assert answer.json()["id"] == answer.json()["consumerPid"]
            assert answer.json()["state"] == "INITIAL"
        assert (replayed.status_code, replayed.content) == (202, keyed.content)
        ids = {plain.json()["id"], keyed.json()["id"]}
        assert len(ids) == 2

        # The workflows ran on, and projected themselves once Postgres answered again.
        for negotiation_id in ids:
            done = await consumer.wait_state(negotiation_id, {"FINALIZED", "TERMINATED"})
            assert done["state"] == "FINALIZED", done
        assert await total(consumer, "negotiations") == 2
        again = await post(consumer, "/negotiations", body, "n-1")
        assert (again.status_code, again.content) == (202, keyed.content)
        assert await total(consumer, "negotiations") == 2


async def test_one_transfer_per_key_after_a_crash_and_202_when_the_projection_fails(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    async with connector_pair(
        pg_server_url, redis_url, temporal_address, tmp_path, provider_dataplane="inproc"
    ) as (provider, consumer):
        base = provider.settings.dataplane.file_base_path
        assert base is not None
        (base / "d.bin").write_bytes(b"data" * 1000)
        agreement_id = await agreement_for(
            provider, consumer, "file-asset", data_address={"type": "file", "path": "d.bin"}
        )
        body = {
            "counterPartyAddress": provider.dsp,
            "counterPartyId": provider.did,
            "agreementId": agreement_id,
            "format": "HttpData-PULL",
        }
        first = await post(consumer, "/transfers", body, "t-1")
        assert first.status_code == 201, first.text
        transfer_id = first.json()["id"]
        again = await post(consumer, "/transfers", body, "t-1")
        assert (again.status_code, again.content) == (201, first.content)
        other = await post(consumer, "/transfers", {**body, "format": "HttpData-PUSH"}, "t-1")
        assert other.status_code == 422, other.text

        await sql(consumer, CRASHED)
        retried = await post(consumer, "/transfers", body, "t-1")
        assert retried.status_code == 201, retried.text
        assert retried.json()["id"] == transfer_id
        assert await total(consumer, "transfers") == 1

        async with projection_unreadable(consumer, "transfers"):
            started = await post(consumer, "/transfers", body, "t-2")
        assert started.status_code == 202, started.text
        assert started.json()["id"] != transfer_id
        for tid in (transfer_id, started.json()["id"]):
            state = await consumer.wait_transfer(tid, {"STARTED", "TERMINATED"})
            assert state["state"] == "STARTED", state
        assert await total(consumer, "transfers") == 2
        assert await total(provider, "transfers") == 2


async def test_get_or_negotiate_retried_after_a_crash_joins_its_own_negotiation(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    async with connector_pair(pg_server_url, redis_url, temporal_address, tmp_path) as (
        provider,
        consumer,
    ):
        await publish_offer(provider, "asset-1")
        offer = await catalog_offer(consumer, provider, "asset-1")
        # The provider answers the request (no worker needed) but never agrees: the negotiation
        # the transfer started stays running, as it would while a control plane restarts.
        await provider.stop_workers()
        body = {
            "counterPartyAddress": provider.dsp,
            "counterPartyId": provider.did,
            "offer": offer,
            "format": "HttpData-PULL",
        }
        first = await post(consumer, "/transfers", body, "t-1")
        assert first.status_code == 201, first.text
        negotiation_id = first.json()["negotiationId"]
        await consumer.wait_state(negotiation_id, {"REQUESTED"})

        await sql(consumer, CRASHED)
        retried = await post(consumer, "/transfers", body, "t-1")
        assert retried.status_code == 201, retried.text
        assert retried.json()["id"] == first.json()["id"]
        assert retried.json()["negotiationId"] == negotiation_id
        # Another caller (no key) for the same offer is still told to wait for it.
        assert (await consumer.post("/transfers", body)).status_code == 409
        assert await total(consumer, "transfers") == 1
        assert await total(consumer, "negotiations") == 1
