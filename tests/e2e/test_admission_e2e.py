"""Admission at capacity (decision 0032), between two connectors on loopback: while the
provider's control task queue holds `max_backlog` tasks no worker took, a new negotiation waits at
its door and is refused 503 + ContractNegotiationError; nothing is started for it, the consumer's
workflow sends the request again, and once the provider's workers drain the backlog every
negotiation ends FINALIZED, each once."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest

from api.admission import task_queue_backlog
from connector.core.dsp import DspVersion, validate_against_schema
from connector.temporal.client import connect
from tests.twoconn import (
    Connector,
    Exchange,
    catalog_offer,
    connector_pair,
    publish_offer,
    request_negotiation,
)

pytestmark = pytest.mark.e2e

MAX_BACKLOG = 2
WAIT_SECONDS = 1.0
RETRY_AFTER_SECONDS = 2
ADMISSION = {
    "max_backlog": MAX_BACKLOG,
    "wait_seconds": WAIT_SECONDS,
    "refresh_seconds": 0.2,
    "retry_after_seconds": RETRY_AFTER_SECONDS,
}


def refusals_of(provider: Connector) -> list[Exchange]:
    return [
        ex
        for ex in provider.recorder.exchanges
        if ex.path == "/dsp/2025-1/negotiations/request" and ex.status == 503
    ]


async def _backlog_reaches(provider: Connector, tasks: int, timeout: float = 30) -> None:
    client = await connect(provider.settings)
    temporal = provider.settings.temporal
    deadline = time.monotonic() + timeout
    while (
        backlog := await task_queue_backlog(
            client, temporal.namespace, temporal.task_queues.control
        )
    ) < tasks:
        assert time.monotonic() < deadline, f"backlog {backlog} < {tasks}"
        await asyncio.sleep(0.2)


@pytest.mark.timeout(300)
async def test_at_capacity_a_new_negotiation_is_refused_and_finishes_after_the_backlog(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    async with connector_pair(
        pg_server_url,
        redis_url,
        temporal_address,
        tmp_path,
        inproc_workers=False,
        admission=ADMISSION,
    ) as (provider, consumer):
        await consumer.start_workers()
        await publish_offer(provider, "asset-1")
        offer = await catalog_offer(consumer, provider, "asset-1")
        admitted = [await request_negotiation(consumer, provider, offer) for _ in range(2)]
        for negotiation_id in admitted:
            await consumer.wait_state(negotiation_id, {"REQUESTED"}, 30)
        # No provider worker runs: each started negotiation's first workflow task waits.
        await _backlog_reaches(provider, MAX_BACKLOG)

        refused_id = await request_negotiation(consumer, provider, offer)
        deadline = time.monotonic() + 30
        while not (refusals := refusals_of(provider)):
            assert time.monotonic() < deadline, provider.recorder.exchanges
            await asyncio.sleep(0.1)
        body = refusals[0].response
        assert body["@type"] == "ContractNegotiationError", body
        assert "at capacity" in body["reason"][0], body
        # No providerPid exists for a refused opening request; none is invented (decision 0002).
        assert body["consumerPid"] == refusals[0].request["consumerPid"], body
        assert validate_against_schema(body, "ContractNegotiationError", DspVersion.V2025_1) == [
            "/: 'providerPid' is a required property"
        ]
        assert provider.metric("connector_admission_refused_total", process="negotiation") >= 1
        # Nothing was started for it: the provider knows the two admitted ones only.
        assert (await provider.get("/negotiations")).json()["total"] == 2
        consumer_side = (await consumer.get(f"/negotiations/{refused_id}")).json()
        assert consumer_side["state"] == "INITIAL", consumer_side  # its request not yet taken

        # The consumer's send honours the refusal's Retry-After (2 s) before each new attempt,
        # which again waits 1 s at the door: no attempt follows the last sooner.
        while len(refusals := refusals_of(provider)) < 3:
            assert time.monotonic() < deadline + 30, provider.recorder.exchanges
            await asyncio.sleep(0.1)
        gaps = [b.at - a.at for a, b in itertools.pairwise(refusals)]
        assert min(gaps) >= RETRY_AFTER_SECONDS + WAIT_SECONDS - 0.3, gaps

        await provider.start_workers()
        for negotiation_id in [*admitted, refused_id]:
            done = await consumer.wait_state(negotiation_id, {"FINALIZED", "TERMINATED"}, 120)
            assert done["state"] == "FINALIZED", done
        listed = (await provider.get("/negotiations")).json()
        assert listed["total"] == 3, listed
        statuses = {ex.status for ex in provider.recorder.exchanges}
        assert all(s < 500 or s == 503 for s in statuses), statuses
