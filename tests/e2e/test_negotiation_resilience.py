"""Negotiations survive crashed workers and unreachable providers; deadlines end them cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest

from tests.twoconn import (
    Connector,
    WorkerProcess,
    catalog_offer,
    connector_pair,
    publish_offer,
    request_negotiation,
)

pytestmark = pytest.mark.e2e

N = int(os.environ.get("NEGOTIATIONS", "50"))
ACCEPTED_PATH = ["contract_request", "agreement", "verification", "finalized_event"]


class Gate:
    """Makes a connector's DSP front door fail (503) while closed: a provider that is down."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.closed = False
        self.let_through: Callable[[str], bool] = lambda path: False

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] == "http"
            and self.closed
            and path.startswith("/dsp/")
            and not self.let_through(path)
        ):
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"down"})
            return
        await self.app(scope, receive, send)


def gate(connector: Connector) -> Gate:
    g = Gate(connector.recorder.app)
    connector.recorder.app = g
    return g


async def _state(connector: Connector, negotiation_id: str) -> str:
    state: str = (await connector.get(f"/negotiations/{negotiation_id}")).json()["state"]
    return state


async def _start(consumer: Connector, provider: Connector, offer: dict[str, Any]) -> str:
    # 202: started, but the control plane's own projection write waited out its pool (fifty
    # starts at once on a loaded machine); the workflow projects it (decision 0001).
    return await request_negotiation(consumer, provider, offer, accepted=(201, 202))


