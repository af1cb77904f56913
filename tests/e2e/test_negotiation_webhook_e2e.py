"""A negotiation that starts waiting for a person calls the operator webhook once, signed
(decision 0013): here a provider in `approve` mode holding a consumer's request."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

from connector.core.webhook_signature import HEADER, ID_HEADER, verify
from tests.scripted_peer import (
    CONTEXT,
    ScriptedPeer,
    connector_trusting,
    new_pid,
    request_message,
    scripted_peer,
)
from tests.twoconn import Connector, publish_offer
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.e2e

DSP = "/dsp/2025-1"
SECRET = "negotiation-webhook-secret-0123"
ASSET = "asset-held"


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver().serving() as r:
        yield r


async def _catalog_offer(peer: ScriptedPeer, cut: Connector) -> dict[str, object]:
    resp = await peer.post(
        cut, f"{DSP}/catalog/request", {"@context": CONTEXT, "@type": "CatalogRequestMessage"}
    )
    assert resp.status_code == 200, resp.text
    datasets = resp.json()["dataset"]
    [dataset] = datasets if isinstance(datasets, list) else [datasets]
    policies = dataset["hasPolicy"]
    offer = dict(policies[0] if isinstance(policies, list) else policies)
    offer.update({"@type": "Offer", "target": dataset["@id"]})
    return offer


async def test_a_held_request_notifies_the_operator_once(
    pg_server_url: str,
    redis_url: str,
    temporal_address: str,
    tmp_path_factory: pytest.TempPathFactory,
    receiver: WebhookReceiver,
) -> None:
    tmp = tmp_path_factory.mktemp("webhook")
    async with (
        scripted_peer(tmp / "peer") as peer,
        connector_trusting(
            peer,
            tmp / "cut",
            pg_server_url=pg_server_url,
            redis_url=redis_url,
            temporal_address=temporal_address,
            negotiation={"provider_decision": "approve", "hold_timeout_seconds": 3600},
            operator_webhook={"url": receiver.url, "secret": SECRET},
        ) as cut,
    ):
        await publish_offer(cut, ASSET)
        offer = await _catalog_offer(peer, cut)
        consumer_pid = new_pid()
        message = request_message(offer, consumer_pid, callback_address=peer.callback)
        resp = await peer.post(cut, f"{DSP}/negotiations/request", message)
        assert resp.status_code == 201, resp.text
        provider_pid = resp.json()["providerPid"]

        deadline = time.monotonic() + 20
        while not receiver.calls:
            assert time.monotonic() < deadline, "the webhook was never called"
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # a second notice for the same hold would arrive by now
        [(headers, raw, _)] = receiver.calls
        assert verify(headers[HEADER.lower()], SECRET.encode(), raw, now=int(time.time()))
        notice = json.loads(raw)
        assert headers[ID_HEADER.lower()] == notice["id"]
        assert notice["process"] == "negotiation"
        assert notice["processId"] == provider_pid
        assert notice["role"] == "provider"
        assert notice["state"] == "REQUESTED"
        assert notice["counterPartyId"] == peer.did
        view = (await cut.get(f"/negotiations/{provider_pid}")).json()
        assert notice["awaiting"] == view["awaiting"]["kind"]
        assert set(notice["commands"]) == set(view["awaiting"]["decisions"])
        assert "agree" in notice["commands"]

        # Decided: the hold is over, and nothing more is sent to the webhook.
        resp = await cut.post(f"/negotiations/{provider_pid}/decision", {"decision": "agree"})
        assert resp.status_code == 200, resp.text
        await peer.wait_for("ContractAgreementMessage", pid=consumer_pid)
        assert len(receiver.calls) == 1
