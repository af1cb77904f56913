"""Every DSP 2025-1 TCK contract negotiation scenario (CN, CN_C; ../shared/docs/conformance.md
§3.2, §3.3) played against a scripted counterparty, with the configuration and the operator
decisions that play it (decision 0012; the table in docs/conformance.md).

The connector under test (CUT) holds what a person must decide: as provider, offers published
with `providerDecision: approve` hold each request (and each acceptance), and
`negotiation.hold_verified` holds VERIFIED; as consumer, `policies.auto_accept_offers=false`
holds each offer and `negotiation.hold_agreements` each agreement. The test is the operator.
Every message the CUT sends is validated against the 2025-1 schemas, and so is every
`ContractNegotiation` it answers with; the state is read the TCK's way (a DSP GET as the peer).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest

from connector.core.dsp import DspVersion, validate_against_schema
from connector.core.ids import negotiation_workflow_id
from connector.core.negotiation.states import Role
from connector.temporal.client import connect
from tests.scripted_peer import (
    Received,
    ScriptedPeer,
    agreement_message,
    connector_trusting,
    event_message,
    new_pid,
    offer_message,
    request_message,
    scripted_peer,
    termination_message,
    verification_message,
)
from tests.twoconn import OPEN_POLICY, Connector
from workflows.search import AWAITING

pytestmark = pytest.mark.e2e

DSP = "/dsp/2025-1"
V = DspVersion.V2025_1
# The operator's counter-offer / counter-request: other rules than the published offer's.
COUNTER_POLICY: dict[str, Any] = {
    "permission": [
        {
            "action": "use",
            "constraint": [
                {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"}
            ],
        }
    ]
}


@dataclass
class World:
    cut: Connector
    peer: ScriptedPeer
    offers: dict[str, dict[str, Any]]  # dataset id -> catalog Offer (with target)


@pytest.fixture(scope="module")
async def world(
    pg_server_url: str,
    redis_url: str,
    temporal_address: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp("conformance")
    async with (
        scripted_peer(tmp / "peer") as peer,
        connector_trusting(
            peer,
            tmp / "cut",
            pg_server_url=pg_server_url,
            redis_url=redis_url,
            temporal_address=temporal_address,
            policies={"auto_accept_offers": False},
            negotiation={"hold_verified": True, "hold_agreements": True},
        ) as cut,
    ):
        resp = await cut.post("/policies", {"id": OPEN_POLICY["@id"], "policy": OPEN_POLICY})
        assert resp.status_code == 201, resp.text
        yield World(cut, peer, {})


async def dataset(world: World, name: str, mode: str) -> dict[str, Any]:
    """Publish dataset `name` under an offer with `providerDecision: mode`; its catalog Offer."""
    for path, body in (
        (
            "/assets",
            {
                "id": name,
                "properties": {"name": name},
                "dataAddress": {"type": "http", "baseUrl": "http://127.0.0.1:9/data"},
                "distributions": ["HttpData-PULL"],
            },
        ),
        (
            "/offers",
            {
                "id": f"CD123:{name}",
                "assetSelector": [name],
                "accessPolicyId": OPEN_POLICY["@id"],
                "contractPolicyId": OPEN_POLICY["@id"],
                "providerDecision": mode,
            },
        ),
    ):
        resp = await world.cut.post(path, body)
        assert resp.status_code == 201, resp.text
    assert resp.json()["providerDecision"] == mode
    resp = await world.peer.get(world.cut, f"{DSP}/catalog/datasets/{name}")
    assert resp.status_code == 200, resp.text
    policies = resp.json()["hasPolicy"]
    offer = dict(policies[0] if isinstance(policies, list) else policies)
    return {**offer, "@type": "Offer", "target": name}


# --- what the CUT says --------------------------------------------------------------------------


def valid(body: Any, type_name: str | None = None) -> None:
    assert isinstance(body, dict), body
    name = type_name or str(body["@type"])
    assert validate_against_schema(body, name, V) == [], (name, body)


async def emitted(world: World, type_: str, pid: str, count: int = 1) -> Received:
    """The `count`-th message of `type_` the CUT sent about the peer's `pid`, schema-checked."""
    found = await world.peer.wait_for(type_, pid=pid, count=count)
    message = found[count - 1]
    valid(message.body, type_)
    return message


