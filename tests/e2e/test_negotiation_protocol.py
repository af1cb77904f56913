"""Contract negotiation conformance against a scripted counterparty (dsp.md §5, §6, §8, §10).

One real connector (uvicorn + in-process Temporal worker + own Postgres DB, secure did:web
identity, `auto_accept_offers=false`) plays the consumer in some negotiations and the provider in
others; `tests.scripted_peer.ScriptedPeer` plays the other side the way the DSP TCK does: it
records what the connector sends and sends raw DSP messages with a valid signed token.

Every negative row asserts the status (400 illegal transition, 404 unknown/not yours, 401 not
authenticated), a `ContractNegotiationError` body valid against the official schema, and that the
state is unchanged afterwards, both over DSP (GET as the peer) and in the management API.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from connector.core.dsp import DSP_CONTEXT_0_8, DspVersion, validate_against_schema
from connector.core.peer_reasons import PEER_REASONS
from tests.scripted_peer import (
    CONTEXT,
    ScriptedPeer,
    agreement_message,
    connector_trusting,
    event_message,
    new_pid,
    offer_message,
    request_message,
    scripted_peer,
    termination_message,
    trust_also,
    verification_message,
)
from tests.twoconn import OPEN_POLICY, Connector, publish_offer

pytestmark = pytest.mark.e2e

DSP = "/dsp/2025-1"
OPEN_ASSET = "asset-open"
GOLD_ASSET = "asset-gold"
GOLD_POLICY = {
    "@id": "gold-only",
    "@type": "Set",
    "permission": [
        {
            "action": "use",
            "constraint": [{"leftOperand": "claim:tier", "operator": "eq", "rightOperand": "gold"}],
        }
    ],
}


@dataclass
class World:
    cut: Connector  # the connector under test
    peer: ScriptedPeer  # trusted counterparty
    other: ScriptedPeer  # a second trusted counterparty
    stranger: ScriptedPeer  # signs valid tokens, but is not trusted
    offers: dict[str, dict[str, Any]]  # asset id -> catalog Offer (as the peer sees it)


@pytest.fixture(scope="module")
async def world(
    pg_server_url: str,
    redis_url: str,
    temporal_address: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp("protocol")
    async with (
        scripted_peer(tmp / "peer") as peer,
        scripted_peer(tmp / "other") as other,
        scripted_peer(tmp / "stranger") as stranger,
        connector_trusting(
            peer,
            tmp / "cut",
            pg_server_url=pg_server_url,
            redis_url=redis_url,
            temporal_address=temporal_address,
            policies={"auto_accept_offers": False},
        ) as cut,
    ):
        trust_also(cut, other.did)
        await publish_offer(cut, OPEN_ASSET)
        await _publish_gold(cut)
        offers = await _catalog_offers(peer, cut)
        yield World(cut, peer, other, stranger, offers)


async def _publish_gold(cut: Connector) -> None:
    for path, body in (
        (
            "/assets",
            {
                "id": GOLD_ASSET,
                "properties": {"name": "Gold members only"},
                "dataAddress": {"type": "http", "baseUrl": "http://127.0.0.1:9/data"},
                "distributions": ["HttpData-PULL"],
            },
        ),
        ("/policies", {"id": GOLD_POLICY["@id"], "policy": GOLD_POLICY}),
        (
            "/offers",
            {
                "id": f"offer-{GOLD_ASSET}",
                "assetSelector": [GOLD_ASSET],
                "accessPolicyId": OPEN_POLICY["@id"],
                "contractPolicyId": GOLD_POLICY["@id"],
            },
        ),
    ):
        resp = await cut.post(path, body)
        assert resp.status_code in (201, 409), resp.text


async def _catalog_offers(peer: ScriptedPeer, cut: Connector) -> dict[str, dict[str, Any]]:
    resp = await peer.post(
        cut, f"{DSP}/catalog/request", {"@context": CONTEXT, "@type": "CatalogRequestMessage"}
    )
    assert resp.status_code == 200, resp.text
    datasets = resp.json().get("dataset", [])
    offers = {}
    for dataset in datasets if isinstance(datasets, list) else [datasets]:
        policies = dataset["hasPolicy"]
        offer = dict(policies[0] if isinstance(policies, list) else policies)
        offer.update({"@type": "Offer", "target": dataset["@id"]})
        offers[dataset["@id"]] = offer
    assert {OPEN_ASSET, GOLD_ASSET} <= offers.keys(), offers
    return offers


# --- assertions ------------------------------------------------------------------------------


def assert_dsp_error(
    resp: httpx.Response, status: int, version: DspVersion = DspVersion.V2025_1
) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    type_name = str(body.get("@type", "")).removeprefix("dspace:")
    assert type_name == "ContractNegotiationError", body
    problems = validate_against_schema(body, type_name, version)
    # An opening message names no pid of ours: the one nobody named is left out, never
    # invented (decision 0002); every other body is valid.
    prefix = "dspace:" if version is DspVersion.V0_8 else ""
    opening = resp.request.url.path.endswith(("/negotiations/request", "/negotiations/offers"))
    unnamed = {
        f"/: '{prefix}{k}' is a required property"
        for k in ("consumerPid", "providerPid")
        if f"{prefix}{k}" not in body
    }
    assert set(problems) <= (unnamed if opening else set()), body
    assert "urn:connector:unknown" not in resp.text
    if status in (401, 404):  # generic, with the correlation id of our log line (finding 2)
        correlation = resp.headers["X-Correlation-Id"]
        generic = "not authenticated" if status == 401 else "not found"
        reason = body.get("reason", body.get(f"{prefix}reason"))
        assert correlation in json.dumps(reason), body
        assert generic in json.dumps(reason), body
    return dict(body)


async def dsp_state(peer: ScriptedPeer, cut: Connector, pid: str) -> str:
    resp = await peer.get(cut, f"{DSP}/negotiations/{pid}")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert validate_against_schema(body, "ContractNegotiation", DspVersion.V2025_1) == [], body
    return str(body["state"])


async def mgmt(cut: Connector, pid: str) -> dict[str, Any]:
    resp = await cut.get(f"/negotiations/{pid}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def assert_state(world: World, pid: str, state: str, version: int | None = None) -> None:
    """DSP GET (as the peer) and the management API both show `state` (and `version`)."""
    assert await dsp_state(world.peer, world.cut, pid) == state
    view = await mgmt(world.cut, pid)
    assert view["state"] == state, view
    if version is not None:
        assert view["version"] == version, view


# --- our connector as CONSUMER ---------------------------------------------------------------


@dataclass
class Consumer:
    """A negotiation the connector under test started as consumer with the scripted provider."""

    cpid: str  # the connector's pid
    ppid: str  # the scripted provider's pid
    target: str
    offer: dict[str, Any] | None = None  # the ContractOfferMessage the provider sent

    def at(self, suffix: str) -> str:
        return f"{DSP}/negotiations/{self.cpid}/{suffix}"


async def consumer_requested(world: World) -> Consumer:
    target = f"ds-{uuid.uuid4().hex[:8]}"
    offer = {
        "@id": f"offer-{target}",
        "@type": "Offer",
        "target": target,
        "permission": [{"action": "use"}],
    }
    resp = await world.cut.post(
        "/negotiations",
        {"counterPartyAddress": world.peer.dsp, "counterPartyId": world.peer.did, "offer": offer},
    )
    assert resp.status_code == 201, resp.text
    cpid = resp.json()["id"]
    [initial] = await world.peer.wait_for(
        "ContractRequestMessage", where=lambda r: r.get("consumerPid") == cpid
    )
    assert initial.path == "/dsp/2025-1/negotiations/request"
    assert initial.get("callbackAddress") == world.cut.dsp
    await world.cut.wait_state(cpid, {"REQUESTED"})
    return Consumer(cpid, world.peer.provider_pids[cpid], target)


async def consumer_offered(world: World) -> Consumer:
    c = await consumer_requested(world)
    offer = {
        "@id": f"offer-{c.target}-2",
        "@type": "Offer",
        "target": c.target,
        "assigner": world.peer.did,
        "permission": [{"action": "use"}],
    }
    c.offer = offer_message(offer, c.ppid, c.cpid)
    resp = await world.peer.post(world.cut, c.at("offers"), c.offer)
    assert resp.status_code == 200, resp.text
    view = await mgmt(world.cut, c.cpid)
    assert view["state"] == "OFFERED", view
    assert view["awaitingDecision"] is True, view
    return c


def agreement_for(world: World, c: Consumer) -> dict[str, Any]:
    return agreement_message(
        c.ppid, c.cpid, target=c.target, assigner=world.peer.did, assignee=world.cut.did
    )


async def test_consumer_finalized_while_requested_is_400(world: World) -> None:
    c = await consumer_requested(world)
    before = (await mgmt(world.cut, c.cpid))["version"]
    resp = await world.peer.post(
        world.cut, c.at("events"), event_message(c.ppid, c.cpid, "FINALIZED")
    )
    body = assert_dsp_error(resp, 400)
    assert (body["providerPid"], body["consumerPid"]) == (c.ppid, c.cpid)
    await assert_state(world, c.cpid, "REQUESTED", before)


async def test_consumer_verification_from_provider_is_400(world: World) -> None:
    c = await consumer_requested(world)
    before = (await mgmt(world.cut, c.cpid))["version"]
    resp = await world.peer.post(
        world.cut, c.at("agreement/verification"), verification_message(c.ppid, c.cpid)
    )
    assert_dsp_error(resp, 400)
    await assert_state(world, c.cpid, "REQUESTED", before)


async def test_consumer_accepted_event_from_provider_is_400(world: World) -> None:
    c = await consumer_requested(world)
    before = (await mgmt(world.cut, c.cpid))["version"]
    resp = await world.peer.post(
        world.cut, c.at("events"), event_message(c.ppid, c.cpid, "ACCEPTED")
    )
    assert_dsp_error(resp, 400)
    await assert_state(world, c.cpid, "REQUESTED", before)


async def test_consumer_agreement_while_offered_is_400(world: World) -> None:
    c = await consumer_offered(world)
    before = (await mgmt(world.cut, c.cpid))["version"]
    resp = await world.peer.post(world.cut, c.at("agreement"), agreement_for(world, c))
    assert_dsp_error(resp, 400)
    await assert_state(world, c.cpid, "OFFERED", before)
    assert (await mgmt(world.cut, c.cpid))["agreementId"] is None


async def test_consumer_verification_while_offered_is_400(world: World) -> None:
    c = await consumer_offered(world)
    before = (await mgmt(world.cut, c.cpid))["version"]
    resp = await world.peer.post(
        world.cut, c.at("agreement/verification"), verification_message(c.ppid, c.cpid)
    )
    assert_dsp_error(resp, 400)
    await assert_state(world, c.cpid, "OFFERED", before)


async def test_consumer_any_message_after_terminated_is_400(world: World) -> None:
    c = await consumer_offered(world)
    termination = termination_message(c.ppid, c.cpid, reason=["no longer offered"])
    resp = await world.peer.post(world.cut, c.at("termination"), termination)
    assert resp.status_code == 200, resp.text
    await world.cut.wait_state(c.cpid, {"TERMINATED"})
    before = (await mgmt(world.cut, c.cpid))["version"]
    offer: dict[str, Any] = {"@id": "offer-again", "@type": "Offer", "target": c.target}
    offer["permission"] = [{"action": "use"}]
    for suffix, message in (
        ("offers", offer_message(offer, c.ppid, c.cpid)),
        ("agreement", agreement_for(world, c)),
        ("events", event_message(c.ppid, c.cpid, "FINALIZED")),
        ("termination", termination_message(c.ppid, c.cpid, code="2")),
    ):
        resp = await world.peer.post(world.cut, c.at(suffix), message)
        assert resp.status_code == 400, (suffix, message["@type"], resp.text)
        assert_dsp_error(resp, 400)
        await assert_state(world, c.cpid, "TERMINATED", before)
    # A retry of the very message that terminated it (its answer got lost) is answered again.
    resp = await world.peer.post(world.cut, c.at("termination"), termination)
    assert resp.status_code == 200, resp.text
    assert resp.json()["state"] == "TERMINATED"
    await assert_state(world, c.cpid, "TERMINATED", before)


async def test_consumer_finalized_while_our_verification_retries_is_its_acknowledgement(
    world: World,
) -> None:
    """The provider got our verification but its answer was lost (here: 503s); its FINALIZED
    event proves it has the verification, so we take it, not 400 it, and stop re-sending."""
    c = await consumer_requested(world)
    world.peer.status["agreement/verification"] = 503
    try:
        resp = await world.peer.post(world.cut, c.at("agreement"), agreement_for(world, c))
        assert resp.status_code == 200, resp.text
        await world.peer.wait_for("ContractAgreementVerificationMessage", pid=c.ppid)
        resp = await world.peer.post(
            world.cut, c.at("events"), event_message(c.ppid, c.cpid, "FINALIZED")
        )
        assert resp.status_code == 200, resp.text
        await assert_state(world, c.cpid, "FINALIZED")
        view = await mgmt(world.cut, c.cpid)
        verification = [e for e in view["timeline"] if e["kind"] == "verification"]
        assert verification[0]["detail"] == "acknowledged by the counterparty's reply", view
        sent = len(world.peer.messages("ContractAgreementVerificationMessage", c.ppid))
        await asyncio.sleep(3)  # the send retries back off from 1 s: one would show by now
        assert len(world.peer.messages("ContractAgreementVerificationMessage", c.ppid)) == sent
    finally:
        del world.peer.status["agreement/verification"]


async def test_consumer_unknown_pid_is_404(world: World) -> None:
    unknown = new_pid()
    resp = await world.peer.post(
        world.cut,
        f"{DSP}/negotiations/{unknown}/events",
        event_message(new_pid(), unknown, "FINALIZED"),
    )
    assert_dsp_error(resp, 404)
    resp = await world.peer.get(world.cut, f"{DSP}/negotiations/{unknown}")
    assert_dsp_error(resp, 404)
    assert (await world.cut.get(f"/negotiations/{unknown}")).status_code == 404


@pytest.mark.parametrize("caller", ["unsigned", "untrusted", "garbage"])
async def test_unauthenticated_caller_gets_error_body(world: World, caller: str) -> None:
    c = await consumer_requested(world)
    before = (await mgmt(world.cut, c.cpid))["version"]
    message = event_message(c.ppid, c.cpid, "FINALIZED")
    if caller == "unsigned":
        resp = await world.peer.post(world.cut, c.at("events"), message, authorization=None)
    elif caller == "untrusted":
        resp = await world.stranger.post(world.cut, c.at("events"), message)
    else:
        resp = await world.peer.post(
            world.cut, c.at("events"), message, authorization="Bearer not.a.token"
        )
    assert resp.status_code in (401, 404), resp.text
    assert_dsp_error(resp, resp.status_code)
    await assert_state(world, c.cpid, "REQUESTED", before)


async def test_consumer_operator_accept_sends_accepted(world: World) -> None:
    c = await consumer_offered(world)
    await world.peer.quiet()
    assert world.peer.messages(pid=c.ppid) == [], "nothing is sent before the operator decides"
    resp = await world.cut.post(f"/negotiations/{c.cpid}/decision", {"decision": "accept"})
    assert resp.status_code == 200, resp.text
    [accepted] = await world.peer.wait_for("ContractNegotiationEventMessage", pid=c.ppid)
    assert accepted.path == f"/dsp/2025-1/negotiations/{c.ppid}/events"
    assert accepted.get("eventType") == "ACCEPTED"
    assert (accepted.get("providerPid"), accepted.get("consumerPid")) == (c.ppid, c.cpid)
    assert accepted.authorization is not None
    assert accepted.authorization.startswith("Bearer ")
    await world.cut.wait_state(c.cpid, {"ACCEPTED"})
    view = await mgmt(world.cut, c.cpid)
    assert view["awaitingDecision"] is False
    # ACCEPTED -> the provider agrees: the connector (consumer) verifies.
    resp = await world.peer.post(world.cut, c.at("agreement"), agreement_for(world, c))
    assert resp.status_code == 200, resp.text
    await world.peer.wait_for("ContractAgreementVerificationMessage", pid=c.ppid)


async def test_consumer_same_offer_again_while_accepted_is_400(world: World) -> None:
    # CN_C:03-05: the offer did not make the current state (our ACCEPTED did), so the same
    # offer again is a new message, judged, and illegal while ACCEPTED (decision 0019).
    c = await consumer_offered(world)
    resp = await world.cut.post(f"/negotiations/{c.cpid}/decision", {"decision": "accept"})
    assert resp.status_code == 200, resp.text
    await world.peer.wait_for("ContractNegotiationEventMessage", pid=c.ppid)
    await world.cut.wait_state(c.cpid, {"ACCEPTED"})
    before = (await mgmt(world.cut, c.cpid))["version"]
    resp = await world.peer.post(world.cut, c.at("offers"), c.offer)
    assert_dsp_error(resp, 400)
    await assert_state(world, c.cpid, "ACCEPTED", before)


async def test_consumer_retried_offer_is_answered_while_it_made_the_state(world: World) -> None:
    # A true retry: nothing happened since the offer, so its answer is given again.
    c = await consumer_offered(world)
    before = (await mgmt(world.cut, c.cpid))["version"]
    resp = await world.peer.post(world.cut, c.at("offers"), c.offer)
    assert resp.status_code == 200, resp.text
    assert resp.json()["state"] == "OFFERED"
    await assert_state(world, c.cpid, "OFFERED", before)


async def test_consumer_operator_terminate_sends_termination(world: World) -> None:
    c = await consumer_offered(world)
    resp = await world.cut.post(
        f"/negotiations/{c.cpid}/decision", {"decision": "terminate", "reason": "too expensive"}
    )
    assert resp.status_code == 200, resp.text
    [term] = await world.peer.wait_for("ContractNegotiationTerminationMessage", pid=c.ppid)
    assert term.path == f"/dsp/2025-1/negotiations/{c.ppid}/termination"
    # The peer gets the code's fixed text; the operator's words stay in our record (finding 5).
    assert term.get("code") == "terminated_by_operator", term.body
    assert term.get("reason") == [PEER_REASONS["terminated_by_operator"]], term.body
    assert validate_against_schema(term.body, term.body["@type"], DspVersion.V2025_1) == []
    await world.cut.wait_state(c.cpid, {"TERMINATED"})
    assert (await mgmt(world.cut, c.cpid))["termination"]["reason"] == ["too expensive"]
    assert await dsp_state(world.peer, world.cut, c.cpid) == "TERMINATED"


# --- our connector as PROVIDER ---------------------------------------------------------------


@dataclass
class Provider:
    """A negotiation the scripted consumer started with the connector under test (provider)."""

    ppid: str  # the connector's pid
    cpid: str  # the scripted consumer's pid

    def at(self, suffix: str) -> str:
        return f"{DSP}/negotiations/{self.ppid}/{suffix}"


async def provider_requested(
    world: World, asset: str = OPEN_ASSET, peer: ScriptedPeer | None = None
) -> tuple[Provider, httpx.Response]:
    peer = peer or world.peer
    cpid = new_pid()
    message = request_message(world.offers[asset], cpid, callback_address=peer.callback)
    resp = await peer.post(world.cut, f"{DSP}/negotiations/request", message)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert validate_against_schema(body, "ContractNegotiation", DspVersion.V2025_1) == [], body
    assert body["consumerPid"] == cpid, body
    assert body["state"] == "REQUESTED", body
    return Provider(body["providerPid"], cpid), resp


async def provider_agreed(world: World, peer: ScriptedPeer | None = None) -> Provider:
    peer = peer or world.peer
    p, _ = await provider_requested(world, peer=peer)
    [agreement] = await peer.wait_for("ContractAgreementMessage", pid=p.cpid)
    assert agreement.path == f"/callback/negotiations/{p.cpid}/agreement"
    schema = DspVersion.V2025_1
    assert validate_against_schema(agreement.body, "ContractAgreementMessage", schema) == []
    assert agreement.body["agreement"]["assignee"] == peer.did
    await world.cut.wait_state(p.ppid, {"AGREED"})
    return p


async def test_provider_accepted_event_while_agreed_is_400(world: World) -> None:
    p = await provider_agreed(world)
    before = (await mgmt(world.cut, p.ppid))["version"]
    resp = await world.peer.post(
        world.cut, p.at("events"), event_message(p.ppid, p.cpid, "ACCEPTED")
    )
    body = assert_dsp_error(resp, 400)
    assert (body["providerPid"], body["consumerPid"]) == (p.ppid, p.cpid)
    await assert_state(world, p.ppid, "AGREED", before)


async def test_provider_finalized_event_from_consumer_is_400(world: World) -> None:
    p = await provider_agreed(world)
    before = (await mgmt(world.cut, p.ppid))["version"]
    resp = await world.peer.post(
        world.cut, p.at("events"), event_message(p.ppid, p.cpid, "FINALIZED")
    )
    assert_dsp_error(resp, 400)
    await assert_state(world, p.ppid, "AGREED", before)


async def test_provider_counter_request_while_agreed_is_400(world: World) -> None:
    p = await provider_agreed(world)
    before = (await mgmt(world.cut, p.ppid))["version"]
    counter = request_message(world.offers[OPEN_ASSET], p.cpid, provider_pid=p.ppid)
    resp = await world.peer.post(world.cut, p.at("request"), counter)
    assert_dsp_error(resp, 400)
    await assert_state(world, p.ppid, "AGREED", before)


async def test_provider_verification_repeated_after_finalized_is_400(world: World) -> None:
    # Our FINALIZED made the current state, not the verification: the same verification again
    # is judged, and illegal once FINALIZED (decision 0019).
    p = await provider_agreed(world)
    verification = verification_message(p.ppid, p.cpid)
    resp = await world.peer.post(world.cut, p.at("agreement/verification"), verification)
    assert resp.status_code == 200, resp.text
    [finalized] = await world.peer.wait_for("ContractNegotiationEventMessage", pid=p.cpid)
    assert finalized.get("eventType") == "FINALIZED"
    await world.cut.wait_state(p.ppid, {"FINALIZED"})
    before = (await mgmt(world.cut, p.ppid))["version"]
    resp = await world.peer.post(world.cut, p.at("agreement/verification"), verification)
    assert_dsp_error(resp, 400)
    await assert_state(world, p.ppid, "FINALIZED", before)


async def test_provider_retried_verification_is_answered_not_applied_twice(world: World) -> None:
    # The scripted consumer refuses FINALIZED (503), so the provider stays VERIFIED, retrying.
    # Nothing happened since the verification: the same message again is a retry whose answer
    # got lost, indistinguishable from a re-send; it is answered, not judged or applied again.
    world.peer.status["events"] = 503
    try:
        p = await provider_agreed(world)
        verification = verification_message(p.ppid, p.cpid)
        resp = await world.peer.post(world.cut, p.at("agreement/verification"), verification)
        assert resp.status_code == 200, resp.text
        before = (await mgmt(world.cut, p.ppid))["version"]
        resp = await world.peer.post(world.cut, p.at("agreement/verification"), verification)
        assert resp.status_code == 200, resp.text
        assert resp.json()["state"] == "VERIFIED"
        await assert_state(world, p.ppid, "VERIFIED", before)
        # Anything else is judged: the consumer may not send FINALIZED.
        finalized = event_message(p.ppid, p.cpid, "FINALIZED")
        assert_dsp_error(await world.peer.post(world.cut, p.at("events"), finalized), 400)
        await assert_state(world, p.ppid, "VERIFIED", before)
    finally:
        world.peer.status.pop("events")
    await world.peer.wait_for(
        "ContractNegotiationEventMessage",
        pid=p.cpid,
        where=lambda r: r.status == 200,
    )
    await world.cut.wait_state(p.ppid, {"FINALIZED"})


async def test_provider_pid_in_path_differs_from_body_is_400(world: World) -> None:
    p = await provider_agreed(world)
    q = await provider_agreed(world)
    before = (await mgmt(world.cut, p.ppid))["version"]
    resp = await world.peer.post(
        world.cut, p.at("agreement/verification"), verification_message(q.ppid, q.cpid)
    )
    assert_dsp_error(resp, 400)
    await assert_state(world, p.ppid, "AGREED", before)
    await assert_state(world, q.ppid, "AGREED")


async def test_provider_unknown_pid_is_404(world: World) -> None:
    unknown = new_pid()
    resp = await world.peer.post(
        world.cut,
        f"{DSP}/negotiations/{unknown}/agreement/verification",
        verification_message(unknown, new_pid()),
    )
    assert_dsp_error(resp, 404)


async def test_provider_other_participants_negotiation_is_404(world: World) -> None:
    p = await provider_agreed(world)
    before = (await mgmt(world.cut, p.ppid))["version"]
    verification = verification_message(p.ppid, p.cpid)
    resp = await world.other.post(world.cut, p.at("agreement/verification"), verification)
    assert_dsp_error(resp, 404)
    resp = await world.other.get(world.cut, f"{DSP}/negotiations/{p.ppid}")
    assert_dsp_error(resp, 404)
    await assert_state(world, p.ppid, "AGREED", before)
    # ... and the second peer is trusted: its own negotiation works.
    mine = await provider_agreed(world, peer=world.other)
    assert mine.ppid != p.ppid


async def test_provider_initial_request_is_idempotent(world: World) -> None:
    p, _ = await provider_requested(world)
    message = request_message(
        world.offers[OPEN_ASSET], p.cpid, callback_address=world.peer.callback
    )
    again = await world.peer.post(world.cut, f"{DSP}/negotiations/request", message)
    assert again.status_code in (200, 201), again.text
    assert again.json()["providerPid"] == p.ppid
    await world.cut.wait_state(p.ppid, {"AGREED"})
    third = await world.peer.post(world.cut, f"{DSP}/negotiations/request", message)
    assert third.status_code in (200, 201), third.text
    assert third.json()["providerPid"] == p.ppid
    listed = await world.cut.get("/negotiations", role="provider", limit=200)
    mine = [n for n in listed.json()["items"] if n["consumerPid"] == p.cpid]
    assert len(mine) == 1, mine
    await world.peer.quiet()
    assert len(world.peer.messages("ContractAgreementMessage", pid=p.cpid)) == 1


async def test_provider_a_different_request_under_a_used_consumer_pid_is_400(world: World) -> None:
    """The pid names the negotiation its first request opened; another request under it is not
    a retry (decision 0008): DSP 400, and the negotiation is left as it was."""
    p, _ = await provider_requested(world)
    await world.cut.wait_state(p.ppid, {"AGREED"})
    before = (await mgmt(world.cut, p.ppid))["version"]
    other = request_message(world.offers[GOLD_ASSET], p.cpid, callback_address=world.peer.callback)
    resp = await world.peer.post(world.cut, f"{DSP}/negotiations/request", other)
    body = assert_dsp_error(resp, 400)
    assert body["consumerPid"] == p.cpid
    await assert_state(world, p.ppid, "AGREED", before)
    listed = await world.cut.get("/negotiations", role="provider", limit=200)
    assert [n["id"] for n in listed.json()["items"] if n["consumerPid"] == p.cpid] == [p.ppid]


async def test_provider_unknown_offer_is_400(world: World) -> None:
    cpid = new_pid()
    offer = dict(world.offers[OPEN_ASSET])
    offer["@id"] = f"offer-does-not-exist:{uuid.uuid4().hex}"
    listed_before = (await world.cut.get("/negotiations", role="provider")).json()["total"]
    resp = await world.peer.post(
        world.cut,
        f"{DSP}/negotiations/request",
        request_message(offer, cpid, callback_address=world.peer.callback),
    )
    body = assert_dsp_error(resp, 400)
    assert body["consumerPid"] == cpid
    assert (await world.cut.get("/negotiations", role="provider")).json()["total"] == listed_before
    await world.peer.quiet()
    assert world.peer.messages(pid=cpid) == []


async def test_provider_policy_denied_offer_is_terminated_with_reason(world: World) -> None:
    p, _ = await provider_requested(world, GOLD_ASSET)
    [term] = await world.peer.wait_for("ContractNegotiationTerminationMessage", pid=p.cpid)
    assert term.path == f"/callback/negotiations/{p.cpid}/termination"
    assert validate_against_schema(term.body, term.body["@type"], DspVersion.V2025_1) == []
    # The peer gets the code and its fixed text; the policy's reasons stay with us (finding 5).
    assert term.get("code") == "policy_denied", term.body
    assert term.get("reason") == [PEER_REASONS["policy_denied"]], term.body
    await world.cut.wait_state(p.ppid, {"TERMINATED"})
    assert await dsp_state(world.peer, world.cut, p.ppid) == "TERMINATED"
    view = await mgmt(world.cut, p.ppid)
    assert view["termination"]["code"] == "policy_denied", view
    assert "tier" in " ".join(view["termination"]["reason"]), view
    last = view["timeline"][-1]
    assert (last["kind"], last["direction"], last["to_state"]) == (
        "termination",
        "out",
        "TERMINATED",
    )
    assert "tier" in (last["detail"] or ""), last
    assert world.peer.messages("ContractAgreementMessage", pid=p.cpid) == []


async def test_provider_initial_request_dsp_08(world: World) -> None:
    cpid = new_pid()
    offer = world.offers[OPEN_ASSET]
    message = {
        "@context": DSP_CONTEXT_0_8,
        "@type": "dspace:ContractRequestMessage",
        "dspace:consumerPid": cpid,
        "dspace:offer": {
            "@type": "odrl:Offer",
            "@id": offer["@id"],
            "odrl:target": OPEN_ASSET,
            "odrl:permission": [{"odrl:action": "odrl:use"}],
        },
        "dspace:callbackAddress": world.peer.callback,
    }
    assert validate_against_schema(message, "ContractRequestMessage", DspVersion.V0_8) == []
    resp = await world.peer.post(world.cut, "/dsp/0.8/negotiations/request", message)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["@context"] == DSP_CONTEXT_0_8, body
    assert body["@type"] == "dspace:ContractNegotiation", body
    assert body["dspace:consumerPid"] == cpid
    assert body["dspace:state"] == "dspace:REQUESTED"
    assert validate_against_schema(body, "ContractNegotiation", DspVersion.V0_8) == [], body
    [agreement] = await world.peer.wait_for("ContractAgreementMessage", pid=cpid)
    assert agreement.body["@type"] == "dspace:ContractAgreementMessage", agreement.body
    assert (
        validate_against_schema(agreement.body, "ContractAgreementMessage", DspVersion.V0_8) == []
    ), agreement.body
    ppid = body["dspace:providerPid"]
    view = await world.cut.wait_state(ppid, {"AGREED"})
    assert view["dspVersion"] == "0.8"
