"""Identity and API security at the HTTP level (ISSUE 6 acceptance), against a real connector.

One connector (uvicorn on loopback, secure profile, own Postgres DB, in-process Temporal worker)
whose outbound guard admits the DID host `localhost` BY NAME only: no CIDR is allow-listed, so
loopback IP literals (`[::ffff:127.0.0.1]`) are refused like any private range. A
`ScriptedPeer` (its own did:web key ring and DID document on loopback) is the trusted caller.

Every refusal asserts the status, the protocol's error body (`CatalogError` /
`ContractNegotiationError`, valid against the official 2025-1 schema) and that NOTHING was stored
(the management API's negotiation total is unchanged). Each group ends with a positive control:
the same request with a fresh valid token IS accepted, so the refusals are not vacuous.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from joserfc import jwt

from connector.core.dsp import DspVersion, validate_against_schema
from connector.http.ratelimit import WINDOW_SECONDS
from connector.identity.keys import KeyEntry, KeyRing, generate_key, key_id
from connector.identity.tokens import TokenIssuer, bearer
from tests.scripted_peer import (
    CONTEXT,
    ScriptedPeer,
    connector_trusting,
    new_pid,
    request_message,
    scripted_peer,
)
from tests.twoconn import Connector, publish_offer

pytestmark = pytest.mark.e2e

DSP = "/dsp/2025-1"
CATALOG = f"{DSP}/catalog/request"
NEGOTIATE = f"{DSP}/negotiations/request"
ASSET = "asset-sec"
CATALOG_REQUEST = {"@context": CONTEXT, "@type": "CatalogRequestMessage"}
ERROR_TYPE = {CATALOG: "CatalogError", NEGOTIATE: "ContractNegotiationError"}
# Outbound guard of the connector under test: the peer's DID host by name, no IP range at all.
NAME_ONLY_LOOPBACK = {"allow_cidrs": [], "allow_hosts": ["localhost"], "allow_http": True}
SOURCE = "http://localhost:9/data"


@dataclass
class World:
    cut: Connector
    peer: ScriptedPeer
    offer: dict[str, Any]

    def request_body(self, callback: str | None = None) -> dict[str, Any]:
        return request_message(
            self.offer, new_pid(), callback_address=callback or self.peer.callback
        )

    def body_for(self, path: str) -> dict[str, Any]:
        return CATALOG_REQUEST if path == CATALOG else self.request_body()

    async def send(
        self, path: str, body: Any = None, *, authorization: str | None = "fresh", **kw: Any
    ) -> httpx.Response:
        """POST to the connector under test; `authorization="fresh"` signs a new valid token."""
        headers = dict(kw.pop("headers", {}))
        if authorization == "fresh":
            authorization = self.peer.authorization(self.cut.did)
        if authorization is not None:
            headers["Authorization"] = authorization
        if body is not None and "content" not in kw:
            kw["json"] = body
        return await self.peer.http.post(self.cut.base + path, headers=headers, **kw)

    async def stored(self) -> int:
        resp = await self.cut.get("/negotiations")
        assert resp.status_code == 200, resp.text
        return int(resp.json()["total"])


@pytest.fixture(scope="module")
async def world(
    pg_server_url: str,
    redis_url: str,
    temporal_address: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp("security")
    async with (
        scripted_peer(tmp / "peer") as peer,
        connector_trusting(
            peer,
            tmp / "cut",
            pg_server_url=pg_server_url,
            redis_url=redis_url,
            temporal_address=temporal_address,
            outbound=NAME_ONLY_LOOPBACK,
            policies={"auto_accept_offers": False},  # a positive control sends nothing back
            rate_limit={"requests_per_minute": 0},
        ) as cut,
    ):
        # The source by the name the guard admits (a loopback IP is refused when stored).
        await publish_offer(cut, ASSET, data_address={"type": "http", "baseUrl": SOURCE})
        resp = await peer.post(cut, CATALOG, CATALOG_REQUEST)
        assert resp.status_code == 200, resp.text
        datasets = resp.json()["dataset"]
        dataset = next(d for d in (datasets if isinstance(datasets, list) else [datasets]))
        policies = dataset["hasPolicy"]
        offer = dict(policies[0] if isinstance(policies, list) else policies)
        offer.update({"@type": "Offer", "target": dataset["@id"]})
        yield World(cut, peer, offer)


def assert_dsp_error(resp: httpx.Response, status: int, path: str) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert body["@type"] == ERROR_TYPE[path], body
    assert body["code"] == str(status), body
    problems = validate_against_schema(body, ERROR_TYPE[path], DspVersion.V2025_1)
    # An opening request names no provider pid, and a refused caller's body is not read: a pid
    # nobody named is left out, never invented (decision 0002). Nothing else may be wrong.
    unnamed = {f"/: '{k}' is a required property" for k in ("consumerPid", "providerPid")}
    assert set(problems) <= (unnamed if path == NEGOTIATE else set()), body
    assert "urn:connector:unknown" not in resp.text
    if status in (401, 404):
        # Generic: the reason is ours to log; the caller gets the correlation id (finding 2).
        correlation = resp.headers["X-Correlation-Id"]
        generic = "not authenticated" if status == 401 else "not found"
        assert body["reason"] == [f"{generic} (correlation id {correlation})"], body
    return dict(body)


# --- tokens ----------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _stranger_ring() -> KeyRing:
    key = generate_key()
    return KeyRing(current=KeyEntry(key=key, key_id=key_id(key)))


def token_unknown_key(world: World) -> str:
    """Signed by a key that is not in the caller's DID document (kid names that key)."""
    return TokenIssuer(_stranger_ring(), world.peer.did, clock=_now).issue(world.cut.did)


