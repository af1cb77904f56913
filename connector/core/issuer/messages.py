"""Credential Issuance Protocol messages of DCP 1.0 as the development issuer speaks them
(decision 0024): the holder's `CredentialRequestMessage` in, `CredentialStatus` and the
`CredentialMessage` written to the holder's Storage API out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from connector.core.errors import BadRequestError

__all__ = [
    "DCP_CONTEXT",
    "JWT_FORMAT",
    "CredentialRequest",
    "RequestStatus",
    "RequestedCredential",
    "credential_message",
    "credential_status",
    "parse_credential_request",
]

DCP_CONTEXT: Final = "https://w3id.org/dspace-dcp/v1.0/dcp.jsonld"
#: The one credential format issued: a VC 1.1 data model credential as a JWT.
JWT_FORMAT: Final = "vc1_0_jwt"
CREDENTIAL_REQUEST: Final = "CredentialRequestMessage"
MAX_PID_LENGTH: Final = 256
MAX_CREDENTIALS: Final = 16


class RequestStatus(StrEnum):
    RECEIVED = "RECEIVED"
    ISSUED = "ISSUED"
    REJECTED = "REJECTED"


@dataclass(frozen=True, slots=True)
class RequestedCredential:
    credential_type: str
    format: str


@dataclass(frozen=True, slots=True)
class CredentialRequest:
    holder_pid: str
    credentials: tuple[RequestedCredential, ...]


def _text(value: object, name: str, limit: int = MAX_PID_LENGTH) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequestError(f"'{name}' must be a non-empty string")
    if len(value) > limit:
        raise BadRequestError(f"'{name}' is longer than {limit} characters")
    return value


def parse_credential_request(body: object) -> CredentialRequest:
    """Check a `CredentialRequestMessage` (plain JSON, compacted with the DCP context).

    Raises:
        BadRequestError: anything missing or of the wrong shape (one reason, naming the field).
    """
    if not isinstance(body, dict):
        raise BadRequestError("a CredentialRequestMessage must be a JSON object")
    context = body.get("@context")
    contexts = [context] if isinstance(context, str) else context
    if not isinstance(contexts, list) or DCP_CONTEXT not in contexts:
        raise BadRequestError(f"'@context' must include {DCP_CONTEXT}")
    if body.get("type", body.get("@type")) != CREDENTIAL_REQUEST:
        raise BadRequestError(f"'type' must be {CREDENTIAL_REQUEST}")
    holder_pid = _text(body.get("holderPid"), "holderPid")
    raw = body.get("credentials")
    if not isinstance(raw, list) or not raw:
        raise BadRequestError("'credentials' must be a non-empty array")
    if len(raw) > MAX_CREDENTIALS:
        raise BadRequestError(f"'credentials' has more than {MAX_CREDENTIALS} entries")
    requested: list[RequestedCredential] = []
    for position, item in enumerate(raw):
        if not isinstance(item, dict):
            raise BadRequestError(f"'credentials[{position}]' must be an object")
        requested.append(
            RequestedCredential(
                credential_type=_text(
                    item.get("credentialType"), f"credentials[{position}].credentialType"
                ),
                format=_text(item.get("format"), f"credentials[{position}].format"),
            )
        )
    return CredentialRequest(holder_pid=holder_pid, credentials=tuple(requested))


def credential_status(issuer_pid: str, holder_pid: str, status: RequestStatus) -> dict[str, Any]:
    """The `CredentialStatus` answer of `GET /requests/<pid>`."""
    return {
        "@context": [DCP_CONTEXT],
        "type": "CredentialStatus",
        "issuerPid": issuer_pid,
        "holderPid": holder_pid,
        "status": status.value,
    }


def credential_message(
    issuer_pid: str, holder_pid: str, credentials: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """The `CredentialMessage` for the holder's Storage API; `credentials` holds
    `(credential type, VC JWT)` pairs."""
    return {
        "@context": [DCP_CONTEXT],
        "type": "CredentialMessage",
        "issuerPid": issuer_pid,
        "holderPid": holder_pid,
        "status": RequestStatus.ISSUED.value,
        "credentials": [
            {"credentialType": kind, "format": JWT_FORMAT, "payload": payload}
            for kind, payload in credentials
        ],
    }
