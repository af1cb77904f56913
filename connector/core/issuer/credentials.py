"""Claims of the credentials the development issuer signs (VC 1.1 as JWT, `vc11-sl2021/jwt`;
decision 0024).

A credential JWT carries the registered claims (`iss`, `sub`, `jti`, `iat`, `nbf`, `exp`) and the
whole credential under `vc`, whose dates repeat the registered ones in RFC 3339. Every issued
credential points at its bit in the issuer's revocation list (`credentialStatus`); the list
itself is a credential of type `StatusList2021Credential` about `<list URL>#list`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

__all__ = [
    "MEMBERSHIP_CREDENTIAL",
    "STATUS_LIST_CREDENTIAL",
    "SUPPORTED_TYPES",
    "VC_CONTEXT",
    "CredentialClaims",
    "credential_claims",
    "rfc3339",
    "status_list_claims",
    "subject_fields",
]

VC_CONTEXT: Final = "https://www.w3.org/2018/credentials/v1"
VERIFIABLE_CREDENTIAL: Final = "VerifiableCredential"
MEMBERSHIP_CREDENTIAL: Final = "MembershipCredential"
STATUS_LIST_CREDENTIAL: Final = "StatusList2021Credential"
STATUS_LIST_ENTRY: Final = "StatusList2021Entry"
STATUS_PURPOSE: Final = "revocation"
#: Credential types this issuer signs (what `subject_fields` knows how to fill).
SUPPORTED_TYPES: Final = frozenset({MEMBERSHIP_CREDENTIAL})


def rfc3339(at: datetime) -> str:
    """`2026-01-02T03:04:05Z` (UTC, whole seconds)."""
    return at.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class CredentialClaims:
    """What one credential says, before signing."""

    issuer_did: str
    holder_did: str
    credential_id: str
    credential_type: str
    issued_at: datetime
    expires_at: datetime
    subject: Mapping[str, object]
    status_list_url: str
    status_index: int


def subject_fields(
    credential_type: str, *, data_space: str, member_since: datetime
) -> dict[str, object]:
    """The type-specific `credentialSubject` members.

    Raises:
        ValueError: a type this issuer does not sign.
    """
    if credential_type == MEMBERSHIP_CREDENTIAL:
        return {"memberOf": data_space, "since": rfc3339(member_since)}
    raise ValueError(f"unsupported credential type {credential_type!r}")


def credential_claims(c: CredentialClaims) -> dict[str, Any]:
    """The JWT claims of credential `c` (issuer, holder and dates in both forms)."""
    if c.expires_at <= c.issued_at:
        raise ValueError("a credential must expire after it is issued")
    status_id = f"{c.status_list_url}#{c.status_index}"
    vc = {
        "@context": [VC_CONTEXT],
        "id": c.credential_id,
        "type": [VERIFIABLE_CREDENTIAL, c.credential_type],
        "issuer": c.issuer_did,
        "issuanceDate": rfc3339(c.issued_at),
        "expirationDate": rfc3339(c.expires_at),
        "credentialSubject": {"id": c.holder_did, **c.subject},
        "credentialStatus": {
            "id": status_id,
            "type": STATUS_LIST_ENTRY,
            "statusPurpose": STATUS_PURPOSE,
            "statusListIndex": str(c.status_index),
            "statusListCredential": c.status_list_url,
        },
    }
    return _registered(c.issuer_did, c.holder_did, c.credential_id, c.issued_at, c.expires_at, vc)


def status_list_claims(
    issuer_did: str, list_url: str, encoded_list: str, issued_at: datetime, expires_at: datetime
) -> dict[str, Any]:
    """The JWT claims of the revocation list credential published at `list_url`."""
    vc = {
        "@context": [VC_CONTEXT],
        "id": list_url,
        "type": [VERIFIABLE_CREDENTIAL, STATUS_LIST_CREDENTIAL],
        "issuer": issuer_did,
        "issuanceDate": rfc3339(issued_at),
        "expirationDate": rfc3339(expires_at),
        "credentialSubject": {
            "id": f"{list_url}#list",
            "type": "StatusList2021",
            "statusPurpose": STATUS_PURPOSE,
            "encodedList": encoded_list,
        },
    }
    return _registered(issuer_did, f"{list_url}#list", list_url, issued_at, expires_at, vc)


def _registered(
    issuer: str,
    subject: str,
    jti: str,
    issued_at: datetime,
    expires_at: datetime,
    vc: dict[str, Any],
) -> dict[str, Any]:
    iat = int(issued_at.timestamp())
    return {
        "iss": issuer,
        "sub": subject,
        "jti": jti,
        "iat": iat,
        "nbf": iat,
        "exp": int(expires_at.timestamp()),
        "vc": vc,
    }
