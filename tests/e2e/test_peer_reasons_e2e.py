"""What a counterparty learns when we end a process (issue 16, finding 5): a code and a fixed
text from `connector.core.peer_reasons`, never our detail; the detail stays in our timeline.

Two connectors in this process; the peer-side message is the one the receiving connector's
`Recorder` kept (the bytes that crossed the wire), validated against the 2025-1 schemas.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from connector.core.dsp import DspVersion, validate_against_schema
from connector.core.peer_reasons import PEER_REASONS
from tests.e2e.transfer_helpers import agreement_for, start_transfer
from tests.twoconn import OPEN_POLICY, Connector, catalog_offer, connector_pair

pytestmark = pytest.mark.e2e

GOLD_ONLY = {
    "@id": "gold-only",
    "@type": "Set",
    "permission": [
        {
            "action": "use",
            "constraint": [{"leftOperand": "claim:tier", "operator": "eq", "rightOperand": "gold"}],
        }
    ],
}


async def received(connector: Connector, message_type: str) -> dict[str, Any]:
    """The one `message_type` the connector was sent (as it arrived), schema-checked."""
    await connector.recorder.quiet()
    bodies = [
        e.request
        for e in connector.recorder.exchanges
        if isinstance(e.request, dict) and e.request.get("@type") == message_type
    ]
    assert len(bodies) == 1, [e.path for e in connector.recorder.exchanges]
    body: dict[str, Any] = bodies[0]
    assert validate_against_schema(body, message_type, DspVersion.V2025_1) == [], body
    return body


def assert_vocabulary_only(body: dict[str, Any], code: str, *details: str) -> None:
    assert body["code"] == code, body
    assert body["reason"] == [PEER_REASONS[code]], body
    text = json.dumps(body)
    for detail in details:
        assert detail not in text, (detail, body)


async def test_a_transfer_whose_source_is_missing_tells_the_consumer_only_the_code(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Any
) -> None:
    async with connector_pair(
        pg_server_url, redis_url, temporal_address, tmp_path, provider_dataplane="inproc"
    ) as (provider, consumer):
        # A file address that passes the rules when stored, but names no file when the flow
        # starts: the data plane refuses it with the file's name (our detail).
        missing = "reports/q3-internal-missing.csv"
        agreement_id = await agreement_for(
            provider, consumer, "gone", data_address={"type": "file", "path": missing}
        )
        transfer_id = await start_transfer(consumer, provider, agreement_id)
        done = await consumer.wait_transfer(transfer_id, {"STARTED", "TERMINATED"})
        assert done["state"] == "TERMINATED", done

        termination = await received(consumer, "TransferTerminationMessage")
        assert_vocabulary_only(termination, "flow_failed", missing, "no file", "q3-internal")
        # The consumer's own view holds what it was told, nothing more.
        told = {"code": "flow_failed", "reason": [PEER_REASONS["flow_failed"]]}
        assert done["stateReason"] == told, done

        ours = await provider.wait_transfer(termination["providerPid"], {"TERMINATED"})
        assert ours["stateReason"]["code"] == "flow_failed", ours
        assert missing in " ".join(ours["stateReason"]["reason"]), ours
        last = ours["timeline"][-1]
        assert (last["kind"], last["direction"]) == ("transfer_termination", "out"), last
        assert missing in json.dumps(last), last


async def test_a_negotiation_denied_by_policy_tells_the_consumer_only_the_code(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Any
) -> None:
    async with connector_pair(pg_server_url, redis_url, temporal_address, tmp_path) as (
        provider,
        consumer,
    ):
        # Visible to everyone (open access policy), agreed only with gold members.
        for path, body in (
            (
                "/assets",
                {
                    "id": "gold",
                    "dataAddress": {"type": "http", "baseUrl": "http://127.0.0.1:9/data"},
                    "distributions": ["HttpData-PULL"],
                },
            ),
            ("/policies", {"id": OPEN_POLICY["@id"], "policy": OPEN_POLICY}),
            ("/policies", {"id": GOLD_ONLY["@id"], "policy": GOLD_ONLY}),
            (
                "/offers",
                {
                    "id": "offer-gold",
                    "assetSelector": ["gold"],
                    "accessPolicyId": OPEN_POLICY["@id"],
                    "contractPolicyId": GOLD_ONLY["@id"],
                },
            ),
        ):
            resp = await provider.post(path, body)
            assert resp.status_code in (201, 409), resp.text
        offer = await catalog_offer(consumer, provider, "gold")
        started = await consumer.post(
            "/negotiations",
            {"counterPartyAddress": provider.dsp, "counterPartyId": provider.did, "offer": offer},
        )
        assert started.status_code == 201, started.text
        theirs = await consumer.wait_state(started.json()["id"], {"FINALIZED", "TERMINATED"})
        assert theirs["state"] == "TERMINATED", theirs

        termination = await received(consumer, "ContractNegotiationTerminationMessage")
        assert_vocabulary_only(termination, "policy_denied", "tier", "gold")
        assert theirs["termination"] == {
            "code": "policy_denied",
            "reason": [PEER_REASONS["policy_denied"]],
        }

        ours = await provider.wait_state(termination["providerPid"], {"TERMINATED"})
        assert ours["termination"]["code"] == "policy_denied", ours
        assert "tier" in " ".join(ours["termination"]["reason"]), ours
        last = ours["timeline"][-1]
        assert (last["kind"], last["direction"]) == ("termination", "out"), last
        assert "tier" in json.dumps(last), last
