"""The codec endpoint for the Temporal UI (`/management/codec`), at the HTTP level on the real app
(real Postgres and Redis): decodes with the key, 401 without it, CORS only for the UI's origin,
Basic credentials for a browser, OIDC bearer tokens, rotation."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from connector.encryption.keyring import DataKeys, rotate
from connector.services.maintenance import is_guarded
from connector.settings import load_settings
from connector.temporal.codec import ENCODING, EncryptionCodec
from tests.http.catalog_fixtures import migrated
from tests.oidc_tokens import AUDIENCE, ISSUER, NOW, TestIdp

pytestmark = pytest.mark.integration

KEY = "codec-test-management-key-0123456789abcdef"
UI = "http://127.0.0.1:8233"
DECODE = "/management/codec/decode"
ENCODE = "/management/codec/encode"
SECRET = b'{"authorization": "edr-token-5e2b"}'


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("api.security.utc_now", lambda: NOW)


MakeApp = Callable[..., Awaitable[tuple[FastAPI, httpx.AsyncClient]]]


@pytest.fixture
async def make_app(pg_url: str, redis_url: str, tmp_path: Path) -> AsyncIterator[MakeApp]:
    await migrated(pg_url)
    stacks: list[Any] = []

    async def build(**overrides: Any) -> tuple[FastAPI, httpx.AsyncClient]:
        settings = load_settings(
            env={},
            database={"url": pg_url},
            redis={"url": redis_url},
            temporal={"address": "127.0.0.1:1", "namespace": "connector"},
            management={"api_keys": [KEY], **overrides.pop("management", {})},
            identity={"participant_id": f"urn:t:{uuid.uuid4()}"},
            data_dir=tmp_path / "data",
            **overrides,
        )
        app = create_app_for(settings)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver")
        stacks.append((lifespan, client))
        return app, client

    yield build
    for lifespan, client in reversed(stacks):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


def create_app_for(settings: Any) -> FastAPI:
    from api.app import create_app

    return create_app(settings)


def as_json(payloads: list[Payload]) -> dict[str, Any]:
    return json_format.MessageToDict(Payloads(payloads=payloads))


def from_json(body: dict[str, Any]) -> list[Payload]:
    return list(json_format.ParseDict(body, Payloads()).payloads)


def plain() -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=SECRET)


async def encrypted(app: FastAPI) -> list[Payload]:
    return await EncryptionCodec(app.state.data_keys).encode([plain()])


def basic(password: str, user: str = "operator") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_decodes_with_the_key_and_refuses_without_it(make_app: MakeApp) -> None:
    app, client = await make_app()
    body = as_json(await encrypted(app))
    assert SECRET not in json.dumps(body).encode()
    assert base64.b64encode(SECRET).decode() not in json.dumps(body)

    ok = await client.post(
        DECODE, json=body, headers={"X-Api-Key": KEY, "X-Namespace": "connector"}
    )
    assert ok.status_code == 200, ok.text
    assert from_json(ok.json()) == [plain()]

    for headers in ({}, {"X-Api-Key": KEY[:-1] + "x"}, {"Authorization": basic("wrong")}):
        refused = await client.post(DECODE, json=body, headers=headers)
        assert refused.status_code == 401, (headers, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert base64.b64encode(SECRET).decode() not in refused.text
    # The browser's way in: Basic credentials with the management key as the password.
    assert (
        await client.post(DECODE, json=body, headers={"Authorization": basic(KEY)})
    ).status_code == 200


async def test_encode_round_trips_and_foreign_or_bad_payloads_are_400(
    make_app: MakeApp, tmp_path: Path
) -> None:
    app, client = await make_app()
    headers = {"X-Api-Key": KEY}
    encoded = await client.post(ENCODE, json=as_json([plain()]), headers=headers)
    assert encoded.status_code == 200, encoded.text
    sealed = from_json(encoded.json())
    assert sealed[0].metadata["encoding"] == ENCODING
    assert await EncryptionCodec(app.state.data_keys).decode(sealed) == [plain()]

    foreign = await EncryptionCodec(
        DataKeys.open(tmp_path / "other" / "ring.json", create=True)
    ).encode([plain()])
    bad = await client.post(DECODE, json=as_json(foreign), headers=headers)
    assert bad.status_code == 400, bad.text
    for body in ({"payloads": "x"}, {"payloads": [{"data": 5}]}, {"nope": 1}, [1]):
        assert (await client.post(DECODE, json=body, headers=headers)).status_code == 400
    # Another namespace's payloads are not ours to decode: they come back unchanged.
    other = await client.post(
        DECODE,
        json=as_json(await encrypted(app)),
        headers={**headers, "X-Namespace": "someone-else"},
    )
    assert other.status_code == 200
    assert from_json(other.json())[0].metadata["encoding"] == ENCODING


async def test_cors_answers_only_the_configured_ui_origin(make_app: MakeApp) -> None:
    app, client = await make_app()
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace",
    }
    allowed = await client.options(DECODE, headers={"Origin": UI, **preflight})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == UI
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "x-namespace" in allowed.headers["access-control-allow-headers"].lower()
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert (
        await client.options(ENCODE, headers={"Origin": "http://localhost:8233", **preflight})
    ).headers["access-control-allow-origin"] == "http://localhost:8233"

    for origin in ("http://evil.example", "http://127.0.0.1:8234", "null"):
        refused = await client.options(DECODE, headers={"Origin": origin, **preflight})
        assert refused.status_code == 403, origin
        assert "access-control-allow-origin" not in refused.headers
        post = await client.post(
            DECODE,
            json=as_json(await encrypted(app)),
            headers={"Origin": origin, "X-Api-Key": KEY},
        )
        assert post.status_code == 403, origin
        assert "access-control-allow-origin" not in post.headers
        assert base64.b64encode(SECRET).decode() not in post.text

    answered = await client.post(
        DECODE, json=as_json(await encrypted(app)), headers={"Origin": UI, "X-Api-Key": KEY}
    )
    assert answered.status_code == 200
    assert answered.headers["access-control-allow-origin"] == UI
    assert answered.headers["vary"] == "Origin"
    # An error from the right origin is readable by the UI too (it shows "could not connect").
    unauthorized = await client.post(DECODE, json={"payloads": []}, headers={"Origin": UI})
    assert unauthorized.status_code == 401
    assert unauthorized.headers["access-control-allow-origin"] == UI


async def test_configured_origins_replace_the_embedded_ui(make_app: MakeApp) -> None:
    _app, client = await make_app(encryption={"codec_origins": ["https://temporal.example"]})
    headers = {"Access-Control-Request-Method": "POST"}
    assert (
        await client.options(DECODE, headers={"Origin": "https://temporal.example", **headers})
    ).status_code == 204
    assert (await client.options(DECODE, headers={"Origin": UI, **headers})).status_code == 403


def test_the_codec_endpoint_stays_open_during_maintenance() -> None:
    # A restore (maintenance mode) refuses writes; decoding is none, and operators need the UI.
    assert not is_guarded("POST", DECODE)
    assert not is_guarded("POST", ENCODE)
    assert is_guarded("POST", "/management/v1/assets")


async def test_the_login_page_asks_the_browser_for_basic_credentials(
    make_app: MakeApp,
) -> None:
    _app, client = await make_app()
    challenge = await client.get("/management/codec/login")
    assert challenge.status_code == 401
    assert challenge.headers["www-authenticate"].startswith('Basic realm="connector codec"')
    assert (
        await client.get("/management/codec/login", headers={"Authorization": basic("nope")})
    ).status_code == 401
    welcome = await client.get("/management/codec/login", headers={"Authorization": basic(KEY)})
    assert welcome.status_code == 200
    assert "Include cross-origin credentials" in welcome.text


async def test_an_oidc_bearer_token_is_accepted_when_oidc_is_configured(
    make_app: MakeApp, tmp_path: Path
) -> None:
    idp = TestIdp()
    app, client = await make_app(
        management={
            "oidc": {
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "jwks_path": idp.write_jwks(tmp_path / "jwks.json"),
            }
        }
    )
    body = as_json(await encrypted(app))
    ok = await client.post(DECODE, json=body, headers={"Authorization": f"Bearer {idp.token()}"})
    assert ok.status_code == 200, ok.text
    assert from_json(ok.json()) == [plain()]
    forged = idp.token(key=TestIdp().keys["ec-1"])
    assert (
        await client.post(DECODE, json=body, headers={"Authorization": f"Bearer {forged}"})
    ).status_code == 401


async def test_payloads_encoded_before_a_rotation_still_decode(
    make_app: MakeApp,
) -> None:
    app, client = await make_app()
    keys: DataKeys = app.state.data_keys
    before = await encrypted(app)
    rotate(keys.path)
    # Written by another process after the rotation (new key id): the endpoint reads the file.
    after = await EncryptionCodec(DataKeys.open(keys.path, create=False)).encode([plain()])
    assert after[0].metadata["encryption-key-id"] != before[0].metadata["encryption-key-id"]
    for payloads in (before, after):
        resp = await client.post(DECODE, json=as_json(payloads), headers={"X-Api-Key": KEY})
        assert resp.status_code == 200, resp.text
        assert from_json(resp.json()) == [plain()]
