"""The pure half of the DCP holder: scopes, the Presentation and Storage API messages, the facts
of a VC JWT's claims (connector.core.identity.dcp_holder; decision 0023)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from connector.core.errors import BadRequestError
from connector.core.identity.dcp import DCP_CONTEXT, scope_for
from connector.core.identity.dcp_holder import (
    UnsupportedQueryError,
    credential_facts,
    granted_types,
    parse_credential_message,
    parse_presentation_query,
    poll_outcome,
)

HOLDER = "did:web:holder.example"
ISSUER = "did:web:issuer.example"


def test_only_scopes_both_asked_for_and_granted_name_types_to_present() -> None:
    alias = "org.eclipse.dspace.dcp.vc.type:PcfCredential"  # the spec's two-part form
    asked = [scope_for("A"), scope_for("B"), alias, "openid", scope_for("A")]
    granted = [scope_for("A"), alias, "openid", scope_for("C")]
    assert granted_types(asked, granted) == ["A", "PcfCredential"]
    assert granted_types([scope_for("B")], granted) == []
    assert granted_types([], granted) == []


def _query(**fields: Any) -> dict[str, Any]:
    return {"@context": [DCP_CONTEXT], "type": "PresentationQueryMessage", **fields}


def test_a_scope_query_yields_its_scopes_once_each() -> None:
    scopes = [scope_for("A"), scope_for("B"), scope_for("A")]
    assert parse_presentation_query(_query(scope=scopes)) == (scope_for("A"), scope_for("B"))


@pytest.mark.parametrize(
    "body",
    [
        _query(),
        _query(scope=["x"], presentationDefinition={}),
        _query(scope=[]),
        _query(scope="x"),
        _query(scope=[""]),
        _query(scope=[1]),
        {"type": "PresentationQueryMessage", "scope": ["x"]},
        {"@context": [DCP_CONTEXT], "type": "CredentialMessage", "scope": ["x"]},
        ["not", "an", "object"],
    ],
)
def test_malformed_queries_are_bad_requests(body: Any) -> None:
    with pytest.raises(BadRequestError):
        parse_presentation_query(body)


def test_a_presentation_definition_query_is_unsupported() -> None:
    with pytest.raises(UnsupportedQueryError):
        parse_presentation_query(_query(presentationDefinition={"id": "pd"}))


def _message(**fields: Any) -> dict[str, Any]:
    return {
        "@context": [DCP_CONTEXT],
        "type": "CredentialMessage",
        "issuerPid": "i-1",
        "holderPid": "h-1",
        "status": "ISSUED",
        "credentials": [{"credentialType": "X", "format": "vc1_0_jwt", "payload": "a.b.c"}],
        **fields,
    }


def test_a_credential_message_yields_its_payloads() -> None:
    message = parse_credential_message(_message())
    assert (message.issuer_pid, message.holder_pid, message.status) == ("i-1", "h-1", "ISSUED")
    assert message.payloads == ("a.b.c",)
    rejected = parse_credential_message(_message(status="REJECTED", credentials=[]))
    assert rejected.payloads == ()


@pytest.mark.parametrize(
    "fields",
    [
        {"status": "PENDING"},
        {"credentials": []},
        {"credentials": [{"format": "ldp_vc", "payload": "a.b.c"}]},
        {"credentials": [{"format": "vc1_0_jwt", "payload": "not-a-jwt"}]},
        {"holderPid": ""},
        {"issuerPid": None},
    ],
)
def test_malformed_credential_messages_are_bad_requests(fields: dict[str, Any]) -> None:
    with pytest.raises(BadRequestError):
        parse_credential_message(_message(**fields))


def _claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": HOLDER,
        "jti": "urn:uuid:1",
        "nbf": 1_700_000_000,
        "exp": 1_800_000_000,
        "vc": {
            "type": ["VerifiableCredential", "MembershipCredential"],
            "credentialSubject": {"id": HOLDER},
        },
    }
    claims.update(changes)
    return claims


def test_credential_facts_read_the_jwt_claims() -> None:
    facts = credential_facts(_claims())
    assert facts.credential_id == "urn:uuid:1"
    assert facts.types == ("MembershipCredential",)
    assert facts.issuer_did == ISSUER
    assert facts.subject_did == HOLDER
    assert facts.issued_at == datetime.fromtimestamp(1_700_000_000, UTC)
    assert facts.expires_at == datetime.fromtimestamp(1_800_000_000, UTC)
    without_sub = _claims()
    del without_sub["sub"]
    assert credential_facts(without_sub).subject_did == HOLDER


@pytest.mark.parametrize(
    "changes",
    [
        {"vc": None},
        {"vc": {"type": ["MembershipCredential"]}},
        {"vc": {"type": ["VerifiableCredential"]}},
        {"iss": "https://issuer.example"},
        {"jti": None},
        {"nbf": None},
    ],
)
def test_incomplete_credentials_are_bad_requests(changes: dict[str, Any]) -> None:
    claims = {k: v for k, v in _claims(**changes).items() if v is not None}
    if changes.get("jti", "") is None:
        claims["vc"] = {**claims["vc"], "id": None}
    with pytest.raises(BadRequestError):
        credential_facts(claims)


def test_a_poll_ends_a_request_only_on_a_held_credential_or_a_rejection() -> None:
    assert poll_outcome(["urn:uuid:1"], "RECEIVED") == "ISSUED"
    assert poll_outcome(["urn:uuid:1"], "REJECTED") == "ISSUED"
    assert poll_outcome([], "REJECTED") == "REJECTED"
    assert poll_outcome([], "ISSUED") is None  # the write-back is still on its way
    assert poll_outcome([], "UNKNOWN") is None
