"""DCP verifier rules (connector.core.identity.dcp): every branch, with `now` injected."""

from __future__ import annotations

import base64
import gzip
from datetime import UTC, datetime
from typing import Any

import pytest

from connector.core.errors import UnauthorizedError
from connector.core.identity.dcp import (
    DCP_CONTEXT,
    DEFAULT_SCOPES,
    MIN_STATUS_LIST_BITS,
    VC_CONTEXT_V1,
    Standing,
    StatusEntry,
    VerifiedCredential,
    check_presentation_claims,
    check_requested_types,
    credential_claims,
    credential_from_claims,
    credential_types_of,
    presentation_query,
    presentations_of,
    scope_for,
    scope_type,
    standing_of,
    status_bit,
    status_list_bits,
)
from connector.core.policy import PolicyContext, Scope, evaluate, parse_policy
from connector.core.policy.functions import is_credential_operand

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
T = int(NOW.timestamp())
HOLDER = "did:web:holder.example"
VERIFIER = "did:web:verifier.example"
ISSUER = "did:web:issuer.example"
JWT = "a.b.c"


# --- scopes and the query --------------------------------------------------------------


def test_default_scope_is_the_tck_membership_scope() -> None:
    assert DEFAULT_SCOPES == ("org.eclipse.dspace.dcp.vc.type:MembershipCredential:read",)
    assert scope_for("MembershipCredential") == DEFAULT_SCOPES[0]
    assert scope_type(DEFAULT_SCOPES[0]) == "MembershipCredential"
    assert scope_type("org.eclipse.dspace.dcp.vc.type:Member") == "Member"


@pytest.mark.parametrize(
    "scope",
    [
        "org.eclipse.edc.vc.type:MembershipCredential:read",
        "org.eclipse.dspace.dcp.vc.type:",
        "org.eclipse.dspace.dcp.vc.type::read",
        "org.eclipse.dspace.dcp.vc.type:X:write",
        "org.eclipse.dspace.dcp.vc.type:X:read:more",
    ],
)
def test_bad_scopes_are_refused(scope: str) -> None:
    with pytest.raises(ValueError, match="scope"):
        scope_type(scope)


def test_presentation_query_message() -> None:
    assert presentation_query(DEFAULT_SCOPES) == {
        "@context": [DCP_CONTEXT],
        "type": "PresentationQueryMessage",
        "scope": list(DEFAULT_SCOPES),
    }
    with pytest.raises(ValueError, match="at least one"):
        presentation_query([])
    with pytest.raises(ValueError, match="scope"):
        presentation_query(["nope"])


def response(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "@context": [DCP_CONTEXT],
        "type": "PresentationResponseMessage",
        "presentation": [JWT],
    }
    return body | overrides


def test_presentations_of_a_response() -> None:
    assert presentations_of(response()) == [JWT]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([], "not a PresentationResponseMessage"),
        (response(type="Other"), "not a PresentationResponseMessage"),
        (response(**{"@context": "x"}), "DCP context"),
        (response(presentation=[]), "no presentation"),
        (response(presentation="a.b.c"), "no presentation"),
        (response(presentation=[{"@context": []}]), "profile"),
        (response(presentation=["a.b"]), "profile"),
    ],
)
def test_bad_responses_are_refused(body: object, reason: str) -> None:
    with pytest.raises(UnauthorizedError, match=reason):
        presentations_of(body)


# --- the VP ----------------------------------------------------------------------------


def vp_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": HOLDER,
        "sub": HOLDER,
        "aud": VERIFIER,
        "jti": "urn:uuid:vp",
        "iat": T,
        "nbf": T,
        "exp": T + 300,
        "vp": {
            "@context": [VC_CONTEXT_V1],
            "type": ["VerifiablePresentation"],
            "holder": HOLDER,
            "verifiableCredential": [JWT],
        },
    }
    return claims | overrides


def check_vp(claims: dict[str, Any]) -> list[str]:
    return check_presentation_claims(
        claims, holder=HOLDER, verifier=VERIFIER, now=NOW, leeway=5, max_lifetime=300
    )


def test_a_good_presentation_yields_its_credentials() -> None:
    assert check_vp(vp_claims()) == [JWT]
    assert check_vp(vp_claims(aud=[VERIFIER, "x"])) == [JWT]
    without_holder = vp_claims()
    del without_holder["vp"]["holder"]
    assert check_vp(without_holder) == [JWT]
    assert check_vp(vp_claims(iat=None, nbf=T - 10, exp=T + 100)) == [JWT]
    assert check_vp(vp_claims(iat=None, nbf=None, exp=T + 100)) == [JWT]


