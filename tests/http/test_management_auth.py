"""X-Api-Key on EVERY management route (walked from the OpenAPI document), key rotation and
pre-hashed keys at the HTTP level. The timing property (no early exit, no prefix dependence) is
tested statistically in tests/unit/identity/test_identity_apikeys.py."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from connector.identity.apikeys import generate_api_key, hash_api_key
from connector.settings import load_settings
from tests.http.catalog_fixtures import MGMT, migrated

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
OLD_KEY = generate_api_key()
NEW_KEY = generate_api_key()  # configured only as its sha256: digest


@pytest.fixture
async def app(pg_url: str, redis_url: str, tmp_path: Path) -> AsyncIterator[FastAPI]:
    await migrated(pg_url)
    settings = load_settings(
        env={},
        database={"url": pg_url},
        redis={"url": redis_url},
        temporal={"address": "127.0.0.1:1"},
        management={"api_keys": [OLD_KEY, hash_api_key(NEW_KEY)]},
        identity={
            "profile": "dev",
            "allow_insecure": True,
            "participant_id": f"urn:t:{uuid.uuid4()}",
        },
        data_dir=tmp_path,
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def management_operations(app: FastAPI) -> list[tuple[str, str]]:
    spec: dict[str, Any] = app.openapi()
    operations = []
    for path, item in spec["paths"].items():
        if path.startswith(MGMT):
            for method in item:
                operations.append((method.upper(), re.sub(r"\{[^}]+\}", "x", path)))
    return operations


def assert_401_problem(response: httpx.Response) -> None:
    assert response.status_code == 401, (response.request.url, response.text)
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == 401
    assert body["type"] == "urn:connector:error:unauthorized"
    # RFC 9110 §11.6.1; no OIDC configured here, so no bearer challenge.
    assert response.headers["www-authenticate"] == 'ApiKey realm="management", header="X-Api-Key"'
    assert OLD_KEY not in response.text
    assert NEW_KEY not in response.text


async def test_every_management_route_refuses_missing_and_wrong_keys(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    operations = management_operations(app)
    assert len(operations) >= 15, operations  # assets, policies, offers, catalog, negotiations...
    wrong_keys = [
        "",
        "no",
        OLD_KEY[:-1] + ("A" if OLD_KEY[-1] != "A" else "B"),  # all but the last character
        OLD_KEY + "x",
        OLD_KEY.upper() if OLD_KEY.upper() != OLD_KEY else OLD_KEY.lower(),
        hash_api_key(NEW_KEY),  # the stored digest is not itself a key
    ]
    for method, path in operations:
        assert_401_problem(await client.request(method, path, json={}))
        for wrong in wrong_keys:
            resp = await client.request(method, path, json={}, headers={"X-Api-Key": wrong})
            assert_401_problem(resp)


async def test_every_configured_key_is_accepted_for_rotation(client: httpx.AsyncClient) -> None:
    for key in (OLD_KEY, NEW_KEY):
        resp = await client.get(f"{MGMT}/assets", headers={"X-Api-Key": key})
        assert resp.status_code == 200, resp.text