@pytest.mark.timeout(900)
async def test_kill_9_every_worker_mid_way_through_50_negotiations(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    async with connector_pair(
        pg_server_url, redis_url, temporal_address, tmp_path, inproc_workers=False
    ) as (provider, consumer):
        # Workers as real processes (so they can be killed), not in-process ones.
        workers = [WorkerProcess(provider), WorkerProcess(consumer)]
        await publish_offer(provider, "asset-1")
        try:
            for w in workers:
                w.start()
            await asyncio.gather(*(w.ready() for w in workers))
            offer = await catalog_offer(consumer, provider, "asset-1")

            ids = await asyncio.gather(*(_start(consumer, provider, offer) for _ in range(N)))
            # Kill once some are done and the rest are somewhere on the way.
            for _ in range(600):
                if (await consumer.get("/agreements", limit=1)).json()["total"] >= 3:
                    break
                await asyncio.sleep(0.01)
            for w in workers:
                w.kill()
            states = [await _state(consumer, i) for i in ids]
            assert 0 < states.count("FINALIZED") < N, states

            for w in workers:
                w.start()
            finished = []
            for i in ids:
                try:
                    finished.append(await consumer.wait_state(i, {"FINALIZED", "TERMINATED"}, 150))
                except AssertionError:
                    stuck = (await consumer.get(f"/negotiations/{i}")).json()
                    other = await provider.get(f"/negotiations/{stuck['providerPid']}")
                    raise AssertionError(f"stuck: {stuck}\nprovider: {other.text}") from None
            # The provider records the acknowledgement of its FINALIZED event a moment after the
            # consumer applied it: its side is awaited while the workers still run.
            provider_list = (await provider.get("/negotiations", limit=200)).json()
            provider_done = []
            for item in provider_list["items"]:
                try:
                    provider_done.append(
                        await provider.wait_state(item["id"], {"FINALIZED", "TERMINATED"}, 90)
                    )
                except AssertionError as exc:
                    other = (await consumer.get(f"/negotiations/{item['consumerPid']}")).json()
                    raise AssertionError(f"{exc}\nconsumer: {other}") from None
        finally:
            for w in workers:
                w.stop()

        not_finalized = [f for f in finished if f["state"] != "FINALIZED"]
        for f in not_finalized:
            f["provider"] = (await provider.get(f"/negotiations/{f['providerPid']}")).json()
        if not_finalized:
            pytest.fail(f"{len(not_finalized)} not FINALIZED:\n{json.dumps(not_finalized)}")
        for f in finished:
            assert [e["kind"] for e in f["timeline"]] == ACCEPTED_PATH
        assert provider_list["total"] == N  # no second negotiation from a re-sent request
        for detail in provider_done:
            assert detail["state"] == "FINALIZED", detail
            assert [e["kind"] for e in detail["timeline"]] == ACCEPTED_PATH
        assert (await provider.get("/agreements", limit=500)).json()["total"] == N
        assert (await consumer.get("/agreements", limit=500)).json()["total"] == N


async def test_unreachable_provider_is_retried_and_the_negotiation_finishes_when_it_is_back(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    async with connector_pair(pg_server_url, redis_url, temporal_address, tmp_path) as (
        provider,
        consumer,
    ):
        await publish_offer(provider, "asset-1")
        offer = await catalog_offer(consumer, provider, "asset-1")
        front_door = gate(provider)
        front_door.closed = True
        down_since = time.monotonic()
        negotiation_id = await _start(consumer, provider, offer)

        # While the provider is down an operator sees why and when the next try is.
        seen: dict[str, Any] = {}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            seen = (await consumer.get(f"/negotiations/{negotiation_id}")).json()
            if seen.get("lastError") and seen.get("nextRetryAt"):
                break
            await asyncio.sleep(0.2)
        assert "503" in seen["lastError"], seen
        assert seen["state"] == "INITIAL"

        await asyncio.sleep(max(0.0, 30 - (time.monotonic() - down_since)))
        front_door.closed = False
        done = await consumer.wait_state(negotiation_id, {"FINALIZED", "TERMINATED"}, 60)
        assert done["state"] == "FINALIZED", done


async def test_beyond_the_deadline_both_sides_end_terminated_with_the_reason(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    async with connector_pair(
        pg_server_url,
        redis_url,
        temporal_address,
        tmp_path,
        negotiation={"deadline_seconds": 6},
    ) as (provider, consumer):
        await publish_offer(provider, "asset-1")
        offer = await catalog_offer(consumer, provider, "asset-1")
        front_door = gate(provider)
        # The provider takes the request, then becomes unreachable for everything else.
        front_door.let_through = lambda path: path.endswith("/negotiations/request")
        front_door.closed = True
        negotiation_id = await _start(consumer, provider, offer)

        consumer_side = await consumer.wait_state(negotiation_id, {"TERMINATED"}, 30)
        provider_side = await provider.wait_state(consumer_side["providerPid"], {"TERMINATED"}, 30)

        reason = " ".join(consumer_side["termination"]["reason"])
        assert "deadline" in reason, consumer_side
        last = consumer_side["timeline"][-1]
        assert last["kind"] == "termination"
        assert "deadline" in (last["detail"] or "")
        assert provider_side["termination"]["code"] == "deadline_exceeded", provider_side
        assert provider_side["timeline"][-1]["kind"] == "termination"


async def _requested_by_consumer_workers(provider: Connector, consumer: Connector) -> Any:
    """Only the consumer's workers run: its request reaches the provider, which answers 201."""
    await consumer.start_workers()
    await publish_offer(provider, "asset-1")
    offer = await catalog_offer(consumer, provider, "asset-1")
    negotiation_id = await _start(consumer, provider, offer)
    return await consumer.wait_state(negotiation_id, {"REQUESTED"}, 30)


async def test_the_opening_request_needs_no_worker_and_finishes_once_workers_are_back(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    """The provider answers the opening ContractRequestMessage with 201 while none of its workers
    runs (decision 0008: the workflow is started, the projection written); the negotiation goes
    on once a worker polls."""
    async with connector_pair(
        pg_server_url, redis_url, temporal_address, tmp_path, inproc_workers=False
    ) as (provider, consumer):
        requested = await _requested_by_consumer_workers(provider, consumer)
        negotiation_id = requested["id"]
        opening = [ex for ex in provider.recorder.exchanges if ex.path.endswith("/request")]
        assert [ex.status for ex in opening if "negotiations" in ex.path] == [201], opening
        provider_side = await provider.wait_state(requested["providerPid"], {"REQUESTED"}, 5)
        assert provider_side["workflow"]["status"] == "RUNNING", provider_side
        await provider.start_workers()
        done = await consumer.wait_state(negotiation_id, {"FINALIZED", "TERMINATED"}, 90)
        assert done["state"] == "FINALIZED", done
        detail = await provider.wait_state(requested["providerPid"], {"FINALIZED"}, 30)
        assert [e["kind"] for e in detail["timeline"]] == ACCEPTED_PATH


async def test_no_worker_answers_503_and_the_resent_message_is_applied_once_workers_are_back(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    """A DSP message that no worker takes within the bound gets 503 (never a 500, never a hang);
    the counterparty re-sends it, and it is applied once, when a worker polls again. Here the
    provider's agreement reaches a consumer whose workers are gone."""
    async with connector_pair(
        pg_server_url, redis_url, temporal_address, tmp_path, inproc_workers=False
    ) as (provider, consumer):
        negotiation_id = (await _requested_by_consumer_workers(provider, consumer))["id"]
        await consumer.stop_workers()
        await provider.start_workers()
        deadline = time.monotonic() + 30
        while not any(ex.status == 503 for ex in consumer.recorder.exchanges):
            assert time.monotonic() < deadline, consumer.recorder.exchanges
            await asyncio.sleep(0.2)
        await consumer.start_workers()
        done = await consumer.wait_state(negotiation_id, {"FINALIZED", "TERMINATED"}, 90)
        assert done["state"] == "FINALIZED", done
        assert [e["kind"] for e in done["timeline"]] == ACCEPTED_PATH
        statuses = [ex.status for ex in consumer.recorder.exchanges]
        assert all(s < 500 or s == 503 for s in statuses), statuses
        provider_list = (await provider.get("/negotiations")).json()
        assert provider_list["total"] == 1, provider_list
        detail = await provider.wait_state(provider_list["items"][0]["id"], {"FINALIZED"}, 30)
        assert [e["kind"] for e in detail["timeline"]] == ACCEPTED_PATH
