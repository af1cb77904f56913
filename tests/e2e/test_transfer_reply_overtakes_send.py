"""A counterparty's reply that overtakes our own message's acknowledgement: the reply stands for
that acknowledgement, and the message is sent once, not again.

The scripted consumer gets the provider's TransferStartMessage and, before it answers that
request, sends its TransferSuspensionMessage (legal only once STARTED, so it proves the start
arrived). The provider's workflow counts the suspension as the acknowledgement and cancels its
still-running send; the cancellation must not start the send's retries (a second
TransferStartMessage, which the consumer, SUSPENDED by then, never asked for). A reply that ends
the transfer would hide the bug: the workflow completes and drops the retry with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector.core.dsp import DspVersion, validate_against_schema
from tests.scripted_peer import (
    CONTEXT,
    Received,
    ScriptedPeer,
    connector_trusting,
    new_pid,
    request_message,
    scripted_peer,
    verification_message,
)
from tests.twoconn import Connector, publish_offer

pytestmark = pytest.mark.e2e

DSP = "/dsp/2025-1"
ASSET = "asset-overtaken"


@dataclass
class World:
    cut: Connector  # the provider under test
    peer: ScriptedPeer  # the consumer, scripted
    agreement_id: str


async def _agreement(cut: Connector, peer: ScriptedPeer) -> str:
    resp = await peer.post(
        cut, f"{DSP}/catalog/request", {"@context": CONTEXT, "@type": "CatalogRequestMessage"}
    )
    assert resp.status_code == 200, resp.text
    datasets = resp.json().get("dataset", [])
    [dataset] = datasets if isinstance(datasets, list) else [datasets]
    policies = dataset["hasPolicy"]
    offer = dict(policies[0] if isinstance(policies, list) else policies)
    offer.update({"@type": "Offer", "target": dataset["@id"]})
    cpid = new_pid()
    message = request_message(offer, cpid, callback_address=peer.callback)
    resp = await peer.post(cut, f"{DSP}/negotiations/request", message)
    assert resp.status_code == 201, resp.text
    ppid = resp.json()["providerPid"]
    [agreement] = await peer.wait_for("ContractAgreementMessage", pid=cpid)
    verification = verification_message(ppid, cpid)
    resp = await peer.post(cut, f"{DSP}/negotiations/{ppid}/agreement/verification", verification)
    assert resp.status_code == 200, resp.text
    await cut.wait_state(ppid, {"FINALIZED"})
    agreement_id: str = agreement.body["agreement"]["@id"]
    return agreement_id


@pytest.fixture(scope="module")
async def world(
    pg_server_url: str,
    redis_url: str,
    temporal_address: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[World]:
    tmp: Path = tmp_path_factory.mktemp("overtaken")
    async with (
        scripted_peer(tmp / "peer") as peer,
        connector_trusting(
            peer,
            tmp / "cut",
            name="provider",
            pg_server_url=pg_server_url,
            redis_url=redis_url,
            temporal_address=temporal_address,
            dataplane="inproc",
        ) as cut,
    ):
        await publish_offer(cut, ASSET)
        yield World(cut, peer, await _agreement(cut, peer))


async def test_reply_before_the_answer_acknowledges_and_the_start_is_sent_once(
    world: World,
) -> None:
    cut, peer = world.cut, world.peer
    cpid = new_pid()
    answered: asyncio.Future[httpx.Response] = asyncio.get_running_loop().create_future()

    async def suspend_first(start: Received) -> None:
        ppid = start.get("providerPid")
        body: dict[str, Any] = {
            "@context": CONTEXT,
            "@type": "TransferSuspensionMessage",
            "consumerPid": cpid,
            "providerPid": ppid,
            "code": "paused-by-test",
        }
        answered.set_result(await peer.post(cut, f"{DSP}/transfers/{ppid}/suspension", body))

    peer.before_answer["TransferStartMessage"] = suspend_first
    request = {
        "@context": CONTEXT,
        "@type": "TransferRequestMessage",
        "consumerPid": cpid,
        "agreementId": world.agreement_id,
        "format": "HttpData-PULL",
        "callbackAddress": peer.callback,
    }
    resp = await peer.post(cut, f"{DSP}/transfers/request", request)
    assert resp.status_code == 201, resp.text
    ppid = resp.json()["providerPid"]

    # The projection may show SUSPENDED before the suspension's answer is back at the peer.
    suspension = await asyncio.wait_for(answered, 30)
    assert suspension.status_code == 200, suspension.text
    assert suspension.json()["state"] == "SUSPENDED"

    # Past the send's first retry backoff: a retried start would have arrived by now.
    await peer.quiet(3.0)
    starts = peer.messages("TransferStartMessage", pid=cpid)
    assert len(starts) == 1, [(r.path, r.status) for r in starts]
    assert validate_against_schema(starts[0].body, "TransferStartMessage", DspVersion.V2025_1) == []
    view = await cut.wait_state(ppid, {"SUSPENDED"}, kind="transfers")
    timeline = [(e["direction"], e["kind"], e["to_state"]) for e in view["timeline"]]
    assert timeline == [
        ("in", "transfer_request", "REQUESTED"),
        ("out", "transfer_start", "STARTED"),
        ("in", "transfer_suspension", "SUSPENDED"),
    ], timeline
    [acknowledged] = [e for e in view["timeline"] if e["kind"] == "transfer_start"]
    assert acknowledged["detail"] == "acknowledged by the counterparty's reply"
