"""DCP 1.0 holder side, the pure part: scopes, the Presentation and Storage API messages, and the
facts of a VC JWT (decision 0023; identity.md §1).

Nothing here checks a signature: `connector.identity.credentials` verifies, then asks these
functions what the (verified) claims say.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from connector.core.errors import BadRequestError
from connector.core.identity.dcp import DCP_CONTEXT, scope_type

__all__ = [
    "CREDENTIAL_FORMAT",
    "VC_CONTEXT",
    "CredentialFacts",
    "CredentialMessage",
    "UnsupportedQueryError",
    "credential_facts",
    "granted_types",
    "parse_credential_message",
    "parse_presentation_query",
    "poll_outcome",
    "unverified_claims",
]

VC_CONTEXT: Final = "https://www.w3.org/2018/credentials/v1"
CREDENTIAL_FORMAT: Final = "vc1_0_jwt"
_MAX_SCOPES: Final = 32
_MAX_CREDENTIALS: Final = 32


class UnsupportedQueryError(Exception):
    """A query by `presentationDefinition` (DIF Presentation Exchange), which we do not serve."""


def granted_types(asked: Sequence[str], granted: Sequence[str]) -> list[str]:
    """The credential types of the scopes both asked for and granted, in the order asked; a
    scope that names no credential type (`connector.core.identity.dcp.scope_type`) is skipped."""
    allowed = set(granted)
    types: list[str] = []
    for scope in asked:
        if scope not in allowed:
            continue
        try:
            credential_type = scope_type(scope)
        except ValueError:
            continue
        if credential_type not in types:
            types.append(credential_type)
    return types


def _message(body: object, message_type: str) -> Mapping[str, object]:
    if not isinstance(body, Mapping):
        raise BadRequestError(f"a {message_type} must be a JSON object")
    kind = body.get("type", body.get("@type"))
    if kind != message_type:
        raise BadRequestError(f"expected type {message_type}", pointer="/type")
    context = body.get("@context")
    if not isinstance(context, list) or DCP_CONTEXT not in context:
        raise BadRequestError(f"@context must list {DCP_CONTEXT}", pointer="/@context")
    return body


def parse_presentation_query(body: object) -> tuple[str, ...]:
    """The scopes a PresentationQueryMessage asks for (DCP 1.0 § 5.4.1).

    Raises:
        BadRequestError: not such a message; both or neither of `scope` and
            `presentationDefinition`; an empty or malformed `scope`.
        UnsupportedQueryError: `presentationDefinition` alone (answered 501).
    """
    message = _message(body, "PresentationQueryMessage")
    has_scope = "scope" in message
    has_definition = "presentationDefinition" in message
    if has_scope == has_definition:
        raise BadRequestError("exactly one of scope and presentationDefinition is required")
    if has_definition:
        raise UnsupportedQueryError("presentationDefinition queries are not supported")
    scopes = message["scope"]
    if not isinstance(scopes, list) or not scopes:
        raise BadRequestError("scope must be a non-empty list", pointer="/scope")
    if len(scopes) > _MAX_SCOPES or not all(isinstance(s, str) and s for s in scopes):
        raise BadRequestError(f"scope must hold 1 to {_MAX_SCOPES} strings", pointer="/scope")
    return tuple(dict.fromkeys(str(s) for s in scopes))


@dataclass(frozen=True, slots=True)
class CredentialMessage:
    """A CredentialMessage from an issuer (Storage API, DCP 1.0 § 6.5.1)."""

    issuer_pid: str
    holder_pid: str
    status: str
    payloads: tuple[str, ...]


def _pid(message: Mapping[str, object], name: str) -> str:
    value = message.get(name)
    if not isinstance(value, str) or not value or len(value) > 256:
        raise BadRequestError(f"{name} must be a non-empty string", pointer=f"/{name}")
    return value


def parse_credential_message(body: object) -> CredentialMessage:
    """The VC JWTs (format `vc1_0_jwt`) a CredentialMessage delivers, or its rejection.

    Raises:
        BadRequestError: not such a message, an unknown status or format, no credentials.
    """
    message = _message(body, "CredentialMessage")
    status = message.get("status", "ISSUED")
    if status not in ("ISSUED", "REJECTED"):
        raise BadRequestError("status must be ISSUED or REJECTED", pointer="/status")
    entries = message.get("credentials", [])
    if not isinstance(entries, list) or len(entries) > _MAX_CREDENTIALS:
        raise BadRequestError("credentials must be a list", pointer="/credentials")
    payloads: list[str] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or entry.get("format") != CREDENTIAL_FORMAT:
            raise BadRequestError(
                f"only format {CREDENTIAL_FORMAT} is supported", pointer=f"/credentials/{i}/format"
            )
        payload = entry.get("payload")
        if not isinstance(payload, str) or payload.count(".") != 2:
            raise BadRequestError(
                "payload must be a compact JWT", pointer=f"/credentials/{i}/payload"
            )
        payloads.append(payload)
    if status == "ISSUED" and not payloads:
        raise BadRequestError("an ISSUED CredentialMessage carries credentials")
    return CredentialMessage(
        issuer_pid=_pid(message, "issuerPid"),
        holder_pid=_pid(message, "holderPid"),
        status=str(status),
        payloads=tuple(payloads),
    )


def unverified_claims(token: str) -> dict[str, object]:
    """The payload of a compact JWS, unverified (to learn whose key to verify it with).

    Raises:
        ValueError: not a compact JWS with a JSON object payload.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a compact JWS")
    padded = parts[1] + "=" * (-len(parts[1]) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    if not isinstance(value, dict):
        raise ValueError("JWT payload is not a JSON object")
    return value


@dataclass(frozen=True, slots=True)
class CredentialFacts:
    """What a VC JWT says about itself (VC Data Model 1.1, JWT encoding § 6.3.1)."""

    credential_id: str
    types: tuple[str, ...]
    issuer_did: str
    subject_did: str
    issued_at: datetime
    expires_at: datetime | None


def _instant(claims: Mapping[str, object], name: str) -> datetime | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value, UTC)


