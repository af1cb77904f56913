"""A refused caller learns nothing but a correlation id (issue 16, finding 2).

The real DSP and management routers over a bare app, with the real token verifier (in-memory DID
documents, no services): an untrusted issuer and a trusted issuer with a bad signature get the
same 401 body (the correlation id apart), in the protocol's error shape, the id also in
`X-Correlation-Id`, the exact reason only in our log line with that id. Reading a process with a
token we cannot verify is the 404 of an unknown process. Error bodies echo the pids the request
named (the path's where the message is not read) and invent none.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, MutableMapping
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI
from joserfc import jwt

from api import management as management_routes
from api.catalog import dsp_routes as dsp_catalog
from api.negotiation import dsp_routes as dsp_negotiations
from api.transfer import dsp_routes as dsp_transfers
from connector.core.dsp import DspVersion, validate_against_schema
from connector.http.errors import CORRELATION_HEADER, install_error_handlers
from connector.identity.apikeys import load_api_keys
from connector.identity.did import MemoryDidSource, build_did_document
from connector.identity.keys import KeyEntry, KeyRing, generate_key, key_id
from connector.identity.replay import MemoryReplayStore
from connector.identity.tokens import TokenIssuer, TokenVerifier, bearer
from connector.identity.trust import TrustList
from connector.settings import load_settings

US = "did:web:provider.example"
PARTNER = "did:web:partner.example"
STRANGER = "did:web:stranger.example"
KEY = "k" * 40
V25 = DspVersion.V2025_1
CTX = ["https://w3id.org/dspace/2025/1/context.jsonld"]
PID = "urn:uuid:0b6f3c1e-6d0e-4f4e-9a51-1f2d3c4b5a69"
ID_RE = re.compile(r"\(correlation id ([0-9a-f]{32})\)$")


def _ring() -> KeyRing:
    key = generate_key()
    return KeyRing(current=KeyEntry(key=key, key_id=key_id(key)))


def _now() -> datetime:
    return datetime.now(UTC)


PARTNER_RING, STRANGER_RING = _ring(), _ring()


def token_untrusted() -> str:
    """A well-signed token of a DID that is not on the trust list."""
    return bearer(TokenIssuer(STRANGER_RING, STRANGER, clock=_now).issue(US))


def token_bad_signature() -> str:
    """The partner's DID and kid, signed with another key."""
    now = int(_now().timestamp())
    header = {"alg": "ES256", "typ": "JWT", "kid": f"{PARTNER}#{PARTNER_RING.current.key_id}"}
    claims = {"iss": PARTNER, "sub": PARTNER, "aud": US, "jti": PID, "iat": now, "exp": now + 60}
    return bearer(jwt.encode(header, claims, _ring().current.key, algorithms=["ES256"]))


TOKENS = {
    "untrusted issuer": (token_untrusted, "issuer is not trusted"),
    "bad signature": (token_bad_signature, "token signature invalid"),
    "no token": (lambda: None, "missing Authorization header"),
}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.state.settings = load_settings(env={}, management={"api_keys": [KEY]})
    app.state.api_keys = load_api_keys([KEY])
    source = MemoryDidSource({PARTNER: build_did_document(PARTNER, [PARTNER_RING.current])})
    verifier = TokenVerifier(source, MemoryReplayStore(), TrustList.of([PARTNER]), US, _now)
    app.state.identity = SimpleNamespace(verifier=verifier)
    install_error_handlers(app)
    app.include_router(dsp_catalog.router)
    app.include_router(dsp_negotiations.router(V25))
    app.include_router(dsp_transfers.router(V25))
    app.include_router(dsp_negotiations.router(DspVersion.V0_8))
    app.include_router(management_routes.router)
    transport = httpx.AsyncClient(
        transport=httpx.ASGITransport(app, raise_app_exceptions=False), base_url="http://t"
    )
    async with transport as c:
        yield c


async def call(
    client: httpx.AsyncClient, method: str, path: str, authorization: str | None, body: Any = None
) -> tuple[httpx.Response, list[MutableMapping[str, Any]]]:
    headers = {"Authorization": authorization} if authorization else {}
    with structlog.testing.capture_logs() as logs:
        resp = await client.request(method, path, headers=headers, json=body)
    return resp, logs


def correlation_of(resp: httpx.Response, reasons: list[Any]) -> str:
    """The id in the body's one reason, which must equal the header's."""
    assert len(reasons) == 1, reasons
    match = ID_RE.search(str(reasons[0]))
    assert match is not None, reasons
    assert resp.headers[CORRELATION_HEADER] == match.group(1)
    return match.group(1)


def assert_logged(logs: list[MutableMapping[str, Any]], correlation: str, reason: str) -> None:
    """Our log line holds the exact reason beside the id the caller got."""
    refused = [e for e in logs if e.get("correlation_id") == correlation]
    assert refused, logs
    assert any(reason in str(e.get("reason")) for e in refused), refused


@pytest.mark.parametrize("kind", list(TOKENS))
async def test_a_refused_dsp_caller_gets_a_generic_401_and_we_log_why(
    client: httpx.AsyncClient, kind: str
) -> None:
    make, reason = TOKENS[kind]
    authorization = make()
    request = {"@context": CTX, "@type": "CatalogRequestMessage"}
    resp, logs = await call(client, "POST", "/dsp/2025-1/catalog/request", authorization, request)
    assert resp.status_code == 401, resp.text
    assert resp.headers["www-authenticate"] == 'Bearer realm="dsp"'
    body = resp.json()
    assert validate_against_schema(body, "CatalogError", V25) == [], body
    assert body["code"] == "401"
    correlation = correlation_of(resp, body["reason"])
    assert body["reason"] == [f"not authenticated (correlation id {correlation})"]
    for word in ("trusted", "signature", "issuer", "Authorization", STRANGER, PARTNER):
        assert word not in resp.text
    assert_logged(logs, correlation, reason)


