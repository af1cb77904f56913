"""Deterministic regressions for the 5xx that tests/fuzz/test_schemathesis.py found.

1. A NUL character (U+0000) in a query parameter or path segment reached Postgres, which cannot
   store it in text/jsonb: `CharacterNotInRepertoireError` -> 500. Now 400 on every surface.
2. `GET /management/v1/agreements?offset=<beyond int64>` failed in the driver -> 500. Now 400.
3. `POST /management/v1/catalog/request` with control characters in `counterPartyAddress` raised
   `httpx.InvalidURL` before the outbound guard -> 500. Now 400 (refused like the guard would).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from connector.core.dsp import DspVersion, validate_against_schema
from connector.settings import load_settings
from tests.http.catalog_fixtures import migrated

pytestmark = pytest.mark.integration

KEY = "fuzz-regression-management-key-0123456789abcdef"
MGMT = {"X-Api-Key": KEY}
DSP = {"Authorization": "Bearer dev:urn:fuzz:caller"}


@pytest.fixture
async def client(pg_url: str, redis_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    await migrated(pg_url)
    settings = load_settings(
        env={},
        database={"url": pg_url},
        redis={"url": redis_url},
        temporal={"address": "127.0.0.1:1"},
        management={"api_keys": [KEY]},
        identity={
            "profile": "dev",
            "allow_insecure": True,
            "participant_id": f"urn:t:{uuid.uuid4()}",
        },
        data_dir=tmp_path,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


def assert_problem_400(resp: httpx.Response) -> None:
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("kind", "query"),
    [
        ("negotiations", "state=a%00"),
        ("negotiations", "counterPartyId=%00"),
        ("negotiations", "assetId=x%00y"),
        ("transfers", "state=a%00"),
        ("transfers", "counterPartyId=%00"),
    ],
)
async def test_nul_in_list_filters_is_400(client: httpx.AsyncClient, kind: str, query: str) -> None:
    assert_problem_400(await client.get(f"/management/v1/{kind}?{query}", headers=MGMT))


async def test_nul_in_a_dsp_pid_is_400_with_a_dsp_error(client: httpx.AsyncClient) -> None:
    resp = await client.get("/dsp/2025-1/negotiations/urn:uuid:a%00b", headers=DSP)
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["@type"] == "ContractNegotiationError"
    assert validate_against_schema(body, body["@type"], DspVersion.V2025_1) == []


async def test_agreement_offset_beyond_int64_is_400(client: httpx.AsyncClient) -> None:
    resp = await client.get("/management/v1/agreements?offset=9223372036854775808", headers=MGMT)
    assert_problem_400(resp)
    ok = await client.get("/management/v1/agreements?offset=9223372036854775807", headers=MGMT)
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("address", ["\x00", "http://a\x17b/dsp", "$\x17\xf2\x07"])
async def test_control_characters_in_counterparty_address_are_400(
    client: httpx.AsyncClient, address: str
) -> None:
    body = {"counterPartyAddress": address, "counterPartyId": "did:web:x"}
    resp = await client.post("/management/v1/catalog/request", json=body, headers=MGMT)
    assert_problem_400(resp)
