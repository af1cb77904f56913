"""Data addresses are validated when they are stored (issue 16, finding 4), with the data
plane's own rules (`connector.data_address`): assets created or replaced through the management
API, and the push destination of a consumer's transfer request. A bad one is 422 problem+json
with the JSON pointer of the bad field, and nothing is stored; a good one is 201."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from tests.http.catalog_fixtures import HEADERS, MGMT, Harness, migrated, settings_for

pytestmark = pytest.mark.integration


async def _harness(
    pg_url: str, redis_url: str, tmp_path: Path, **extra: Any
) -> AsyncIterator[Harness]:
    await migrated(pg_url)
    participant_id = f"urn:test:provider:{uuid.uuid4().hex[:8]}"
    app = create_app(settings_for(pg_url, redis_url, tmp_path, participant_id, **extra))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Harness(app, client, participant_id)


@pytest.fixture
async def harness(pg_url: str, redis_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    files = tmp_path / "files"
    (files / "data").mkdir(parents=True)
    # The test profile of the outbound guard: plain http allowed, no private ranges.
    async for h in _harness(
        pg_url,
        redis_url,
        tmp_path,
        dataplane={"file_base_path": str(files)},
        outbound={"allow_http": True},
    ):
        yield h


def _asset(address: dict[str, Any], asset_id: str = "a1") -> dict[str, Any]:
    return {"id": asset_id, "dataAddress": address, "distributions": ["HttpData-PULL"]}


def _problem(resp: httpx.Response, status: int = 422) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    return body


async def _count(h: Harness) -> int:
    total: int = (await h.get("/assets")).json()["total"]
    return total


URL = "/dataAddress/baseUrl"
BAD_ASSETS: list[tuple[str, dict[str, Any], str]] = [
    ("absolute path", {"type": "file", "path": "/etc/passwd"}, "/dataAddress/path"),
    ("dot-dot", {"type": "file", "path": "../../etc/passwd"}, "/dataAddress/path"),
    ("encoded dot-dot", {"type": "file", "path": "data/%2e%2e/%2e%2e/x"}, "/dataAddress/path"),
    ("file URI as path", {"type": "file", "path": "file:///etc/passwd"}, "/dataAddress/path"),
    ("backslash", {"type": "file", "path": "data\\..\\..\\x"}, "/dataAddress/path"),
    ("empty path", {"type": "file", "path": ""}, "/dataAddress/path"),
    ("file URL", {"type": "http", "baseUrl": "file:///etc/passwd"}, URL),
    ("gopher", {"type": "http", "baseUrl": "gopher://evil.example:70/_x"}, URL),
    ("ftp", {"type": "http", "baseUrl": "ftp://files.example/x"}, URL),
    (
        "loopback",
        {"type": "http", "baseUrl": "http://127.0.0.1:8080/admin"},
        URL,
    ),
    ("loopback v6", {"type": "http", "baseUrl": "http://[::1]/x"}, URL),
    ("decimal loopback", {"type": "http", "baseUrl": "http://2130706433/"}, URL),
    ("localhost", {"type": "http", "baseUrl": "http://localhost:3000/"}, URL),
    ("private", {"type": "http", "baseUrl": "https://10.1.2.3/x"}, URL),
    (
        "metadata",
        {"type": "http", "baseUrl": "http://169.254.169.254/latest/meta-data"},
        URL,
    ),
    ("userinfo", {"type": "http", "baseUrl": "https://u:p@data.example/"}, URL),
    (
        "endpoint field",
        {"type": "http", "endpoint": "gopher://x.example/"},
        "/dataAddress/endpoint",
    ),
    ("no URL", {"type": "http"}, URL),
    (
        "option not a boolean",
        {"type": "http", "baseUrl": "https://data.example/", "proxyPath": "yes"},
        "/dataAddress/proxyPath",
    ),
    (
        "proxy option on a file",
        {"type": "file", "path": "data/x.bin", "proxyPath": True},
        "/dataAddress/proxyPath",
    ),
    (
        "contradiction",
        {"type": "file", "path": "data/x.bin", "finite": False, "completeOnFirstRead": True},
        "/dataAddress/completeOnFirstRead",
    ),
    (
        "header name",
        {"type": "http", "baseUrl": "https://data.example/", "headers": {"Bad Name": "x"}},
        "/dataAddress/headers/Bad Name",
    ),
    (
        "header injection",
        {"type": "http", "baseUrl": "https://data.example/", "headers": {"X-A": "a\r\nB: c"}},
        "/dataAddress/headers/X-A",
    ),
    (
        "reserved header",
        {"type": "http", "baseUrl": "https://data.example/", "headers": {"Host": "internal"}},
        "/dataAddress/headers/Host",
    ),
    ("S3 bucket", {"type": "s3", "bucket": "Bad_Bucket!", "key": "k"}, "/dataAddress/bucket"),
    ("S3 IP bucket", {"type": "s3", "bucket": "192.168.0.1", "key": "k"}, "/dataAddress/bucket"),
    ("S3 no key", {"type": "s3", "bucket": "good-bucket"}, "/dataAddress/key"),
    (
        "S3 dot-dot key",
        {"type": "s3", "bucket": "good-bucket", "key": "a/../b"},
        "/dataAddress/key",
    ),
    (
        "S3 object name",
        {"type": "s3", "bucketName": "good-bucket", "objectName": "x" * 1025},
        "/dataAddress/objectName",
    ),
]


@pytest.mark.parametrize(
    ("address", "pointer"), [(a, p) for _, a, p in BAD_ASSETS], ids=[i for i, _, _ in BAD_ASSETS]
)
async def test_a_bad_data_address_is_422_with_its_pointer_and_nothing_is_stored(
    harness: Harness, address: dict[str, Any], pointer: str
) -> None:
    body = _problem(await harness.post("/assets", _asset(address)))
    assert body["pointer"] == pointer
    assert body["errors"][0].startswith(pointer + ":")
    assert await _count(harness) == 0


GOOD_ASSETS: list[dict[str, Any]] = [
    {"type": "file", "path": "data/x.bin"},  # need not exist yet
    {"type": "file", "path": "data/new/sub/y.bin", "completeOnFirstRead": False},
    {"type": "http", "baseUrl": "https://data.example/api?tenant=a"},
    {
        "type": "http",
        "baseUrl": "https://data.example/api",
        "headers": {"X-Api-Key": "secret"},
        "proxyPath": True,
        "proxyQueryParams": "true",
        "proxyMethod": False,
        "proxyBody": "false",
        "finite": True,
    },
    {"type": "s3", "bucket": "good-bucket", "key": "a/b/c.csv"},
    {"type": "s3", "bucketName": "good.bucket-2", "objectName": "x.bin"},
]


@pytest.mark.parametrize("address", GOOD_ASSETS)
async def test_a_good_data_address_is_201(harness: Harness, address: dict[str, Any]) -> None:
    resp = await harness.post("/assets", _asset(address))
    assert resp.status_code == 201, resp.text
    assert resp.json()["dataAddress"] == address


async def test_replacing_an_asset_applies_the_same_rules(harness: Harness) -> None:
    good = {"type": "file", "path": "data/x.bin"}
    assert (await harness.post("/assets", _asset(good))).status_code == 201
    body = _problem(await harness.put("/assets/a1", _asset({"type": "file", "path": "../x"})))
    assert body["pointer"] == "/dataAddress/path"
    assert (await harness.get("/assets/a1")).json()["dataAddress"] == good


async def test_a_refused_create_does_not_use_up_its_idempotency_key(harness: Harness) -> None:
    headers = {**HEADERS, "Idempotency-Key": str(uuid.uuid4())}
    bad = _asset({"type": "http", "baseUrl": "gopher://x.example/"})
    resp = await harness.client.post(f"{MGMT}/assets", json=bad, headers=headers)
    assert _problem(resp)["pointer"] == "/dataAddress/baseUrl"
    good = _asset({"type": "http", "baseUrl": "https://data.example/x"})
    first = await harness.client.post(f"{MGMT}/assets", json=good, headers=headers)
    assert first.status_code == 201, first.text
    again = await harness.client.post(f"{MGMT}/assets", json=good, headers=headers)
    assert again.status_code == 201
    assert again.headers.get("idempotent-replayed") == "true"


async def test_file_addresses_need_a_base_path(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    async for h in _harness(pg_url, redis_url, tmp_path):
        body = _problem(await h.post("/assets", _asset({"type": "file", "path": "x.bin"})))
        assert body["pointer"] == "/dataAddress/path"
        assert "dataplane.file_base_path" in body["detail"]
        # https is required unless outbound.allow_http says otherwise.
        body = _problem(
            await h.post("/assets", _asset({"type": "http", "baseUrl": "http://data.example/"}))
        )
        assert body["pointer"] == "/dataAddress/baseUrl"


# --------------------------------------------------------------------------- push destinations

HTTP = "https://w3id.org/idsa/v4.1/HTTP"
BAD_DESTINATIONS: list[tuple[str, dict[str, Any], str]] = [
    ("gopher", {"endpointType": HTTP, "endpoint": "gopher://x.example/"}, "/endpoint"),
    ("loopback", {"endpointType": HTTP, "endpoint": "http://127.0.0.1:9/in"}, "/endpoint"),
    ("file URL", {"endpointType": HTTP, "endpoint": "file:///etc/passwd"}, "/endpoint"),
    ("no endpoint", {"endpointType": HTTP}, "/endpoint"),
    ("file type", {"endpointType": "File", "path": "/etc/passwd"}, "/endpointType"),
    ("unknown type", {"endpointType": "Gopher", "endpoint": "x"}, "/endpointType"),
    (
        "S3 bucket",
        {
            "endpointType": "AmazonS3",
            "endpointProperties": [
                {"name": "bucketName", "value": "Not A Bucket"},
                {"name": "objectName", "value": "k"},
            ],
        },
        "/endpointProperties/0/value",
    ),
    (
        "push method",
        {
            "endpointType": HTTP,
            "endpoint": "https://sink.example/in",
            "endpointProperties": [{"name": "method", "value": "DELETE"}],
        },
        "/endpointProperties/0/value",
    ),
]


@pytest.mark.parametrize(
    ("destination", "pointer"),
    [(d, p) for _, d, p in BAD_DESTINATIONS],
    ids=[i for i, _, _ in BAD_DESTINATIONS],
)
async def test_a_bad_push_destination_is_422_with_its_pointer(
    harness: Harness, destination: dict[str, Any], pointer: str
) -> None:
    body = {
        "counterPartyAddress": "https://provider.example/dsp/2025-1",
        "counterPartyId": "did:web:provider.example",
        "agreementId": "agreement-1",
        "format": "HttpData-PUSH",
        "dataDestination": {"@type": "DataAddress", **destination},
    }
    problem = _problem(await harness.post("/transfers", body))
    assert problem["pointer"] == "/dataDestination" + pointer
    assert (await harness.get("/transfers")).json()["total"] == 0
