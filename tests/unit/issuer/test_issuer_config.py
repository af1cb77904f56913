"""The issuer's DID from its public URL, and the holder's storage endpoint from a DID document
(decision 0024)."""

import pytest

from connector.issuer.config import IssuerConfigError, did_for_url
from connector.issuer.writeback import credential_service_url


@pytest.mark.parametrize(
    ("url", "did", "base"),
    [
        ("http://127.0.0.1:7100", "did:web:127.0.0.1%3A7100", "http://127.0.0.1:7100"),
        ("http://127.0.0.1:7100/", "did:web:127.0.0.1%3A7100", "http://127.0.0.1:7100"),
        ("https://Issuer.Example", "did:web:issuer.example", "https://issuer.example"),
        (
            "https://issuer.example:8443/ds/issuer/",
            "did:web:issuer.example%3A8443:ds:issuer",
            "https://issuer.example:8443/ds/issuer",
        ),
    ],
)
def test_the_did_follows_the_public_url(url: str, did: str, base: str) -> None:
    assert did_for_url(url) == (did, base)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://issuer.example",
        "issuer.example",
        "https://issuer.example/?x=1",
        "https://issuer.example/#f",
        "https://user:pw@issuer.example",
        "https://issuer.example/a/../b",
    ],
)
def test_a_url_that_makes_no_did_web_is_refused(url: str) -> None:
    with pytest.raises(IssuerConfigError):
        did_for_url(url)


def test_the_credential_service_endpoint_is_taken_from_the_did_document() -> None:
    document = {
        "service": [
            {"type": "DataService", "serviceEndpoint": "https://h.example/dsp"},
            {"type": ["CredentialService"], "serviceEndpoint": "https://h.example/cs/"},
        ]
    }
    assert credential_service_url(document) == "https://h.example/cs"
    assert credential_service_url({"service": [{"type": "CredentialService"}]}) is None
    assert credential_service_url({"service": "CredentialService"}) is None
    assert credential_service_url({}) is None