async def test_an_untrusted_issuer_and_a_bad_signature_are_indistinguishable(
    client: httpx.AsyncClient,
) -> None:
    answers = []
    for path, body in (
        ("/dsp/2025-1/catalog/request", {"@context": CTX, "@type": "CatalogRequestMessage"}),
        (f"/dsp/2025-1/negotiations/{PID}/termination", {"@context": CTX}),
        ("/dsp/2025-1/transfers/request", {"@context": CTX}),
    ):
        pair = []
        for make in (token_untrusted, token_bad_signature):
            resp, _ = await call(client, "POST", path, make(), body)
            pair.append((resp.status_code, dict(resp.headers.items()), resp.json()))
        (s1, h1, b1), (s2, h2, b2) = pair
        assert s1 == s2 == 401
        assert h1[CORRELATION_HEADER.lower()] != h2[CORRELATION_HEADER.lower()]
        strip = {CORRELATION_HEADER.lower(), "content-length"}
        assert {k: v for k, v in h1.items() if k not in strip} == {
            k: v for k, v in h2.items() if k not in strip
        }
        # The same body but for the id in its reason.
        assert {**b1, "reason": None} == {**b2, "reason": None}
        assert ID_RE.sub("", b1["reason"][0]) == ID_RE.sub("", b2["reason"][0])
        answers.append(b1)
    assert len({a["@type"] for a in answers}) == 3


@pytest.mark.parametrize(
    ("path", "error_type"),
    [
        (f"/dsp/2025-1/negotiations/{PID}", "ContractNegotiationError"),
        (f"/dsp/2025-1/transfers/{PID}", "TransferError"),
    ],
)
@pytest.mark.parametrize("kind", list(TOKENS))
async def test_reading_a_process_without_a_valid_token_is_the_404_of_an_unknown_one(
    client: httpx.AsyncClient, path: str, error_type: str, kind: str
) -> None:
    make, reason = TOKENS[kind]
    resp, logs = await call(client, "GET", path, make())
    assert resp.status_code == 404, resp.text
    assert "www-authenticate" not in resp.headers
    body = resp.json()
    # The pid the caller named is echoed; the schema wants both, the path has the one.
    assert (body["providerPid"], body["consumerPid"]) == (PID, PID)
    assert validate_against_schema(body, error_type, V25) == [], body
    correlation = correlation_of(resp, body["reason"])
    assert body["reason"] == [f"not found (correlation id {correlation})"]
    assert_logged(logs, correlation, f"caller not authenticated: {reason}")


async def test_a_401_on_a_process_path_echoes_the_path_pid_and_invents_none(
    client: httpx.AsyncClient,
) -> None:
    resp, _ = await call(
        client, "POST", f"/dsp/2025-1/transfers/{PID}/completion", None, {"@context": CTX}
    )
    body = resp.json()
    assert resp.status_code == 401
    assert (body["providerPid"], body["consumerPid"]) == (PID, PID)
    assert validate_against_schema(body, "TransferError", V25) == [], body
    assert "urn:connector:unknown" not in resp.text

    # An opening request names no pid of ours, and its body is not read before the caller is
    # known: no pid is known, none is made up (decision 0002).
    resp, _ = await call(
        client, "POST", "/dsp/2025-1/negotiations/request", token_untrusted(), {"@context": CTX}
    )
    body = resp.json()
    assert resp.status_code == 401
    assert not {"providerPid", "consumerPid"} & body.keys(), body
    problems = validate_against_schema(body, "ContractNegotiationError", V25)
    assert sorted(problems) == [
        "/: 'consumerPid' is a required property",
        "/: 'providerPid' is a required property",
    ]

    # DSP 0.8: the same rules in its shape.
    resp, _ = await call(client, "GET", f"/dsp/0.8/negotiations/{PID}", None)
    body = resp.json()
    assert resp.status_code == 404
    assert (body["dspace:providerPid"], body["dspace:consumerPid"]) == (PID, PID)
    assert validate_against_schema(body, "ContractNegotiationError", DspVersion.V0_8) == []


async def test_management_401_is_generic_problem_json_with_the_correlation_id(
    client: httpx.AsyncClient,
) -> None:
    with structlog.testing.capture_logs() as logs:
        resp = await client.get("/management/v1/assets", headers={"X-Api-Key": KEY[:-1] + "x"})
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    correlation = problem["correlationId"]
    assert resp.headers[CORRELATION_HEADER] == correlation
    assert problem == {
        "type": "urn:connector:error:unauthorized",
        "title": "unauthorized",
        "status": 401,
        "detail": f"not authenticated (correlation id {correlation})",
        "errors": [f"not authenticated (correlation id {correlation})"],
        "correlationId": correlation,
    }
    assert "X-Api-Key" not in problem["detail"]
    assert_logged(logs, correlation, "missing or invalid X-Api-Key")


async def test_other_errors_keep_their_reasons_and_get_no_correlation_id(
    client: httpx.AsyncClient,
) -> None:
    resp = await client.get("/management/v1/no-such-route", headers={"X-Api-Key": KEY})
    assert resp.status_code == 404
    assert CORRELATION_HEADER not in resp.headers
    assert "correlationId" not in resp.json()
