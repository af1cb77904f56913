"""Catalog service with claim-carrying callers (the dev profile has no claims), offer-id encoding,
and the consumer-side catalog request through the guarded client (provider app over ASGI)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.app import create_app
from connector.core.dsp import CatalogRequestMessage, validate_against_schema
from connector.core.dsp.version import DspVersion
from connector.core.errors import NotFoundError
from connector.core.identity.claims import VerifiedCaller
from connector.http.outbound import GuardedHttp, OutboundConfig
from connector.services.catalog import (
    CallerFacts,
    generation_key,
    offer_id_for,
    page_key,
    parse_offer_id,
)
from tests.http.catalog_fixtures import (
    HEADERS,
    MGMT,
    Harness,
    asset,
    claim_policy,
    migrated,
    offer,
    open_policy,
    settings_for,
)

GOLD = VerifiedCaller(
    did="did:web:gold.example",
    participant_id="did:web:gold.example",
    claims={"tier": "gold", "jti": "j1", "iat": 1, "exp": 2},
)
SILVER = VerifiedCaller(
    did="did:web:silver.example",
    participant_id="did:web:silver.example",
    claims={"tier": "silver", "jti": "j2", "iat": 1, "exp": 2},
)


@given(st.text(min_size=1), st.text(min_size=1))
def test_offer_ids_round_trip(offer_id: str, asset_id: str) -> None:
    assert parse_offer_id(offer_id_for(offer_id, asset_id)) == (offer_id, asset_id)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "urn:uuid:1",
        "urn:connector:offer:",
        "urn:connector:offer:abc",
        "urn:connector:offer:%%.%%",
    ],
)
def test_foreign_offer_ids_are_not_found(bad: str) -> None:
    with pytest.raises(NotFoundError):
        parse_offer_id(bad)


def test_cache_keys_follow_the_naming_rule() -> None:
    assert generation_key("urn:p") == "connector:urn:p:catalog:generation"
    assert page_key("urn:p", 7, "cls", "pg") == "connector:urn:p:catalog:7:cls:pg"


@pytest.mark.integration
async def test_callers_with_different_claims_see_different_catalogs(harness: Harness) -> None:
    h = harness
    await h.created("/assets", asset("a-gold"))
    await h.created("/assets", asset("a-all"))
    await h.created("/policies", claim_policy("p-gold", "tier", "gold"))
    await h.created("/policies", open_policy("p-open"))
    await h.created("/offers", offer("o-gold", ["a-gold"], "p-gold", "p-open"))
    await h.created("/offers", offer("o-all", ["a-all"], "p-open", "p-open"))
    service = h.service
    message = CatalogRequestMessage()

    def ids(body: bytes) -> list[str]:
        catalog = json.loads(body)
        assert validate_against_schema(catalog, "Catalog", DspVersion.V2025_1) == []
        return [d["@id"] for d in catalog.get("dataset", [])]

    for _ in range(2):  # second round is served from the per-class cache
        gold = await service.catalog_page(GOLD, DspVersion.V2025_1, message)
        silver = await service.catalog_page(SILVER, DspVersion.V2025_1, message)
        assert ids(gold.body) == ["a-all", "a-gold"]
        assert ids(silver.body) == ["a-all"]
    assert (await service.dataset(GOLD, DspVersion.V2025_1, "a-gold"))["@id"] == "a-gold"
    with pytest.raises(NotFoundError):
        await service.dataset(SILVER, DspVersion.V2025_1, "a-gold")

    silver_facts = CallerFacts(SILVER.participant_id, {"tier": "silver"})
    explained = await service.explain("a-gold", silver_facts)
    assert explained["visible"] is False
    assert (
        "tier" in " ".join(explained["offers"][0]["access"]["reasons"])
        or explained["offers"][0]["access"]["trace"]
    )
    gold_facts = CallerFacts(GOLD.participant_id, {"tier": "gold"})
    assert (await service.explain("a-gold", gold_facts))["visible"] is True

    evaluated = await h.post(
        "/policies/p-gold/evaluate", {"participantId": "x", "claims": {"tier": "gold"}}
    )
    assert evaluated.json()["allowed"] is True


async def _resolver(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]  # a public-looking address: the guard vets it, ASGI serves it


@pytest.mark.integration
async def test_catalog_request_fetches_and_merges_a_counterpartys_pages(
    pg_url: str, pg_server_url: str, redis_url: str, tmp_path: Path
) -> None:
    from tests import services

    await migrated(pg_url)
    provider_db = await services.create_database(pg_server_url)
    await migrated(provider_db)
    provider_id = f"urn:test:provider:{uuid.uuid4().hex[:6]}"
    consumer_id = f"urn:test:consumer:{uuid.uuid4().hex[:6]}"
    provider = create_app(settings_for(provider_db, redis_url, tmp_path / "p", provider_id))
    consumer = create_app(settings_for(pg_url, redis_url, tmp_path / "c", consumer_id))
    try:
        async with (
            provider.router.lifespan_context(provider),
            consumer.router.lifespan_context(consumer),
        ):
            to_provider = httpx.ASGITransport(provider)
            async with httpx.AsyncClient(transport=to_provider, base_url="http://t") as pc:
                p = Harness(provider, pc, provider_id)
                await p.created("/policies", open_policy("p-open"))
                for i in range(5):
                    await p.created("/assets", asset(f"ds-{i}"))
                await p.created(
                    "/offers", offer("o", [f"ds-{i}" for i in range(5)], "p-open", "p-open")
                )
            await consumer.state.identity.http.aclose()
            consumer.state.identity.http = GuardedHttp(
                OutboundConfig(allow_http=True), transport=to_provider, resolver=_resolver
            )
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(consumer), base_url="http://t"
            ) as cc:
                body: dict[str, Any] = {
                    "counterPartyAddress": "http://provider.example/dsp/2025-1/",
                    "counterPartyId": provider_id,
                }
                response = await cc.post(f"{MGMT}/catalog/request", json=body, headers=HEADERS)
                assert response.status_code == 200, response.text
                catalog = response.json()
                assert validate_against_schema(catalog, "Catalog", DspVersion.V2025_1) == []
                assert catalog["participantId"] == provider_id
                assert len(catalog["dataset"]) == 5

                limited = await cc.post(
                    f"{MGMT}/catalog/request", json={**body, "limit": 2}, headers=HEADERS
                )
                assert [d["@id"] for d in limited.json()["dataset"]] == ["ds-0", "ds-1"]

                old = await cc.post(
                    f"{MGMT}/catalog/request",
                    json={**body, "counterPartyAddress": "http://provider.example/dsp/0.8"},
                    headers=HEADERS,
                )
                assert old.status_code == 200, old.text
                assert len(old.json()["dataset"]) == 5

                missing = await cc.post(
                    f"{MGMT}/catalog/request",
                    json={**body, "counterPartyAddress": "http://provider.example/nowhere"},
                    headers=HEADERS,
                )
                assert missing.status_code == 404
                assert missing.headers["content-type"].startswith("application/problem+json")

                refused = await cc.post(
                    f"{MGMT}/catalog/request",
                    json={**body, "counterPartyAddress": "file:///etc/passwd"},
                    headers=HEADERS,
                )
                assert refused.status_code == 400
    finally:
        await services.drop_database(pg_server_url, provider_db)


def test_only_caller_bound_policies_may_be_memoised() -> None:
    from pydantic import JsonValue

    from connector.services.catalog import caller_only

    by_claim = claim_policy("p", "tier", "gold")["policy"]
    by_date: list[JsonValue] = [
        {"leftOperand": "dateTime", "operator": "lt", "rightOperand": "2030-01-01"}
    ]
    by_time: JsonValue = {"permission": [{"action": "use", "constraint": by_date}]}
    nested: JsonValue = {"permission": [{"action": "use", "constraint": [{"or": by_date}]}]}
    by_credential: JsonValue = {
        "permission": [
            {
                "action": "use",
                "constraint": [
                    {
                        "leftOperand": "MembershipCredential",
                        "operator": "eq",
                        "rightOperand": "active",
                    },
                    {"leftOperand": "QualityCredential.level", "operator": "eq", "rightOperand": 2},
                ],
            }
        ]
    }
    assert caller_only(by_claim)
    assert caller_only(by_credential)
    assert caller_only(open_policy("p")["policy"])
    assert not caller_only(by_time)
    assert not caller_only(nested)