def vp_with(**vp: Any) -> dict[str, Any]:
    claims = vp_claims()
    claims["vp"] = claims["vp"] | vp
    return claims


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        (vp_claims(iss="did:web:other"), "not issued by the caller"),
        (vp_claims(sub="did:web:other"), "not issued by the caller"),
        (vp_claims(aud="did:web:someone"), "aud"),
        (vp_claims(aud=None), "aud"),
        (vp_claims(exp=None), "exp"),
        (vp_claims(exp=True), "exp"),
        (vp_claims(exp=T - 10, iat=T - 100, nbf=None), "expired"),
        (vp_claims(nbf=T + 60), "not yet valid"),
        (vp_claims(exp=T + 3600), "too long"),
        (vp_claims(iat=None, nbf=None, exp=T + 3600), "too long"),
        (vp_claims(vp="x"), "no 'vp'"),
        (vp_with(type=["Other"]), "not a VerifiablePresentation"),
        (vp_with(type=3), "not a VerifiablePresentation"),
        (vp_with(holder="did:web:other"), "holder is not the caller"),
        (vp_with(verifiableCredential=[{"id": "x"}]), "profile"),
        (vp_with(verifiableCredential="a.b.c"), "profile"),
    ],
)
def test_bad_presentations_are_refused(claims: dict[str, Any], reason: str) -> None:
    with pytest.raises(UnauthorizedError, match=reason):
        check_vp(claims)


# --- the VC ----------------------------------------------------------------------------


def vc(**vc_overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "@context": [VC_CONTEXT_V1],
        "id": "urn:uuid:c1",
        "type": ["VerifiableCredential", "MembershipCredential"],
        "issuer": ISSUER,
        "issuanceDate": "2025-01-01T00:00:00Z",
        "expirationDate": "2027-01-01T00:00:00Z",
        "credentialSubject": {"id": HOLDER, "memberOf": "dataspace"},
        "credentialStatus": {
            "id": "https://issuer.example/status/1#7",
            "type": "StatusList2021Entry",
            "statusPurpose": "revocation",
            "statusListIndex": "7",
            "statusListCredential": "https://issuer.example/status/1",
        },
    }
    return body | vc_overrides


def vc_claims(vc_body: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": HOLDER,
        "jti": "urn:uuid:c1",
        "iat": T - 100,
        "nbf": T - 100,
        "exp": T + 10_000,
        "vc": vc() if vc_body is None else vc_body,
    }
    return claims | overrides


def test_a_good_credential() -> None:
    credential = credential_from_claims(vc_claims(), issuer=ISSUER, holder=HOLDER)
    assert credential.id == "urn:uuid:c1"
    assert credential.types == ("MembershipCredential",)
    assert credential.subject == {"id": HOLDER, "memberOf": "dataspace"}
    assert credential.not_before == T - 100  # the later of nbf and issuanceDate
    assert credential.expires_at == T + 10_000
    assert credential.status == StatusEntry("https://issuer.example/status/1", 7)
    assert credential.standing is Standing.ACTIVE
    assert credential_types_of(vc_claims()) == ["MembershipCredential"]


def test_credential_variants_that_pass() -> None:
    bare = vc(issuer={"id": ISSUER}, credentialStatus=None)
    del bare["issuanceDate"], bare["expirationDate"]
    claims = vc_claims(bare, exp=None, nbf=None)
    del claims["sub"], claims["jti"]
    credential = credential_from_claims(claims, issuer=ISSUER, holder=HOLDER)
    assert (credential.id, credential.not_before, credential.expires_at) == (
        "urn:uuid:c1",
        None,
        None,
    )
    assert credential.status is None
    suspension = {
        "type": "StatusList2021Entry",
        "statusPurpose": "suspension",
        "statusListIndex": "1",
        "statusListCredential": "https://issuer.example/s",
    }
    listed = credential_from_claims(
        vc_claims(vc(credentialStatus=[suspension])), issuer=ISSUER, holder=HOLDER
    )
    assert listed.status is None