def token_forged_kid(world: World) -> str:
    """Signed by an unknown key, but claiming the kid of the caller's real key."""
    now = int(time.time())
    peer = world.peer
    header = {"alg": "ES256", "typ": "JWT", "kid": f"{peer.did}#{peer.keyring.current.key_id}"}
    claims = {
        "iss": peer.did,
        "sub": peer.did,
        "aud": world.cut.did,
        "jti": new_pid(),
        "iat": now,
        "exp": now + 300,
    }
    return jwt.encode(header, claims, _stranger_ring().current.key, algorithms=["ES256"])


def token_other_audience(world: World) -> str:
    return world.peer.issuer.issue("did:web:someone-else.example")


def token_expired(world: World) -> str:
    def clock() -> datetime:
        return _now() - timedelta(minutes=10)

    return TokenIssuer(world.peer.keyring, world.peer.did, clock=clock).issue(world.cut.did)


def token_untrusted_issuer(world: World) -> str:
    """Well signed, by a did:web DID that is not on the trust list."""
    stranger = "did:web:localhost%3A1"
    return TokenIssuer(_stranger_ring(), stranger, clock=_now).issue(world.cut.did)


BAD_TOKENS: dict[str, Callable[[World], str | None]] = {
    "untrusted-issuer": lambda w: bearer(token_untrusted_issuer(w)),
    "unknown-key": lambda w: bearer(token_unknown_key(w)),
    "forged-kid": lambda w: bearer(token_forged_kid(w)),
    "other-audience": lambda w: bearer(token_other_audience(w)),
    "expired": lambda w: bearer(token_expired(w)),
    "missing": lambda w: None,
    "dev-token-in-secure-profile": lambda w: f"Bearer dev:{w.peer.did}",
    "not-bearer": lambda w: f"Basic {token_other_audience(w)}",
}
# The logged reason proves each token was refused for the intended cause, not an earlier one.
REASONS = {
    "untrusted-issuer": "issuer is not trusted",
    "unknown-key": "signing key not found in the DID document",
    "forged-kid": "token signature invalid",
    "other-audience": "claim 'aud' does not name this participant",
    "expired": "token expired",
    "dev-token-in-secure-profile": "not a compact JWS",
    "not-bearer": "not a Bearer token",
}


