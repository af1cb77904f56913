"""PresentationVerifier's JWT and DID-document handling that needs no network."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey

from connector.core.errors import UnauthorizedError
from connector.core.identity.dcp import DEFAULT_SCOPES
from connector.http.outbound import GuardedHttp
from connector.identity.did import MemoryDidSource, build_did_document
from connector.identity.keys import KeyEntry, KeyRing, generate_key, key_id
from connector.identity.presentations import PresentationVerifier, credential_service_url
from connector.identity.trust import TrustList

NOW = datetime(2026, 1, 1, tzinfo=UTC)
HOLDER = "did:web:holder.example"
US = "did:web:verifier.example"


def ring() -> KeyRing:
    key = generate_key()
    return KeyRing(current=KeyEntry(key=key, key_id=key_id(key)))


SERVICE = {"type": "CredentialService", "serviceEndpoint": "https://holder.example/dcp"}


@pytest.mark.parametrize(
    ("services", "expected"),
    [
        ([SERVICE], "https://holder.example/dcp"),
        (
            [{"type": "CatalogService", "serviceEndpoint": "https://x"}, "junk", SERVICE],
            "https://holder.example/dcp",
        ),
        ([SERVICE, {**SERVICE, "serviceEndpoint": "https://second"}], "https://holder.example/dcp"),
    ],
)
def test_the_first_credential_service_is_used(services: Any, expected: str) -> None:
    assert credential_service_url({"service": services}) == expected


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"service": "x"},
        {"service": [{"type": "CredentialService"}]},
        {"service": [{"type": "CredentialService", "serviceEndpoint": {"uri": "x"}}]},
        {"service": [{"type": "CredentialService", "serviceEndpoint": ""}]},
    ],
)
def test_no_usable_credential_service_is_refused(document: dict[str, Any]) -> None:
    with pytest.raises(UnauthorizedError, match="no CredentialService"):
        credential_service_url(document)


@pytest.fixture
async def verifier() -> AsyncIterator[tuple[PresentationVerifier, KeyRing]]:
    keys = ring()
    source = MemoryDidSource({HOLDER: build_did_document(HOLDER, [keys.current])})
    async with GuardedHttp() as http:
        yield (
            PresentationVerifier(
                source, http, ring(), US, TrustList(), lambda: NOW, scopes=DEFAULT_SCOPES
            ),
            keys,
        )


def b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


async def test_a_good_signature_yields_the_claims(
    verifier: tuple[PresentationVerifier, KeyRing],
) -> None:
    presentations, keys = verifier
    header = {"alg": "ES256", "kid": f"{HOLDER}#{keys.current.key_id}"}
    token = jwt.encode(header, {"iss": HOLDER}, keys.current.key, algorithms=["ES256"])
    assert await presentations._signed(token, HOLDER, "authentication") == {"iss": HOLDER}


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda keys: "not-a-jwt", "malformed JWT"),
        (lambda keys: f"{b64({'alg': 'none'})}.{b64({})}.", "header not allowed"),
        (
            lambda keys: jwt.encode(
                {"alg": "HS256"}, {}, OctKey.import_key(b"k" * 32), algorithms=["HS256"]
            ),
            "header not allowed",
        ),
        (
            lambda keys: jwt.encode(
                {"alg": "ES256", "jku": "https://evil"}, {}, keys.current.key, algorithms=["ES256"]
            ),
            "header not allowed",
        ),
        (
            lambda keys: jwt.encode(
                {"alg": "ES256", "kid": "did:web:other#k"},
                {},
                keys.current.key,
                algorithms=["ES256"],
            ),
            "kid does not belong",
        ),
        (
            lambda keys: jwt.encode(
                {"alg": "ES256", "kid": f"{HOLDER}#unknown"},
                {},
                keys.current.key,
                algorithms=["ES256"],
            ),
            "signing key not found",
        ),
        (
            lambda keys: (
                f"{b64({'alg': 'EdDSA', 'kid': f'{HOLDER}#{keys.current.key_id}'})}.{b64({})}.c2ln"
            ),
            "algorithm does not match",
        ),
    ],
    ids=["malformed", "none", "hs256", "jku", "foreign-kid", "unknown-kid", "alg-mismatch"],
)
async def test_bad_jwts_are_refused(
    verifier: tuple[PresentationVerifier, KeyRing], make: Any, reason: str
) -> None:
    presentations, keys = verifier
    with pytest.raises(UnauthorizedError, match=reason):
        await presentations._signed(make(keys), HOLDER, "authentication")
