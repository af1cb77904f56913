"""DSP catalog, provider side (`/dsp/2025-1/catalog/...`, `/dsp/0.8/...`) on real PG + Redis.

Every emitted body is checked against the official schema (0.8 catalogs: the vendored 0.8
catalog schema has an unresolvable `$ref`, so its datasets are checked one by one)."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from api.app import create_app
from connector.core.dsp import DSP_CONTEXT_0_8, DSP_CONTEXT_2025_1, validate_against_schema
from connector.core.dsp.version import DspVersion
from connector.services.catalog import parse_offer_id, resolve_offer_id
from tests.http.catalog_fixtures import (
    Harness,
    asset,
    dev_token,
    migrated,
    offer,
    open_policy,
    participant_policy,
    settings_for,
)

pytestmark = pytest.mark.integration

V25 = DspVersion.V2025_1
V08 = DspVersion.V0_8
REQUEST_25 = {"@context": [DSP_CONTEXT_2025_1], "@type": "CatalogRequestMessage"}
REQUEST_08 = {"@context": DSP_CONTEXT_0_8, "@type": "dspace:CatalogRequestMessage"}
PARTNER_X = "urn:partner:x"
PARTNER_Y = "urn:partner:y"


def catalog_of(response: httpx.Response, version: DspVersion = V25) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    if version is V25:
        assert validate_against_schema(body, "Catalog", version) == []
    else:
        assert body["@type"] == "dcat:Catalog"
        for dataset in body.get("dcat:dataset", []):
            assert validate_against_schema(dataset, "Dataset", version) == []
    return body


def dataset_ids(body: dict[str, Any]) -> list[str]:
    return [d["@id"] for d in body.get("dataset", body.get("dcat:dataset", []))]


def assert_catalog_error(
    response: httpx.Response, status: int, version: DspVersion = V25
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert validate_against_schema(body, "CatalogError", version) == []
    assert body["@type"] == ("CatalogError" if version is V25 else "dspace:CatalogError")
    if status == 401:
        assert response.headers["www-authenticate"] == 'Bearer realm="dsp"'  # RFC 9110 §11.6.1
    return body


async def request(
    h: Harness, who: str, version: DspVersion = V25, body: Any = None, **params: Any
) -> httpx.Response:
    message = body if body is not None else (REQUEST_25 if version is V25 else REQUEST_08)
    return await h.client.post(
        f"/dsp/{version.value}/catalog/request",
        json=message,
        params=params,
        headers=dev_token(who),
    )


async def seed_two_partners(h: Harness) -> None:
    """a-public for everyone, a-x only for partner X (by participant id)."""
    await h.created("/assets", asset("a-public"))
    await h.created("/assets", asset("a-x"))
    await h.created("/policies", open_policy("p-open"))
    await h.created("/policies", participant_policy("p-only-x", PARTNER_X))
    await h.created("/offers", offer("o-public", ["a-public"], "p-open", "p-open"))
    await h.created("/offers", offer("o-x", ["a-x"], "p-only-x", "p-open"))


async def test_two_callers_see_different_catalogs_from_the_same_offers(harness: Harness) -> None:
    h = harness
    await seed_two_partners(h)
    x = catalog_of(await request(h, PARTNER_X))
    y = catalog_of(await request(h, PARTNER_Y))
    assert dataset_ids(x) == ["a-public", "a-x"]
    assert dataset_ids(y) == ["a-public"]
    assert x["participantId"] == h.participant_id
    (service,) = x["service"]
    assert service["endpointURL"].endswith("/dsp/2025-1")
    public = x["dataset"][0]
    assert [d["format"] for d in public["distribution"]] == ["HttpData-PULL", "HttpData-PUSH"]
    assert all(d["accessService"] == service["@id"] for d in public["distribution"])
    assert public["dct:title"] == "a-public"
    (offer_body,) = public["hasPolicy"]
    assert offer_body["@type"] == "Offer"
    assert "target" not in offer_body
    assert parse_offer_id(offer_body["@id"]) == ("o-public", "a-public")


async def test_a_hidden_dataset_is_404_for_that_caller_only(harness: Harness) -> None:
    h = harness
    await seed_two_partners(h)
    seen = await h.client.get("/dsp/2025-1/catalog/datasets/a-x", headers=dev_token(PARTNER_X))
    assert seen.status_code == 200, seen.text
    assert validate_against_schema(seen.json(), "Dataset", V25) == []
    assert seen.json()["@id"] == "a-x"
    hidden = await h.client.get("/dsp/2025-1/catalog/datasets/a-x", headers=dev_token(PARTNER_Y))
    assert_catalog_error(hidden, 404)
    unknown = await h.client.get("/dsp/2025-1/catalog/datasets/zz", headers=dev_token(PARTNER_X))
    assert_catalog_error(unknown, 404)
    old = await h.client.get("/dsp/0.8/catalog/datasets/a-x", headers=dev_token(PARTNER_Y))
    assert_catalog_error(old, 404, V08)


async def test_offer_ids_resolve_back_to_definition_asset_and_policies(harness: Harness) -> None:
    h = harness
    await seed_two_partners(h)
    body = catalog_of(await request(h, PARTNER_X))
    dsp_offer_id = body["dataset"][1]["hasPolicy"][0]["@id"]
    resolved = await resolve_offer_id(h.service.read_model, dsp_offer_id)
    assert (resolved.offer_id, resolved.asset_id) == ("o-x", "a-x")
    assert resolved.access_policy_id == "p-only-x"
    assert resolved.contract_policy_id == "p-open"
    assert resolved.asset.data_address["type"] == "http"


async def test_missing_or_invalid_token_is_401_catalog_error(harness: Harness) -> None:
    h = harness
    for version in (V25, V08):
        url = f"/dsp/{version.value}/catalog/request"
        assert_catalog_error(await h.client.post(url, json=REQUEST_25), 401, version)
        bad = await h.client.post(url, json=REQUEST_25, headers={"Authorization": "Bearer x.y"})
        assert_catalog_error(bad, 401, version)
        get = await h.client.get(f"/dsp/{version.value}/catalog/datasets/a")
        assert_catalog_error(get, 401, version)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        pytest.param(b"{oops", 400, id="malformed-json"),
        pytest.param(
            b'{"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"], "@type": "Catalog"}',
            400,
            id="wrong-type",
        ),
        pytest.param(b'{"@type": "CatalogRequestMessage"}', 400, id="missing-context"),
        pytest.param(
            b'{"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"]}',
            400,
            id="missing-type",
        ),
        pytest.param(
            b'{"@context": ["https://evil.example/context.jsonld"],'
            b' "@type": "CatalogRequestMessage"}',
            400,
            id="remote-context",
        ),
        pytest.param(b"[" * 1000 + b"]" * 1000, 400, id="1000-deep"),
        pytest.param(b'{"a": ' * 1000 + b"1" + b"}" * 1000, 400, id="1000-deep-objects"),
        pytest.param(b'{"filter": "x"' + b" " * (10 * 1024 * 1024) + b"}", 413, id="10MB"),
        pytest.param(
            b'{"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],'
            b' "@type": "CatalogRequestMessage", "filter": [{"operandLeft": "owner",'
            b' "operator": "=", "operandRight": "x"}]}',
            400,
            id="unsupported-filter",
        ),
        pytest.param(
            b'{"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],'
            b' "@type": "CatalogRequestMessage", "filter": [{"sql": "1=1"}]}',
            400,
            id="unsupported-filter-shape",
        ),
    ],
)
async def test_bad_catalog_requests_are_4xx_catalog_errors(
    harness: Harness, raw: bytes, status: int
) -> None:
    h = harness
    await seed_two_partners(h)
    for version in (V25, V08):
        response = await h.client.post(
            f"/dsp/{version.value}/catalog/request",
            content=raw,
            headers={**dev_token(PARTNER_X), "Content-Type": "application/json"},
        )
        assert_catalog_error(response, status, version)
    assert (await h.get("/assets")).json()["total"] == 2


async def test_supported_filter_narrows_the_catalog(harness: Harness) -> None:
    h = harness
    await seed_two_partners(h)
    crit = {"operandLeft": "properties.name", "operator": "like", "operandRight": "a-p%"}
    body = catalog_of(await request(h, PARTNER_X, body={**REQUEST_25, "filter": [crit]}))
    assert dataset_ids(body) == ["a-public"]
    by_id = {"operandLeft": "id", "operator": "in", "operandRight": ["a-x"]}
    assert dataset_ids(
        catalog_of(await request(h, PARTNER_X, body={**REQUEST_25, "filter": [by_id]}))
    ) == ["a-x"]
    private = {"operandLeft": "properties.secret", "operator": "=", "operandRight": "1"}
    assert_catalog_error(await request(h, PARTNER_X, body={**REQUEST_25, "filter": [private]}), 400)


async def test_0_8_path_returns_0_8_shaped_bodies(harness: Harness) -> None:
    h = harness
    await seed_two_partners(h)
    body = catalog_of(await request(h, PARTNER_X, V08), V08)
    assert body["@context"] == DSP_CONTEXT_0_8
    assert body["dspace:participantId"] == h.participant_id
    first = body["dcat:dataset"][0]
    assert first["@type"] == "dcat:Dataset"
    assert first["odrl:hasPolicy"][0]["@type"] == "odrl:Offer"
    assert first["odrl:hasPolicy"][0]["dspace:providerId"] == h.participant_id
    assert first["dcat:distribution"][0]["dct:format"] == "HttpData-PULL"
    assert body["dcat:service"][0]["dcat:endpointURL"].endswith("/dsp/0.8")
    dataset = await h.client.get("/dsp/0.8/catalog/datasets/a-x", headers=dev_token(PARTNER_X))
    assert dataset.status_code == 200
    assert dataset.json()["@type"] == "dcat:Dataset"
    assert validate_against_schema(dataset.json(), "Dataset", V08) == []


async def test_pages_link_next_and_previous(harness: Harness) -> None:
    h = harness
    await h.created("/policies", open_policy("p-open"))
    ids = [f"ds-{i:02d}" for i in range(7)]
    for asset_id in ids:
        await h.created("/assets", asset(asset_id))
    await h.created("/offers", offer("o", ids, "p-open", "p-open"))

    seen: list[str] = []
    response = await request(h, PARTNER_X, limit=3)
    pages = [response]
    while "next" in response.links:
        url = response.links["next"]["url"]
        assert "limit=3" in url
        assert "continuationToken=" in url
        response = await h.client.post(url, json=REQUEST_25, headers=dev_token(PARTNER_X))
        pages.append(response)
    for page in pages:
        seen += dataset_ids(catalog_of(page))
    assert seen == ids
    assert len(pages) == 3
    assert "previous" not in pages[0].links
    back = await h.client.post(
        pages[-1].links["previous"]["url"], json=REQUEST_25, headers=dev_token(PARTNER_X)
    )
    assert dataset_ids(catalog_of(back)) == ids[3:6]
    assert 'rel="next"' in back.headers["link"]
    assert 'rel="previous"' in back.headers["link"]
    bad = await request(h, PARTNER_X, continuationToken="garbage")
    assert_catalog_error(bad, 400)
    assert_catalog_error(await request(h, PARTNER_X, limit=0), 400)


async def test_every_management_write_invalidates_the_cached_catalog(harness: Harness) -> None:
    h = harness
    await seed_two_partners(h)
    assert dataset_ids(catalog_of(await request(h, PARTNER_Y))) == ["a-public"]

    # Served from the cache: a change behind the service's back is not seen ...
    conn = await asyncpg.connect(h.app.state.settings.database.url.get_secret_value())
    try:
        await conn.execute("DELETE FROM offer_assets WHERE offer_id = 'o-public'")
        assert dataset_ids(catalog_of(await request(h, PARTNER_Y))) == ["a-public"]
        await conn.execute("INSERT INTO offer_assets VALUES ('o-public', 'a-public', 'p-open')")
    finally:
        await conn.close()

    # ... but every write through the management API is.
    await h.created("/assets", asset("a-new"))
    await h.created("/offers", offer("o-new", ["a-new"], "p-open", "p-open"))
    assert dataset_ids(catalog_of(await request(h, PARTNER_Y))) == ["a-new", "a-public"]
    await h.put("/offers/o-x", offer("o-x", ["a-x"], "p-open", "p-open"))
    assert dataset_ids(catalog_of(await request(h, PARTNER_Y))) == ["a-new", "a-public", "a-x"]
    await h.put("/policies/p-open", participant_policy("p-open", PARTNER_X))
    assert dataset_ids(catalog_of(await request(h, PARTNER_Y))) == []
    await h.put("/policies/p-open", open_policy("p-open"))
    crit = [{"operandLeft": "properties.tier", "operator": "=", "operandRight": "gold"}]
    await h.created("/offers", offer("o-gold", crit, "p-open", "p-open"))
    await h.created("/assets", asset("a-gold", tier="gold"))  # matched by criteria on create
    assert "a-gold" in dataset_ids(catalog_of(await request(h, PARTNER_Y)))
    await h.put("/assets/a-gold", asset("a-gold", tier="silver"))
    assert "a-gold" not in dataset_ids(catalog_of(await request(h, PARTNER_Y)))
    await h.put("/assets/a-gold", asset("a-gold", tier="gold"))
    assert "a-gold" in dataset_ids(catalog_of(await request(h, PARTNER_Y)))
    assert (await h.delete("/assets/a-gold")).status_code == 204
    assert "a-gold" not in dataset_ids(catalog_of(await request(h, PARTNER_Y)))
    assert (await h.delete("/offers/o-new")).status_code == 204
    assert "a-new" not in dataset_ids(catalog_of(await request(h, PARTNER_Y)))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_redis_down_degrades_to_the_database(pg_url: str, tmp_path: Path) -> None:
    await migrated(pg_url)
    dead_redis = f"redis://127.0.0.1:{_closed_port()}/0"
    app = create_app(settings_for(pg_url, dead_redis, tmp_path, f"urn:test:{uuid.uuid4().hex}"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            h = Harness(app, client, "p")
            await seed_two_partners(h)
            assert dataset_ids(catalog_of(await request(h, PARTNER_Y))) == ["a-public"]
            await h.created("/assets", asset("a-more"))
            await h.created("/offers", offer("o-more", ["a-more"], "p-open", "p-open"))
            assert dataset_ids(catalog_of(await request(h, PARTNER_Y))) == ["a-more", "a-public"]