def test_credential_types_of_malformed_claims() -> None:
    assert credential_types_of({"vc": "x"}) == []
    assert credential_types_of({"vc": {"type": 3}}) == []
    assert credential_types_of({"vc": {"type": "VerifiableCredential"}}) == []


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        (vc_claims(vc=None), "no 'vc'"),
        (vc_claims(vc(**{"@context": ["https://www.w3.org/ns/credentials/v2"]})), "VC 1.1"),
        (vc_claims(vc(**{"@context": []})), "VC 1.1"),
        (vc_claims(iss="did:web:other"), "issuer does not match"),
        (vc_claims(vc(issuer="did:web:other")), "issuer does not match"),
        (vc_claims(vc(credentialSubject=[{"id": HOLDER}])), "single credentialSubject"),
        (vc_claims(vc(credentialSubject={"id": "did:web:other"})), "not the presentation holder"),
        (vc_claims(sub="did:web:other"), "not the presentation holder"),
        (vc_claims(vc(type=["VerifiableCredential"])), "types missing"),
        (vc_claims(vc(type=["MembershipCredential"])), "types missing"),
        (vc_claims(jti=""), "no id"),
        (vc_claims(exp="soon"), "'exp'"),
        (vc_claims(vc(issuanceDate=5)), "issuanceDate is not a date-time"),
        (vc_claims(vc(issuanceDate="yesterday")), "issuanceDate is not a date-time"),
        (vc_claims(vc(expirationDate="2027-01-01T00:00:00")), "no time zone"),
        (vc_claims(vc(credentialStatus=["x"])), "credentialStatus is not an object"),
        (vc_claims(vc(credentialStatus={"type": "BitstringStatusListEntry"})), "not supported"),
        (
            vc_claims(
                vc(credentialStatus={"type": "StatusList2021Entry", "statusPurpose": "revocation"})
            ),
            "no statusListCredential",
        ),
        (
            vc_claims(
                vc(
                    credentialStatus={
                        "type": "StatusList2021Entry",
                        "statusPurpose": "revocation",
                        "statusListCredential": "https://x",
                        "statusListIndex": 7,
                    }
                )
            ),
            "statusListIndex",
        ),
    ],
)
def test_bad_credentials_are_refused(claims: dict[str, Any], reason: str) -> None:
    with pytest.raises(UnauthorizedError, match=reason):
        credential_from_claims(claims, issuer=ISSUER, holder=HOLDER)


def credential(**overrides: Any) -> VerifiedCredential:
    base: dict[str, Any] = {
        "id": "urn:uuid:c1",
        "issuer": ISSUER,
        "types": ("MembershipCredential",),
        "subject": {"id": HOLDER},
        "not_before": T - 100,
        "expires_at": T + 100,
        "status": None,
    }
    return VerifiedCredential(**(base | overrides))


@pytest.mark.parametrize(
    ("cred", "trusted", "revoked", "standing"),
    [
        (credential(), {"MembershipCredential"}, False, Standing.ACTIVE),
        (credential(not_before=None, expires_at=None), {"MembershipCredential"}, False, "active"),
        (credential(), {"OtherCredential"}, False, Standing.UNTRUSTED_ISSUER),
        (
            credential(types=("MembershipCredential", "X")),
            {"MembershipCredential"},
            False,
            Standing.UNTRUSTED_ISSUER,
        ),
        (credential(expires_at=T - 10), {"MembershipCredential"}, False, Standing.EXPIRED),
        (credential(expires_at=T - 2), {"MembershipCredential"}, False, Standing.ACTIVE),
        (credential(not_before=T + 60), {"MembershipCredential"}, False, Standing.NOT_YET_VALID),
        (credential(), {"MembershipCredential"}, True, Standing.REVOKED),
    ],
)
def test_standing(
    cred: VerifiedCredential, trusted: set[str], revoked: bool, standing: Standing
) -> None:
    assert standing_of(cred, trusted_types=trusted, revoked=revoked, now=NOW, leeway=5) == standing


def test_requested_types_present_extras_allowed() -> None:
    creds = [credential(), credential(types=("QualityCredential",))]
    check_requested_types(creds, DEFAULT_SCOPES)
    with pytest.raises(UnauthorizedError, match="missing: DismantlerCredential"):
        check_requested_types(creds, [*DEFAULT_SCOPES, scope_for("DismantlerCredential")])
    with pytest.raises(UnauthorizedError, match="missing: MembershipCredential"):
        check_requested_types([], DEFAULT_SCOPES)


# --- status lists ----------------------------------------------------------------------


def encoded(bits: bytes) -> str:
    return base64.urlsafe_b64encode(gzip.compress(bits)).decode().rstrip("=")


