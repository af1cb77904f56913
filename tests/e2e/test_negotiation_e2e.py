"""Two connectors on loopback negotiate to FINALIZED in secure mode; every DSP body validates."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from connector.core.dsp import DspVersion, validate_against_schema
from connector.runtime.metrics import NEGOTIATION_DURATION_SECONDS, NEGOTIATIONS_TOTAL
from tests.twoconn import Connector, catalog_offer, connector_pair, publish_offer

pytestmark = pytest.mark.e2e


def _schema_problems(exchanges: list[Any]) -> list[Any]:
    problems: list[Any] = []
    for ex in exchanges:
        for body in (ex.request, ex.response):
            if isinstance(body, dict) and "@type" in body:
                errors = validate_against_schema(body, body["@type"], DspVersion.V2025_1)
                if errors:
                    problems.append((ex.method, ex.path, body["@type"], errors))
    return problems


async def test_consumer_negotiates_with_provider_to_finalized(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    async with connector_pair(pg_server_url, redis_url, temporal_address, tmp_path) as (
        provider,
        consumer,
    ):
        await publish_offer(provider, "asset-1")
        offer = await catalog_offer(consumer, provider, "asset-1")

        started = await consumer.post(
            "/negotiations",
            {"counterPartyAddress": provider.dsp, "counterPartyId": provider.did, "offer": offer},
        )
        assert started.status_code == 201, started.text
        negotiation_id = started.json()["id"]

        done = await consumer.wait_state(negotiation_id, {"FINALIZED", "TERMINATED"})
        assert done["state"] == "FINALIZED", done
        provider_pid = done["providerPid"]
        provider_side = await provider.wait_state(provider_pid, {"FINALIZED"})

        assert done["agreementId"] == provider_side["agreementId"]
        agreement = (await consumer.get(f"/agreements/{done['agreementId']}")).json()
        assert agreement["agreement"]["assigner"] == provider.did
        assert agreement["agreement"]["assignee"] == consumer.did
        assert agreement["agreement"]["target"] == "asset-1"
        assert "timestamp" in agreement["agreement"]
        assert (await provider.get(f"/agreements/{done['agreementId']}")).status_code == 200

        kinds = [e["kind"] for e in done["timeline"]]
        assert kinds == ["contract_request", "agreement", "verification", "finalized_event"]

        await provider.recorder.quiet()
        await consumer.recorder.quiet()
        exchanged = provider.recorder.exchanges + consumer.recorder.exchanges
        types = {ex.request.get("@type") for ex in exchanged if isinstance(ex.request, dict)}
        assert {
            "ContractRequestMessage",
            "ContractAgreementMessage",
            "ContractAgreementVerificationMessage",
            "ContractNegotiationEventMessage",
        } <= types
        assert all(ex.status < 400 for ex in exchanged), [
            (ex.path, ex.status, ex.response) for ex in exchanged if ex.status >= 400
        ]
        assert _schema_problems(exchanged) == []

        # Every state both sides went through is counted once, whichever process projected it
        # (a counter moves just after its projection commits: read until it settles).
        path = ["REQUESTED", "AGREED", "VERIFIED", "FINALIZED"]
        for connector, role in ((provider, "provider"), (consumer, "consumer")):

            def counted(connector: Connector = connector, role: str = role) -> list[float]:
                return [
                    connector.metric(NEGOTIATIONS_TOTAL, role=role, state=state) for state in path
                ] + [connector.metric(f"{NEGOTIATION_DURATION_SECONDS}_count", role=role)]

            for _ in range(50):
                if counted() == [1.0] * (len(path) + 1):
                    break
                await asyncio.sleep(0.1)
            assert counted() == [1.0] * (len(path) + 1), (role, counted())


async def test_get_or_negotiate_reuses_the_agreement_and_joins_a_running_negotiation(
    pg_server_url: str, redis_url: str, temporal_address: str, tmp_path: Path
) -> None:
    async with connector_pair(pg_server_url, redis_url, temporal_address, tmp_path) as (
        provider,
        consumer,
    ):
        await publish_offer(provider, "asset-r")
        offer = await catalog_offer(consumer, provider, "asset-r")
        body = {
            "counterPartyAddress": provider.dsp,
            "counterPartyId": provider.did,
            "offer": offer,
            "reuse": True,
        }
        # Two concurrent callers: one negotiation, both get it.
        first, second = await asyncio.gather(
            consumer.post("/negotiations", body), consumer.post("/negotiations", body)
        )
        assert first.status_code in (200, 201), first.text
        assert second.status_code in (200, 201), second.text
        assert first.json()["id"] == second.json()["id"]
        done = await consumer.wait_state(first.json()["id"], {"FINALIZED"})

        # Later: the valid agreement is returned instead of a new negotiation.
        again = await consumer.post("/negotiations", body)
        assert again.status_code == 200, again.text
        assert again.json()["reused"] is True
        assert again.json()["agreementId"] == done["agreementId"]
        listed = (await consumer.get("/negotiations")).json()
        assert listed["total"] == 1
        assert (await provider.get("/negotiations")).json()["total"] == 1