def all_emitted_valid(world: World, pid: str) -> list[str]:
    """Every message the CUT sent about `pid` is valid; their types in order."""
    sent = world.peer.messages(pid=pid)
    for message in sent:
        valid(message.body)
    return [str(m.type) for m in sent]


async def dsp_state(world: World, pid: str) -> str:
    resp = await world.peer.get(world.cut, f"{DSP}/negotiations/{pid}")
    assert resp.status_code == 200, resp.text
    valid(resp.json(), "ContractNegotiation")
    return str(resp.json()["state"])


def ok(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code in (200, 201), resp.text
    body = resp.json()
    valid(body, "ContractNegotiation")
    return dict(body)


def refused(resp: httpx.Response) -> None:
    """The TCK's verdict on an illegal message: 4xx, not 404, with a valid error body."""
    assert 400 <= resp.status_code < 500, resp.text
    assert resp.status_code != 404, resp.text
    valid(resp.json(), "ContractNegotiationError")


# --- the operator -----------------------------------------------------------------------------


async def held(world: World, pid: str, kind: str) -> dict[str, Any]:
    """The negotiation waits for `kind`, and the operator queue lists it."""
    view = await wait_awaiting(world.cut, pid, kind)
    awaiting = view["awaiting"]
    assert awaiting["since"] < awaiting["deadline"], awaiting
    queue = (await world.cut.get("/negotiations", awaiting="operator", limit=200)).json()
    assert pid in [item["id"] for item in queue["items"]], queue
    return dict(view)


async def decide(world: World, pid: str, decision: str, **body: Any) -> dict[str, Any]:
    resp = await world.cut.post(f"/negotiations/{pid}/decision", {"decision": decision, **body})
    assert resp.status_code == 200, resp.text
    view = dict(resp.json())
    assert view["awaiting"] is None, view
    timeline = (await world.cut.get(f"/negotiations/{pid}")).json()["timeline"]
    decisions = [e for e in timeline if e["kind"] == "decision"]
    assert decisions[-1]["decision"] == decision, decisions
    assert decisions[-1]["operator"] == "key-1", decisions
    return view


async def wait_awaiting(cut: Connector, pid: str, kind: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    view: Any = None
    while time.monotonic() < deadline:
        view = (await cut.get(f"/negotiations/{pid}")).json()
        if (view.get("awaiting") or {}).get("kind") == kind:
            return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"{pid} does not await {kind}: {view}")


# --- CUT as provider (CN) -----------------------------------------------------------------------


@dataclass
class Cn:
    ppid: str  # the CUT's pid
    cpid: str  # the peer's (TCK's) pid
    offer: dict[str, Any]

    def at(self, suffix: str) -> str:
        return f"{DSP}/negotiations/{self.ppid}/{suffix}"


async def requested(world: World, name: str, mode: str) -> Cn:
    """Step R: the TCK's initial ContractRequestMessage; 2xx + ContractNegotiation REQUESTED."""
    offer = await dataset(world, name, mode)
    cpid = new_pid()
    message = request_message(offer, cpid, callback_address=world.peer.callback)
    body = ok(await world.peer.post(world.cut, f"{DSP}/negotiations/request", message))
    assert (body["consumerPid"], body["state"]) == (cpid, "REQUESTED"), body
    return Cn(body["providerPid"], cpid, offer)


async def offered(world: World, name: str) -> Cn:
    """R, held for approval, the operator counter-offers: the CUT's ContractOfferMessage."""
    cn = await requested(world, name, "approve")
    view = await held(world, cn.ppid, "approve-request")
    assert view["state"] == "REQUESTED"
    await decide(world, cn.ppid, "offer", offer=COUNTER_POLICY)
    offer = await emitted(world, "ContractOfferMessage", cn.cpid)
    assert offer.path == f"/callback/negotiations/{cn.cpid}/offers"
    assert offer.get("callbackAddress") is None
    sent = offer.body["offer"]
    assert (sent["@type"], sent["target"]) == ("Offer", name), sent
    assert sent["permission"] == COUNTER_POLICY["permission"], sent
    await world.cut.wait_state(cn.ppid, {"OFFERED"})
    return cn


async def accepted(world: World, cn: Cn) -> None:
    ok(
        await world.peer.post(
            world.cut, cn.at("events"), event_message(cn.ppid, cn.cpid, "ACCEPTED")
        )
    )
    assert await dsp_state(world, cn.ppid) == "ACCEPTED"


async def agreed(world: World, cn: Cn) -> Received:
    agreement = await emitted(world, "ContractAgreementMessage", cn.cpid)
    assert agreement.body["agreement"]["assignee"] == world.peer.did
    await world.cut.wait_state(cn.ppid, {"AGREED"})
    return agreement


async def verified(world: World, cn: Cn) -> None:
    resp = await world.peer.post(
        world.cut, cn.at("agreement/verification"), verification_message(cn.ppid, cn.cpid)
    )
    ok(resp)
    await held(world, cn.ppid, "finalize")


async def tck_terminates(world: World, cn: Cn) -> None:
    ok(
        await world.peer.post(
            world.cut, cn.at("termination"), termination_message(cn.ppid, cn.cpid)
        )
    )


async def cut_terminates(world: World, cn: Cn, reason: str) -> None:
    await decide(world, cn.ppid, "terminate", reason=reason)
    term = await emitted(world, "ContractNegotiationTerminationMessage", cn.cpid)
    assert term.path == f"/callback/negotiations/{cn.cpid}/termination"
    assert term.get("code") == "terminated_by_operator"
    await world.cut.wait_state(cn.ppid, {"TERMINATED"})
    view = (await world.cut.get(f"/negotiations/{cn.ppid}")).json()
    assert view["termination"]["reason"] == [reason], view


def counter_request(cn: Cn, offer_id: str = "CD123:ACN0102:456") -> dict[str, Any]:
    offer = {
        "@id": offer_id,
        "@type": "Offer",
        "target": cn.offer["target"],
        "permission": [{"action": "use"}],
    }
    return request_message(offer, cn.cpid, provider_pid=cn.ppid)


async def test_cn_01_01_offer_on_request_then_consumer_terminates(world: World) -> None:
    cn = await offered(world, "ACN0101")
    assert await dsp_state(world, cn.ppid) == "OFFERED"
    await tck_terminates(world, cn)
    assert await dsp_state(world, cn.ppid) == "TERMINATED"
    assert all_emitted_valid(world, cn.cpid) == ["ContractOfferMessage"]


async def test_cn_01_02_counter_request_is_held_then_terminated(world: World) -> None:
    cn = await offered(world, "ACN0102")
    ok(await world.peer.post(world.cut, cn.at("request"), counter_request(cn)))
    view = await held(world, cn.ppid, "approve-request")
    assert view["state"] == "REQUESTED"
    await cut_terminates(world, cn, "not for this purpose")
    assert all_emitted_valid(world, cn.cpid) == [
        "ContractOfferMessage",
        "ContractNegotiationTerminationMessage",
    ]


async def test_cn_01_03_offer_accepted_agreed_verified_finalized(world: World) -> None:
    cn = await offered(world, "ACN0103")
    await accepted(world, cn)
    await held(world, cn.ppid, "approve-acceptance")
    await decide(world, cn.ppid, "agree")
    agreement = await agreed(world, cn)
    assert agreement.body["agreement"]["permission"] == COUNTER_POLICY["permission"]
    await verified(world, cn)
    await decide(world, cn.ppid, "finalize")
    finalized = await emitted(world, "ContractNegotiationEventMessage", cn.cpid)
    assert finalized.get("eventType") == "FINALIZED"
    await world.cut.wait_state(cn.ppid, {"FINALIZED"})
    assert all_emitted_valid(world, cn.cpid) == [
        "ContractOfferMessage",
        "ContractAgreementMessage",
        "ContractNegotiationEventMessage",
    ]


async def test_cn_01_04_agreement_on_request_then_finalized(world: World) -> None:
    cn = await requested(world, "ACN0104", "auto")
    await agreed(world, cn)
    await verified(world, cn)
    await decide(world, cn.ppid, "finalize")
    await emitted(world, "ContractNegotiationEventMessage", cn.cpid)
    await world.cut.wait_state(cn.ppid, {"FINALIZED"})
    assert all_emitted_valid(world, cn.cpid) == [
        "ContractAgreementMessage",
        "ContractNegotiationEventMessage",
    ]


async def test_cn_02_01_provider_terminates_the_request(world: World) -> None:
    cn = await requested(world, "ACN0201", "approve")
    await held(world, cn.ppid, "approve-request")
    await cut_terminates(world, cn, "unknown consumer")
    assert all_emitted_valid(world, cn.cpid) == ["ContractNegotiationTerminationMessage"]


async def test_cn_02_02_held_request_terminated_by_consumer(world: World) -> None:
    cn = await requested(world, "ACN0202", "approve")
    await held(world, cn.ppid, "approve-request")
    await tck_terminates(world, cn)
    assert await dsp_state(world, cn.ppid) == "TERMINATED"
    view = (await world.cut.get(f"/negotiations/{cn.ppid}")).json()
    assert view["awaiting"] is None, view
    await world.peer.quiet()
    assert all_emitted_valid(world, cn.cpid) == []


async def test_cn_02_03_consumer_terminates_in_agreed(world: World) -> None:
    cn = await requested(world, "ACN0203", "auto")
    await agreed(world, cn)
    await tck_terminates(world, cn)
    assert await dsp_state(world, cn.ppid) == "TERMINATED"


async def test_cn_02_04_offer_on_request_then_consumer_terminates(world: World) -> None:
    cn = await offered(world, "ACN0204")
    await tck_terminates(world, cn)
    assert await dsp_state(world, cn.ppid) == "TERMINATED"


async def test_cn_02_05_provider_terminates_its_offer_unprompted(world: World) -> None:
    cn = await offered(world, "ACN0205")
    await cut_terminates(world, cn, "offer withdrawn")
    assert all_emitted_valid(world, cn.cpid) == [
        "ContractOfferMessage",
        "ContractNegotiationTerminationMessage",
    ]


async def test_cn_02_06_provider_terminates_in_accepted(world: World) -> None:
    cn = await offered(world, "ACN0206")
    await accepted(world, cn)
    await held(world, cn.ppid, "approve-acceptance")
    await cut_terminates(world, cn, "changed our mind")
    assert "ContractAgreementMessage" not in all_emitted_valid(world, cn.cpid)


async def test_cn_02_07_provider_terminates_in_verified(world: World) -> None:
    cn = await requested(world, "ACN0207", "auto")
    await agreed(world, cn)
    await verified(world, cn)
    await cut_terminates(world, cn, "not finalizing")
    assert all_emitted_valid(world, cn.cpid) == [
        "ContractAgreementMessage",
        "ContractNegotiationTerminationMessage",
    ]


async def test_cn_03_01_finalized_cannot_be_terminated(world: World) -> None:
    cn = await requested(world, "ACN0301", "auto")
    await agreed(world, cn)
    await verified(world, cn)
    await decide(world, cn.ppid, "finalize")
    await emitted(world, "ContractNegotiationEventMessage", cn.cpid)
    await world.cut.wait_state(cn.ppid, {"FINALIZED"})
    assert await dsp_state(world, cn.ppid) == "FINALIZED"
    resp = await world.peer.post(
        world.cut, cn.at("termination"), termination_message(cn.ppid, cn.cpid)
    )
    refused(resp)
    assert await dsp_state(world, cn.ppid) == "FINALIZED"


async def test_cn_03_02_verification_while_offered_is_refused(world: World) -> None:
    cn = await offered(world, "ACN0302")
    resp = await world.peer.post(
        world.cut, cn.at("agreement/verification"), verification_message(cn.ppid, cn.cpid)
    )
    refused(resp)
    assert await dsp_state(world, cn.ppid) == "OFFERED"


async def test_cn_03_03_verification_while_accepted_is_refused(world: World) -> None:
    cn = await offered(world, "ACN0303")
    await accepted(world, cn)
    await held(world, cn.ppid, "approve-acceptance")
    resp = await world.peer.post(
        world.cut, cn.at("agreement/verification"), verification_message(cn.ppid, cn.cpid)
    )
    refused(resp)
    assert await dsp_state(world, cn.ppid) == "ACCEPTED"


async def test_cn_03_04_second_counter_request_is_refused(world: World) -> None:
    cn = await offered(world, "ACN0304")
    ok(await world.peer.post(world.cut, cn.at("request"), counter_request(cn, cn.offer["@id"])))
    await held(world, cn.ppid, "approve-request")
    # Another request while REQUESTED (a repeat of the first would be answered as a retry).
    second = counter_request(cn, f"{cn.offer['@id']}:again")
    refused(await world.peer.post(world.cut, cn.at("request"), second))
    assert await dsp_state(world, cn.ppid) == "REQUESTED"
    await held(world, cn.ppid, "approve-request")


# --- CUT as consumer (CN_C) ---------------------------------------------------------------------


@dataclass
class CnC:
    cpid: str  # the CUT's pid
    ppid: str  # the peer's (TCK's) pid
    target: str

    def at(self, suffix: str) -> str:
        return f"{DSP}/negotiations/{self.cpid}/{suffix}"


async def consumer_requested(world: World, name: str) -> CnC:
    """Steps I and Q: the operator starts a negotiation; the TCK gets the initial request."""
    target = f"{name}-{uuid.uuid4().hex[:6]}"
    offer = {
        "@id": f"offer{target}",
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
    valid(initial.body, "ContractRequestMessage")
    assert initial.get("providerPid") is None
    await world.cut.wait_state(cpid, {"REQUESTED"})
    return CnC(cpid, world.peer.provider_pids[cpid], target)


def provider_offer(world: World, c: CnC) -> dict[str, Any]:
    offer = {
        "@id": f"offer{c.target}",
        "@type": "Offer",
        "target": c.target,
        "assigner": world.peer.did,
        "permission": [{"action": "use"}],
    }
    return offer_message(offer, c.ppid, c.cpid)


async def consumer_offered(world: World, name: str) -> tuple[CnC, dict[str, Any]]:
    c = await consumer_requested(world, name)
    offer = provider_offer(world, c)
    ok(await world.peer.post(world.cut, c.at("offers"), offer))
    await held(world, c.cpid, "accept-offer")
    return c, offer


async def consumer_accepts(world: World, c: CnC) -> None:
    await decide(world, c.cpid, "accept")
    accepted = await emitted(world, "ContractNegotiationEventMessage", c.ppid)
    assert accepted.path == f"/dsp/2025-1/negotiations/{c.ppid}/events"
    assert accepted.get("eventType") == "ACCEPTED"
    await world.cut.wait_state(c.cpid, {"ACCEPTED"})


async def consumer_agreed(world: World, c: CnC) -> None:
    agreement = agreement_message(
        c.ppid, c.cpid, target=c.target, assigner=world.peer.did, assignee=world.cut.did
    )
    ok(await world.peer.post(world.cut, c.at("agreement"), agreement))
    await held(world, c.cpid, "verify-agreement")


async def consumer_verifies(world: World, c: CnC) -> None:
    await decide(world, c.cpid, "verify")
    verification = await emitted(world, "ContractAgreementVerificationMessage", c.ppid)
    assert verification.path == f"/dsp/2025-1/negotiations/{c.ppid}/agreement/verification"
    await world.cut.wait_state(c.cpid, {"VERIFIED"})


async def consumer_terminates(world: World, c: CnC, reason: str) -> None:
    await decide(world, c.cpid, "terminate", reason=reason)
    term = await emitted(world, "ContractNegotiationTerminationMessage", c.ppid)
    assert term.path == f"/dsp/2025-1/negotiations/{c.ppid}/termination"
    await world.cut.wait_state(c.cpid, {"TERMINATED"})


async def provider_sends(world: World, c: CnC, suffix: str, message: dict[str, Any]) -> None:
    ok(await world.peer.post(world.cut, c.at(suffix), message))


async def test_cn_c_01_01_accept_offer_verify_agreement_finalized(world: World) -> None:
    c, _ = await consumer_offered(world, "ACNC0101")
    await consumer_accepts(world, c)
    await consumer_agreed(world, c)
    await consumer_verifies(world, c)
    await provider_sends(world, c, "events", event_message(c.ppid, c.cpid, "FINALIZED"))
    assert await dsp_state(world, c.cpid) == "FINALIZED"
    assert all_emitted_valid(world, c.ppid) == [
        "ContractNegotiationEventMessage",
        "ContractAgreementVerificationMessage",
    ]


async def test_cn_c_01_02_counter_request_on_offer(world: World) -> None:
    c, _ = await consumer_offered(world, "ACNC0102")
    await decide(world, c.cpid, "request", offer=COUNTER_POLICY)
    counter = await emitted(world, "ContractRequestMessage", c.ppid)
    assert counter.path == f"/dsp/2025-1/negotiations/{c.ppid}/request"
    assert counter.get("providerPid") == c.ppid
    assert counter.get("callbackAddress") is None
    assert counter.body["offer"]["permission"] == COUNTER_POLICY["permission"]
    assert counter.body["offer"]["target"] == c.target
    await world.cut.wait_state(c.cpid, {"REQUESTED"})
    await provider_sends(world, c, "termination", termination_message(c.ppid, c.cpid))
    assert await dsp_state(world, c.cpid) == "TERMINATED"


async def test_cn_c_01_03_terminate_on_offer(world: World) -> None:
    c, _ = await consumer_offered(world, "ACNC0103")
    await consumer_terminates(world, c, "too expensive")
    assert await dsp_state(world, c.cpid) == "TERMINATED"


async def test_cn_c_01_04_agreement_right_after_request_verified(world: World) -> None:
    c = await consumer_requested(world, "ACNC0104")
    await consumer_agreed(world, c)
    await consumer_verifies(world, c)
    await provider_sends(world, c, "events", event_message(c.ppid, c.cpid, "FINALIZED"))
    assert await dsp_state(world, c.cpid) == "FINALIZED"


async def test_cn_c_02_01_provider_terminates_the_request(world: World) -> None:
    c = await consumer_requested(world, "ACNC0201")
    await provider_sends(world, c, "termination", termination_message(c.ppid, c.cpid))
    assert await dsp_state(world, c.cpid) == "TERMINATED"


async def test_cn_c_02_02_consumer_terminates_its_request(world: World) -> None:
    c = await consumer_requested(world, "ACNC0202")
    await consumer_terminates(world, c, "no longer needed")
    assert await dsp_state(world, c.cpid) == "TERMINATED"


async def test_cn_c_02_03_consumer_terminates_on_agreement(world: World) -> None:
    c = await consumer_requested(world, "ACNC0203")
    await consumer_agreed(world, c)
    await consumer_terminates(world, c, "agreement not wanted")
    assert await dsp_state(world, c.cpid) == "TERMINATED"
    assert "ContractAgreementVerificationMessage" not in all_emitted_valid(world, c.ppid)


async def test_cn_c_02_04_offer_then_provider_terminates(world: World) -> None:
    c, _ = await consumer_offered(world, "ACNC0204")
    assert await dsp_state(world, c.cpid) == "OFFERED"
    await provider_sends(world, c, "termination", termination_message(c.ppid, c.cpid))
    assert await dsp_state(world, c.cpid) == "TERMINATED"


async def test_cn_c_02_05_provider_terminates_in_accepted(world: World) -> None:
    c, _ = await consumer_offered(world, "ACNC0205")
    await consumer_accepts(world, c)
    await provider_sends(world, c, "termination", termination_message(c.ppid, c.cpid))
    assert await dsp_state(world, c.cpid) == "TERMINATED"


async def test_cn_c_02_06_provider_terminates_in_verified(world: World) -> None:
    c = await consumer_requested(world, "ACNC0206")
    await consumer_agreed(world, c)
    await consumer_verifies(world, c)
    await provider_sends(world, c, "termination", termination_message(c.ppid, c.cpid))
    assert await dsp_state(world, c.cpid) == "TERMINATED"


async def test_cn_c_03_01_finalized_while_requested_is_refused(world: World) -> None:
    c = await consumer_requested(world, "ACNC0301")
    finalized = event_message(c.ppid, c.cpid, "FINALIZED")
    refused(await world.peer.post(world.cut, c.at("events"), finalized))
    assert await dsp_state(world, c.cpid) == "REQUESTED"


async def test_cn_c_03_02_agreement_before_acceptance_is_refused(world: World) -> None:
    c, _ = await consumer_offered(world, "ACNC0302")
    assert await dsp_state(world, c.cpid) == "OFFERED"
    agreement = agreement_message(
        c.ppid, c.cpid, target=c.target, assigner=world.peer.did, assignee=world.cut.did
    )
    refused(await world.peer.post(world.cut, c.at("agreement"), agreement))
    assert await dsp_state(world, c.cpid) == "OFFERED"


async def test_cn_c_03_03_finalized_while_offered_is_refused(world: World) -> None:
    c, _ = await consumer_offered(world, "ACNC0303")
    finalized = event_message(c.ppid, c.cpid, "FINALIZED")
    refused(await world.peer.post(world.cut, c.at("events"), finalized))
    assert await dsp_state(world, c.cpid) == "OFFERED"


async def test_cn_c_03_04_finalized_while_accepted_is_refused(world: World) -> None:
    c, _ = await consumer_offered(world, "ACNC0304")
    await consumer_accepts(world, c)
    finalized = event_message(c.ppid, c.cpid, "FINALIZED")
    refused(await world.peer.post(world.cut, c.at("events"), finalized))
    assert await dsp_state(world, c.cpid) == "ACCEPTED"


async def test_cn_c_03_05_second_offer_while_accepted_is_refused(world: World) -> None:
    c, offer = await consumer_offered(world, "ACNC0305")
    await consumer_accepts(world, c)
    # The TCK sends the very same offer again.
    refused(await world.peer.post(world.cut, c.at("offers"), offer))
    assert await dsp_state(world, c.cpid) == "ACCEPTED"


async def test_cn_c_03_06_finalized_before_verification_is_refused(world: World) -> None:
    c, _ = await consumer_offered(world, "ACNC0306")
    await consumer_accepts(world, c)
    await consumer_agreed(world, c)  # held: the operator does not verify
    finalized = event_message(c.ppid, c.cpid, "FINALIZED")
    refused(await world.peer.post(world.cut, c.at("events"), finalized))
    assert await dsp_state(world, c.cpid) == "AGREED"
    await world.peer.quiet()
    assert "ContractAgreementVerificationMessage" not in all_emitted_valid(world, c.ppid)


# --- the operator API around the scenarios -------------------------------------------------------


async def test_a_decision_the_hold_does_not_take_is_409_problem_json(world: World) -> None:
    cn = await requested(world, "ACN-illegal", "approve")
    await held(world, cn.ppid, "approve-request")
    resp = await world.cut.post(f"/negotiations/{cn.ppid}/decision", {"decision": "verify"})
    assert resp.status_code == 409, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert "approve-request allows agree, offer, terminate" in resp.text
    resp = await world.cut.post(f"/negotiations/{cn.ppid}/decision", {"decision": "offer"})
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    resp = await world.cut.post(f"/negotiations/{cn.ppid}/decision", {"decision": "maybe"})
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    await held(world, cn.ppid, "approve-request")
    await decide(world, cn.ppid, "agree")
    await agreed(world, cn)
    resp = await world.cut.post(f"/negotiations/{cn.ppid}/decision", {"decision": "agree"})
    assert resp.status_code == 409, resp.text


async def test_decision_routes_are_in_the_openapi_document(world: World) -> None:
    resp = await world.cut.http.get("/openapi.json")
    assert resp.status_code == 200
    doc = resp.json()
    route = doc["paths"]["/management/v1/negotiations/{negotiation_id}/decision"]["post"]
    schema_ref = route["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    decision = doc["components"]["schemas"][schema_ref.rsplit("/", 1)[-1]]["properties"]["decision"]
    assert set(decision["enum"]) >= {"agree", "offer", "terminate", "verify", "finalize"}
    listing = doc["paths"]["/management/v1/negotiations"]["get"]
    assert "awaiting" in [p["name"] for p in listing["parameters"]]


GOLD_POLICY: dict[str, Any] = {
    "@id": "gold-members",
    "@type": "Set",
    "permission": [
        {
            "action": "use",
            "constraint": [{"leftOperand": "claim:tier", "operator": "eq", "rightOperand": "gold"}],
        }
    ],
}


async def assert_awaiting_attribute(world: World, role: str, pid: str, expected: str) -> None:
    """The workflow's `DspAwaitingOperator` search attribute (the Temporal UI's queue) becomes
    `expected` (it is written when the workflow task that changed it completes)."""
    client = await connect(world.cut.settings)
    handle = client.get_workflow_handle(negotiation_workflow_id(Role(role), pid))
    value = None
    for _ in range(100):
        value = (await handle.describe()).typed_search_attributes.get(AWAITING)
        if value == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"DspAwaitingOperator of {pid} is {value!r}, not {expected!r}")


async def test_rules_mode_holds_what_the_policy_refuses_and_the_person_agrees(
    world: World,
) -> None:
    """`providerDecision: rules`: the consumer lacks the gold tier, so its request is held for a
    person (with the policy's reasons) instead of terminated; the person agrees anyway."""
    resp = await world.cut.post("/policies", {"id": GOLD_POLICY["@id"], "policy": GOLD_POLICY})
    assert resp.status_code == 201, resp.text
    name = "rules-gold"
    for path, item in (
        (
            "/assets",
            {
                "id": name,
                "properties": {"name": name},
                "dataAddress": {"type": "http", "baseUrl": "http://127.0.0.1:9/data"},
                "distributions": ["HttpData-PULL"],
            },
        ),
        (
            "/offers",
            {
                "id": f"offer-{name}",
                "assetSelector": [name],
                "accessPolicyId": OPEN_POLICY["@id"],
                "contractPolicyId": GOLD_POLICY["@id"],
                "providerDecision": "rules",
            },
        ),
    ):
        assert (await world.cut.post(path, item)).status_code == 201
    resp = await world.peer.get(world.cut, f"{DSP}/catalog/datasets/{name}")
    policies = resp.json()["hasPolicy"]
    offer = {**(policies[0] if isinstance(policies, list) else policies), "target": name}
    cpid = new_pid()
    message = request_message(offer, cpid, callback_address=world.peer.callback)
    body = ok(await world.peer.post(world.cut, f"{DSP}/negotiations/request", message))
    ppid = body["providerPid"]
    view = await held(world, ppid, "approve-request")
    assert "tier" in " ".join(view["awaiting"]["why"]), view
    await assert_awaiting_attribute(world, "provider", ppid, "approve-request")
    await decide(world, ppid, "agree", reason="gold by contract")
    await assert_awaiting_attribute(world, "provider", ppid, "")
    await agreed(world, Cn(ppid, cpid, offer))


async def test_rules_mode_holds_a_changed_policy_instead_of_refusing_it(world: World) -> None:
    offer = await dataset(world, "rules-changed", "rules")
    changed = {**offer, **COUNTER_POLICY}
    cpid = new_pid()
    message = request_message(changed, cpid, callback_address=world.peer.callback)
    body = ok(await world.peer.post(world.cut, f"{DSP}/negotiations/request", message))
    view = await held(world, body["providerPid"], "approve-request")
    assert "differ from the offer" in " ".join(view["awaiting"]["why"]), view
    decided = await decide(world, body["providerPid"], "agree")
    # The negotiation's own deadline is re-armed by the decision (decision 0012).
    assert datetime.fromisoformat(decided["deadlineAt"]) > datetime.fromisoformat(
        view["deadlineAt"]
    ), (view, decided)
    cn = Cn(body["providerPid"], cpid, changed)
    agreement = await agreed(world, cn)
    # What the person agreed to is what the consumer asked for.
    assert agreement.body["agreement"]["permission"] == COUNTER_POLICY["permission"]