def test_status_bits_read_left_to_right() -> None:
    raw = bytearray(MIN_STATUS_LIST_BITS // 8)
    raw[0] = 0b1000_0001
    raw[2] = 0b0010_0000
    bits = status_list_bits(encoded(bytes(raw)))
    assert [i for i in range(32) if status_bit(bits, i)] == [0, 7, 18]
    assert not status_bit(bits, MIN_STATUS_LIST_BITS - 1)
    padded = base64.urlsafe_b64encode(gzip.compress(bytes(raw))).decode()
    assert status_list_bits(padded) == bits


@pytest.mark.parametrize(
    ("encoded_list", "reason"),
    [
        ("!!!", "not base64url GZIP"),
        (base64.urlsafe_b64encode(b"not gzip").decode(), "not base64url GZIP"),
        (encoded(bytes(16))[:12], "not base64url GZIP"),
        (encoded(bytes(16)), "shorter than 131072"),
        (encoded(bytes(2 << 20)), "too large"),
    ],
)
def test_bad_status_lists(encoded_list: str, reason: str) -> None:
    with pytest.raises(UnauthorizedError, match=reason):
        status_list_bits(encoded_list)


def test_status_index_outside_the_list() -> None:
    bits = status_list_bits(encoded(bytes(MIN_STATUS_LIST_BITS // 8)))
    for index in (-1, MIN_STATUS_LIST_BITS):
        with pytest.raises(UnauthorizedError, match="outside"):
            status_bit(bits, index)


# --- policy claims ---------------------------------------------------------------------


def test_credential_claims_from_standings_and_subject_fields() -> None:
    member = credential(subject={"id": HOLDER, "memberOf": "ds", "tier": ["gold", 2, {"x": 1}]})
    revoked_member = credential(id="urn:uuid:old", standing=Standing.REVOKED)
    framework = credential(
        id="urn:uuid:q",
        types=("QualityFrameworkCredential",),
        subject={"id": HOLDER, "contractVersion": "1.0"},
        standing=Standing.REVOKED,
    )
    claims = credential_claims([revoked_member, member, framework])
    assert claims == {
        "MembershipCredential": "active",
        "MembershipCredential.memberOf": ["ds"],
        "MembershipCredential.tier": ["gold", 2],
        "QualityFrameworkCredential": "revoked",
        "credential_types": ["MembershipCredential"],
        "membership": "active",
    }
    assert credential_claims([]) == {"credential_types": []}
    for pair in (
        [credential(standing=Standing.EXPIRED), credential()],
        [credential(), credential(standing=Standing.EXPIRED)],
    ):
        assert credential_claims(pair)["MembershipCredential"] == "active"


def decide(claims: dict[str, Any], left: str, right: Any) -> tuple[bool, list[str]]:
    policy = parse_policy(
        {
            "@id": "urn:uuid:p",
            "permission": [
                {
                    "action": "use",
                    "constraint": [{"leftOperand": left, "operator": "eq", "rightOperand": right}],
                }
            ],
        }
    )
    ctx = PolicyContext(scope=Scope.NEGOTIATION, participant_id=HOLDER, now=NOW, claims=claims)
    decision = evaluate(policy, ctx)
    return decision.allowed, decision.reasons


def test_credential_left_operands_admit_members_and_say_why_not() -> None:
    member = credential_claims([credential()])
    revoked = credential_claims([credential(standing=Standing.REVOKED)])
    assert decide(member, "MembershipCredential", "active")[0]
    allowed, reasons = decide(revoked, "MembershipCredential", "active")
    assert not allowed
    assert "revoked" in " ".join(reasons)
    allowed, reasons = decide(credential_claims([]), "MembershipCredential", "active")
    assert not allowed
    framework = credential_claims(
        [credential(types=("QualityFrameworkCredential",), subject={"id": HOLDER, "v": "1.0"})]
    )
    assert decide(framework, "QualityFrameworkCredential.v", "1.0")[0]
    assert not decide(framework, "odrl:QualityFrameworkCredential.v", "2.0")[0]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("MembershipCredential", True),
        ("QualityFrameworkCredential.contract_version", True),
        ("Credential", False),
        ("MembershipCredential.", False),
        ("Membership-Credential", False),
        ("membership", False),
        ("MembershipCredential.a.b", False),
    ],
)
def test_credential_operand_names(name: str, expected: bool) -> None:
    assert is_credential_operand(name) is expected
