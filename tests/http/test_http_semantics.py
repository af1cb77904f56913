"""HTTP semantics of the control plane (issue 16, finding 7), on the real app with a real
Postgres and Redis: a wrong method is 405 with `Allow` (not 400), a body that is not JSON is 415
on the DSP and management routes (`application/json` and `application/ld+json` with any
parameters are read), the OpenAPI document declares how to authenticate, and the docs pages load
nothing from outside the connector."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.listeners import served
from connector.core.dsp import DspVersion, validate_against_schema
from connector.settings import load_settings
from tests.http.catalog_fixtures import MGMT, migrated

pytestmark = pytest.mark.integration

KEY = "semantics-management-key-0123456789abcdef"
CALLER = "urn:semantics:caller"
MANAGEMENT = {"X-Api-Key": KEY}
DSP = {"Authorization": f"Bearer dev:{CALLER}"}
PID = "urn:uuid:5b7e2f0a-3c1d-4e5f-8a9b-0c1d2e3f4a5b"
ASSET = {
    "id": "a-1",
    "dataAddress": {"type": "http", "baseUrl": "https://backend.example/data"},
    "distributions": ["HttpData-PULL"],
}
CATALOG_REQUEST = (
    b'{"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],'
    b' "@type": "CatalogRequestMessage"}'
)


@pytest.fixture
async def make_client(
    pg_url: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    await migrated(pg_url)
    stacks: list[tuple[Any, httpx.AsyncClient]] = []

    async def build(**extra: Any) -> httpx.AsyncClient:
        settings = load_settings(
            env={},
            database={"url": pg_url},
            redis={"url": redis_url},
            temporal={"address": "127.0.0.1:1"},
            management={"api_keys": [KEY], **extra.pop("management", {})},
            identity={
                "profile": "dev",
                "allow_insecure": True,
                "participant_id": f"urn:t:{uuid.uuid4()}",
            },
            data_dir=tmp_path,
            **extra,
        )
        app = create_app(settings)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver")
        stacks.append((lifespan, client))
        return client

    yield build
    for lifespan, client in reversed(stacks):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def client(make_client: Callable[..., Any]) -> httpx.AsyncClient:
    built: httpx.AsyncClient = await make_client()
    return built


# --- 405 with Allow ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow", "error_type"),
    [
        ("DELETE", "/dsp/2025-1/catalog/request", {"POST"}, "CatalogError"),
        (
            "GET",
            f"/dsp/2025-1/negotiations/{PID}/termination",
            {"POST"},
            "ContractNegotiationError",
        ),
        ("PUT", f"/dsp/2025-1/transfers/{PID}", {"GET"}, "TransferError"),
        # `/negotiations/request` is also `/negotiations/{pid}` (GET): both are listed.
        ("PATCH", "/dsp/2025-1/negotiations/request", {"GET", "POST"}, "ContractNegotiationError"),
    ],
)
async def test_a_wrong_method_on_a_dsp_route_is_405_with_allow(
    client: httpx.AsyncClient, method: str, path: str, allow: set[str], error_type: str
) -> None:
    resp = await client.request(method, path, headers=DSP)
    assert resp.status_code == 405, resp.text
    assert set(resp.headers["allow"].split(", ")) == allow
    body = resp.json()
    assert (body["@type"], body["code"]) == (error_type, "405")
    problems = validate_against_schema(body, error_type, DspVersion.V2025_1)
    if path.endswith("/negotiations/request"):  # no pid named: none invented (decision 0002)
        assert not {"consumerPid", "providerPid"} & body.keys(), body
        assert all("required property" in p for p in problems), problems
    else:
        assert problems == [], body
    if PID in path:  # the pid the path names is echoed
        assert (body["providerPid"], body["consumerPid"]) == (PID, PID)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", f"{MGMT}/assets", {"GET", "POST"}),
        ("PATCH", f"{MGMT}/assets/a-1", {"DELETE", "GET", "PUT"}),
        ("PUT", f"{MGMT}/negotiations", {"GET", "POST"}),
    ],
)
async def test_a_wrong_method_on_a_management_route_is_405_problem_json_with_allow(
    client: httpx.AsyncClient, method: str, path: str, allow: set[str]
) -> None:
    resp = await client.request(method, path, headers=MANAGEMENT)
    assert resp.status_code == 405, resp.text
    assert set(resp.headers["allow"].split(", ")) == allow
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    assert (problem["status"], problem["type"]) == (405, "urn:connector:error:method_not_allowed")
    assert method in problem["detail"]


# --- 415 for bodies that are not JSON ---------------------------------------------------------


NOT_JSON = {
    "text/plain": "text/plain",
    "form": "application/x-www-form-urlencoded",
    "multipart": "multipart/form-data; boundary=x",
    "xml": "application/xml",
    "json-lookalike": "application/jsonx",
    "none": None,
}


def _headers(base: dict[str, str], content_type: str | None) -> dict[str, str]:
    return {**base, "Content-Type": content_type} if content_type else dict(base)


@pytest.mark.parametrize("content_type", NOT_JSON.values(), ids=NOT_JSON.keys())
async def test_a_body_that_is_not_json_is_415_on_management_routes_and_nothing_is_stored(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    raw = b'{"id": "a-1", "dataAddress": {"type": "http", "baseUrl": "https://b.example/d"}}'
    resp = await client.post(
        f"{MGMT}/assets", content=raw, headers=_headers(MANAGEMENT, content_type)
    )
    assert resp.status_code == 415, resp.text
    problem = resp.json()
    assert (problem["status"], problem["type"]) == (
        415,
        "urn:connector:error:unsupported_media_type",
    )
    assert "application/json" in problem["detail"]
    listed = await client.get(f"{MGMT}/assets", headers=MANAGEMENT)
    assert listed.json()["total"] == 0


@pytest.mark.parametrize("content_type", NOT_JSON.values(), ids=NOT_JSON.keys())
async def test_a_body_that_is_not_json_is_415_on_dsp_routes_in_the_dsp_shape(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    resp = await client.post(
        "/dsp/2025-1/catalog/request", content=CATALOG_REQUEST, headers=_headers(DSP, content_type)
    )
    assert resp.status_code == 415, resp.text
    body = resp.json()
    assert (body["@type"], body["code"]) == ("CatalogError", "415")
    assert validate_against_schema(body, "CatalogError", DspVersion.V2025_1) == []
    # A process path: the pid it names is echoed, as in every error body.
    resp = await client.post(
        f"/dsp/2025-1/transfers/{PID}/termination",
        content=b"{}",
        headers=_headers(DSP, content_type),
    )
    assert resp.status_code == 415, resp.text
    assert (resp.json()["providerPid"], resp.json()["consumerPid"]) == (PID, PID)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        "application/ld+json",
        'application/ld+json; profile="https://w3id.org/dspace/2025/1/context.jsonld"',
    ],
)
async def test_json_media_types_with_parameters_are_read(
    client: httpx.AsyncClient, content_type: str
) -> None:
    resp = await client.post(
        "/dsp/2025-1/catalog/request",
        content=CATALOG_REQUEST,
        headers={**DSP, "Content-Type": content_type},
    )
    assert resp.status_code == 200, resp.text
    raw = httpx.Request("POST", "/", json=ASSET).content
    resp = await client.post(
        f"{MGMT}/assets", content=raw, headers={**MANAGEMENT, "Content-Type": content_type}
    )
    assert resp.status_code == 201, resp.text
    assert (await client.delete(f"{MGMT}/assets/a-1", headers=MANAGEMENT)).status_code == 204


async def test_no_body_and_unknown_routes_are_not_judged_by_their_content_type(
    client: httpx.AsyncClient,
) -> None:
    # No body: nothing to judge (an action without input).
    resp = await client.post(f"{MGMT}/transfers/unknown/suspend", headers=MANAGEMENT)
    assert resp.status_code != 415, resp.text
    # A path no route serves is 404, a method it does not serve 405, whatever the body.
    text = {**MANAGEMENT, "Content-Type": "text/plain"}
    resp = await client.post(f"{MGMT}/no-such-thing", content=b"x", headers=text)
    assert resp.status_code == 404
    resp = await client.put(f"{MGMT}/assets", content=b"x", headers=text)
    assert resp.status_code == 405


# --- the docs page: security schemes, assets of our own ---------------------------------------


async def test_openapi_declares_the_api_key_and_dsp_token_schemes(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {**schemes["ApiKey"], "type": "apiKey", "in": "header"}
    assert schemes["ApiKey"]["name"] == "X-Api-Key"
    assert (schemes["DspToken"]["type"], schemes["DspToken"]["scheme"]) == ("http", "bearer")
    assert "OidcBearer" not in schemes  # no OIDC configured
    operations = 0
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if path.startswith("/management/"):
                assert operation["security"] == [{"ApiKey": []}], (method, path)
                names = {p["name"].lower() for p in operation.get("parameters", [])}
                assert "x-api-key" not in names, (method, path)  # the scheme, not a parameter
                operations += 1
            elif path.startswith("/dsp/"):
                assert operation["security"] == [{"DspToken": []}], (method, path)
            else:
                assert "security" not in operation, (method, path)
    assert operations > 20


async def test_with_oidc_the_management_api_also_takes_a_bearer_token(
    make_client: Callable[..., Any],
) -> None:
    client = await make_client(
        management={
            "oidc": {
                "issuer": "https://idp.example/realms/ops",
                "audience": "connector",
                "jwks_url": "https://idp.example/realms/ops/certs",
            }
        }
    )
    spec = (await client.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["OidcBearer"]["scheme"] == "bearer"
    assert (
        "https://idp.example/realms/ops"
        in (spec["components"]["securitySchemes"]["OidcBearer"]["description"])
    )
    security = spec["paths"][f"{MGMT}/assets"]["get"]["security"]
    assert security == [{"ApiKey": []}, {"OidcBearer": []}]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_pages_load_only_what_the_connector_serves(
    client: httpx.AsyncClient, page: str
) -> None:
    resp = await client.get(page)
    assert resp.status_code == 200
    html = resp.text
    assert "://" not in html  # no CDN, no fonts, no validator: nothing absolute at all
    referenced = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(
        r"(?:url: '|spec-url=\")([^'\"]+)", html
    )
    assert "/openapi.json" in referenced
    assets = [r for r in referenced if r != "/openapi.json"]
    assert assets, html
    for url in assets:
        assert url.startswith("/docs/assets/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url
        kind = asset.headers["content-type"]
        assert kind.split(";")[0] in (
            "text/javascript",
            "application/javascript",
            "text/css",
            "image/png",
        )
    assert (await client.get("/docs/oauth2-redirect")).status_code == 200


def test_the_management_listener_serves_the_docs_and_their_assets() -> None:
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect", "/docs/assets/swagger-ui.css"):
        assert served(path, management=True), path
        assert served(path, management=False), path
