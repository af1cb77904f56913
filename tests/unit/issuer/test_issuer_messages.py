"""Credential Issuance Protocol messages and credential claims (decision 0024)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connector.core.errors import BadRequestError
from connector.core.issuer.credentials import (
    CredentialClaims,
    credential_claims,
    status_list_claims,
    subject_fields,
)
from connector.core.issuer.messages import (
    DCP_CONTEXT,
    RequestedCredential,
    RequestStatus,
    credential_message,
    credential_status,
    parse_credential_request,
)

NOW = datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)


def request(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "@context": [DCP_CONTEXT],
        "type": "CredentialRequestMessage",
        "holderPid": "holder-1",
        "credentials": [{"credentialType": "MembershipCredential", "format": "vc1_0_jwt"}],
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def test_a_well_formed_request_is_read() -> None:
    parsed = parse_credential_request(request())
    assert parsed.holder_pid == "holder-1"
    assert parsed.credentials == (RequestedCredential("MembershipCredential", "vc1_0_jwt"),)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"@context": ["https://example.org/other"]}, "@context"),
        ({"type": "CredentialOfferMessage"}, "type"),
        ({"holderPid": None}, "holderPid"),
        ({"holderPid": "  "}, "holderPid"),
        ({"holderPid": "x" * 300}, "holderPid"),
        ({"credentials": []}, "credentials"),
        ({"credentials": "MembershipCredential"}, "credentials"),
        ({"credentials": ["MembershipCredential"]}, r"credentials\[0\]"),
        ({"credentials": [{"format": "vc1_0_jwt"}]}, r"credentials\[0\]\.credentialType"),
        ({"credentials": [{"credentialType": "X"}] * 17}, "more than 16"),
    ],
)
def test_a_malformed_request_is_a_bad_request_naming_the_field(
    changes: dict[str, Any], reason: str
) -> None:
    with pytest.raises(BadRequestError, match=reason):
        parse_credential_request(request(**changes))


def test_a_request_that_is_not_an_object_is_a_bad_request() -> None:
    with pytest.raises(BadRequestError):
        parse_credential_request(["CredentialRequestMessage"])


def test_status_and_credential_message_shapes() -> None:
    assert credential_status("urn:uuid:i", "h", RequestStatus.REJECTED) == {
        "@context": [DCP_CONTEXT],
        "type": "CredentialStatus",
        "issuerPid": "urn:uuid:i",
        "holderPid": "h",
        "status": "REJECTED",
    }
    message = credential_message("urn:uuid:i", "h", [("MembershipCredential", "a.b.c")])
    assert message["type"] == "CredentialMessage"
    assert message["status"] == "ISSUED"
    assert message["credentials"] == [
        {"credentialType": "MembershipCredential", "format": "vc1_0_jwt", "payload": "a.b.c"}
    ]


def test_membership_credential_claims_follow_the_wire_contract() -> None:
    claims = credential_claims(
        CredentialClaims(
            issuer_did="did:web:issuer.example",
            holder_did="did:web:holder.example",
            credential_id="urn:uuid:1",
            credential_type="MembershipCredential",
            issued_at=NOW,
            expires_at=NOW + timedelta(days=2),
            subject=subject_fields("MembershipCredential", data_space="ds", member_since=NOW),
            status_list_url="https://issuer.example/status/l1",
            status_index=42,
        )
    )
    assert claims["iss"] == "did:web:issuer.example"
    assert claims["sub"] == "did:web:holder.example"
    assert claims["jti"] == "urn:uuid:1"
    assert claims["nbf"] == claims["iat"] == int(NOW.timestamp())
    assert claims["exp"] == int((NOW + timedelta(days=2)).timestamp())
    vc = claims["vc"]
    assert vc["type"] == ["VerifiableCredential", "MembershipCredential"]
    assert vc["issuanceDate"] == "2026-03-01T08:30:15Z"
    assert vc["expirationDate"] == "2026-03-03T08:30:15Z"
    assert vc["credentialSubject"] == {
        "id": "did:web:holder.example",
        "memberOf": "ds",
        "since": "2026-03-01T08:30:15Z",
    }
    assert vc["credentialStatus"] == {
        "id": "https://issuer.example/status/l1#42",
        "type": "StatusList2021Entry",
        "statusPurpose": "revocation",
        "statusListIndex": "42",
        "statusListCredential": "https://issuer.example/status/l1",
    }


def test_status_list_claims_describe_the_list() -> None:
    claims = status_list_claims(
        "did:web:i.example", "https://i.example/status/l", "H4sI", NOW, NOW + timedelta(minutes=5)
    )
    assert claims["exp"] - claims["iat"] == 300
    assert claims["vc"]["type"] == ["VerifiableCredential", "StatusList2021Credential"]
    assert claims["vc"]["credentialSubject"] == {
        "id": "https://i.example/status/l#list",
        "type": "StatusList2021",
        "statusPurpose": "revocation",
        "encodedList": "H4sI",
    }


def test_unsupported_types_and_backwards_validity_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        subject_fields("DriverLicence", data_space="ds", member_since=NOW)
    with pytest.raises(ValueError, match="expire"):
        credential_claims(
            CredentialClaims("i", "h", "c", "MembershipCredential", NOW, NOW, {}, "u", 0)
        )