def credential_facts(claims: Mapping[str, object]) -> CredentialFacts:
    """The id, types, issuer, subject and validity of a VC JWT's claims.

    Raises:
        BadRequestError: a claim the contract requires is missing or malformed.
    """
    vc = claims.get("vc")
    if not isinstance(vc, Mapping):
        raise BadRequestError("credential has no vc claim")
    raw_types = vc.get("type", [])
    types: Sequence[object] = (
        [raw_types]
        if isinstance(raw_types, str)
        else raw_types
        if isinstance(raw_types, list)
        else []
    )
    if "VerifiableCredential" not in types:
        raise BadRequestError("credential type must include VerifiableCredential")
    own_types = tuple(str(t) for t in types if isinstance(t, str) and t != "VerifiableCredential")
    if not own_types:
        raise BadRequestError("credential has no type besides VerifiableCredential")
    credential_id = claims.get("jti", vc.get("id"))
    issuer = claims.get("iss")
    subject = claims.get("sub")
    if subject is None:
        cs = vc.get("credentialSubject")
        subject = cs.get("id") if isinstance(cs, Mapping) else None
    if not isinstance(credential_id, str) or not credential_id or len(credential_id) > 256:
        raise BadRequestError("credential has no id (jti)")
    if not isinstance(issuer, str) or not issuer.startswith("did:"):
        raise BadRequestError("credential issuer (iss) is not a DID")
    if not isinstance(subject, str) or not subject:
        raise BadRequestError("credential has no subject")
    issued_at = _instant(claims, "nbf") or _instant(claims, "iat")
    if issued_at is None:
        raise BadRequestError("credential has no nbf or iat")
    return CredentialFacts(
        credential_id=credential_id,
        types=own_types,
        issuer_did=issuer,
        subject_did=subject,
        issued_at=issued_at,
        expires_at=_instant(claims, "exp"),
    )


def poll_outcome(
    held_ids: Sequence[str], issuer_status: str
) -> Literal["ISSUED", "REJECTED"] | None:
    """What a status poll of a waiting credential request means: ISSUED when we hold a
    credential written for it (whatever the issuer says), REJECTED when the issuer rejected it,
    None (keep waiting) otherwise: an issuer saying ISSUED whose write has not reached us yet
    is still delivering it."""
    if held_ids:
        return "ISSUED"
    return "REJECTED" if issuer_status == "REJECTED" else None