@pytest.mark.parametrize("path", [CATALOG, NEGOTIATE])
@pytest.mark.parametrize("kind", list(BAD_TOKENS))
async def test_bad_token_is_401_with_dsp_error_and_stores_nothing(
    world: World, path: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = await world.stored()
    authorization = BAD_TOKENS[kind](world)
    with caplog.at_level(logging.INFO, logger="connector.identity.tokens"):
        resp = await world.send(path, world.body_for(path), authorization=authorization)
    assert_dsp_error(resp, 401, path)
    assert await world.stored() == before
    if authorization is not None:
        token = authorization.partition(" ")[2]
        assert "DSP caller rejected" in caplog.text
        # The exact reason, logged with the correlation id the caller got.
        correlation = resp.headers["X-Correlation-Id"]
        reasons = [
            getattr(r, "reason", "")
            for r in caplog.records
            if getattr(r, "correlation_id", None) == correlation
        ]
        assert any(REASONS[kind] in reason for reason in reasons), reasons
        assert token not in caplog.text  # logged without the token
        assert token not in resp.text
        assert REASONS[kind] not in resp.text


@pytest.mark.parametrize("path", [CATALOG, NEGOTIATE])
async def test_an_untrusted_issuer_and_a_bad_signature_get_the_same_answer(
    world: World, path: str
) -> None:
    """The 401 says nothing about which DIDs we trust (issue 16, finding 2)."""
    answers = []
    for kind in ("untrusted-issuer", "forged-kid", "missing"):
        resp = await world.send(path, world.body_for(path), authorization=BAD_TOKENS[kind](world))
        body = assert_dsp_error(resp, 401, path)
        headers = {k: v for k, v in resp.headers.items() if k not in ("x-correlation-id", "date")}
        answers.append((headers, {**body, "reason": None}))
    assert answers[0] == answers[1] == answers[2]


async def test_reading_an_existing_process_without_a_valid_token_is_404(world: World) -> None:
    """DSP 2025-1: 404 "does not exist or the consumer is not authorized"; a 401 here would tell
    a stranger which pids exist (docs/security.md §2)."""
    created = await world.send(NEGOTIATE, world.request_body())
    assert created.status_code == 201, created.text
    pid = created.json()["providerPid"]
    path = f"{DSP}/negotiations/{pid}"

    async def read(target: str, authorization: str | None) -> httpx.Response:
        headers = {"Authorization": authorization} if authorization else {}
        return await world.peer.http.get(world.cut.base + target, headers=headers)

    ok = await read(path, world.peer.authorization(world.cut.did))
    assert ok.status_code == 200, ok.text
    unknown_pid = new_pid()
    unknown = await read(
        f"{DSP}/negotiations/{unknown_pid}", world.peer.authorization(world.cut.did)
    )
    answers = [unknown]
    for kind in ("missing", "forged-kid", "untrusted-issuer", "expired"):
        answers.append(await read(path, BAD_TOKENS[kind](world)))
    bodies = []
    for resp in answers:
        assert resp.status_code == 404, resp.text
        assert "www-authenticate" not in resp.headers
        body = resp.json()
        assert validate_against_schema(body, "ContractNegotiationError", DspVersion.V2025_1) == []
        correlation = resp.headers["X-Correlation-Id"]
        assert body["reason"] == [f"not found (correlation id {correlation})"], body
        named = body["providerPid"]
        assert body["consumerPid"] == named  # the pid in the path, echoed; nothing invented
        bodies.append({**body, "reason": None, "providerPid": None, "consumerPid": None})
    assert all(b == bodies[0] for b in bodies), bodies
    # The same transfer rule: tests/e2e/test_transfer_protocol_e2e.py.


async def test_replayed_token_is_401_and_stores_nothing(world: World) -> None:
    before = await world.stored()
    authorization = world.peer.authorization(world.cut.did)
    first = await world.send(CATALOG, CATALOG_REQUEST, authorization=authorization)
    assert first.status_code == 200, first.text
    again = await world.send(CATALOG, CATALOG_REQUEST, authorization=authorization)
    assert_dsp_error(again, 401, CATALOG)

    # The jti is claimed when the caller is authenticated, before the body is looked at: a token
    # first spent on a rejected request cannot be replayed with a valid one.
    authorization = world.peer.authorization(world.cut.did)
    invalid = {"@context": CONTEXT, "@type": "ContractRequestMessage"}
    assert_dsp_error(
        await world.send(NEGOTIATE, invalid, authorization=authorization), 400, NEGOTIATE
    )
    replay = await world.send(NEGOTIATE, world.request_body(), authorization=authorization)
    assert_dsp_error(replay, 401, NEGOTIATE)
    assert await world.stored() == before

    # Positive control: the same body with a fresh token is accepted and stored.
    fresh = await world.send(NEGOTIATE, world.request_body())
    assert fresh.status_code == 201, fresh.text
    assert await world.stored() == before + 1


# --- SSRF: callbackAddress -------------------------------------------------------------------


@pytest.fixture
async def tripwire() -> AsyncIterator[tuple[int, list[str]]]:
    """A loopback listener that records every connection (there must be none)."""
    connections: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(str(writer.get_extra_info("peername")))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield port, connections


@pytest.mark.parametrize(
    "callback",
    [
        "http://10.0.0.1/callback",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/callback",
        "http://[::ffff:127.0.0.1]:{port}/callback",
        "http://127.0.0.1:{port}/callback",
        "http://[::1]:{port}/callback",
    ],
)
async def test_callback_to_internal_address_is_400_before_any_connection(
    world: World, tripwire: tuple[int, list[str]], callback: str
) -> None:
    port, connections = tripwire
    before = await world.stored()
    resp = await world.send(NEGOTIATE, world.request_body(callback.format(port=port)))
    body = assert_dsp_error(resp, 400, NEGOTIATE)
    assert any("callbackAddress" in reason for reason in body["reason"]), body
    await asyncio.sleep(0.2)  # anything sent in the background would have arrived by now
    assert connections == []
    assert await world.stored() == before


async def test_callback_by_allow_listed_name_is_accepted(world: World) -> None:
    """Positive control for the SSRF rows: the peer's own callback (`localhost` by name)."""
    before = await world.stored()
    resp = await world.send(NEGOTIATE, world.request_body(world.peer.callback))
    assert resp.status_code == 201, resp.text
    assert await world.stored() == before + 1


# --- body guards -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", [CATALOG, NEGOTIATE])
async def test_oversized_body_is_413_and_stores_nothing(world: World, path: str) -> None:
    before = await world.stored()
    limit = world.cut.settings.server.max_body_bytes
    padding = "x" * (limit + 1)
    body = {**world.body_for(path), "padding": padding}
    resp = await world.send(path, body)
    assert_dsp_error(resp, 413, path)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the cap applies while reading
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    resp = await world.send(path, content=chunks(), headers={"Content-Type": "application/json"})
    assert_dsp_error(resp, 413, path)
    assert await world.stored() == before


@pytest.mark.parametrize("path", [CATALOG, NEGOTIATE])
async def test_deeply_nested_json_is_400_and_stores_nothing(world: World, path: str) -> None:
    before = await world.stored()
    deep = b'{"@type": "CatalogRequestMessage", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    resp = await world.send(path, content=deep, headers={"Content-Type": "application/json"})
    body = assert_dsp_error(resp, 400, path)
    assert any("deep" in reason or "depth" in reason for reason in body["reason"]), body
    assert await world.stored() == before


# --- rate limit ------------------------------------------------------------------------------


async def test_rate_limit_is_429_with_retry_after(
    world: World,
    pg_server_url: str,
    redis_url: str,
    temporal_address: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    limit = 3
    async with connector_trusting(
        world.peer,
        tmp_path_factory.mktemp("ratelimited"),
        name="provider",
        pg_server_url=pg_server_url,
        redis_url=redis_url,
        temporal_address=temporal_address,
        outbound=NAME_ONLY_LOOPBACK,
        rate_limit={"requests_per_minute": limit},
    ) as limited:
        peer = world.peer
        # A fixed window: do not straddle a minute boundary.
        left = WINDOW_SECONDS - time.time() % WINDOW_SECONDS
        if left < 5:
            await asyncio.sleep(left + 0.1)
        for _ in range(limit):
            ok = await peer.post(limited, CATALOG, CATALOG_REQUEST)
            assert ok.status_code == 200, ok.text
        for path in (CATALOG, NEGOTIATE):
            body = CATALOG_REQUEST if path == CATALOG else world.request_body()
            resp = await peer.post(limited, path, body)
            assert_dsp_error(resp, 429, path)
            retry_after = int(resp.headers["Retry-After"])
            assert 1 <= retry_after <= WINDOW_SECONDS
        total = (await limited.get("/negotiations")).json()["total"]
        assert total == 0
        # Limited per caller: unauthenticated requests are still answered 401, not counted.
        resp = await peer.post(limited, CATALOG, CATALOG_REQUEST, authorization=None)
        assert_dsp_error(resp, 401, CATALOG)
