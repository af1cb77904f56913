"""DCP 1.0 verifier rules, pure (DCP 1.0 Verifiable Presentation Protocol §4-5, profile
`vc11-sl2021/jwt`; identity.md §1.4-1.5): scopes, the presentation query, VP and VC claim checks,
status-list bits, and the policy claims verified credentials become.

Signatures, DID resolution and HTTP happen in `connector.identity.presentations`; `now` is a
parameter. Every refusal raises `UnauthorizedError` with the reason (for logs, never the wire).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from pydantic import JsonValue

from connector.core.errors import UnauthorizedError
from connector.core.policy.context import CREDENTIAL_TYPES_CLAIM, MEMBERSHIP_CLAIM

__all__ = [
    "DCP_CONTEXT",
    "DEFAULT_SCOPES",
    "MEMBERSHIP_CREDENTIAL",
    "MIN_STATUS_LIST_BITS",
    "PROFILE_VC11_SL2021_JWT",
    "SCOPE_PREFIX",
    "VC_CONTEXT_V1",
    "Standing",
    "StatusEntry",
    "VerifiedCredential",
    "check_presentation_claims",
    "check_requested_types",
    "credential_claims",
    "credential_from_claims",
    "credential_types_of",
    "presentation_query",
    "presentations_of",
    "scope_for",
    "scope_type",
    "standing_of",
    "status_bit",
    "status_list_bits",
]

DCP_CONTEXT: Final = "https://w3id.org/dspace-dcp/v1.0/dcp.jsonld"
VC_CONTEXT_V1: Final = "https://www.w3.org/2018/credentials/v1"
PROFILE_VC11_SL2021_JWT: Final = "vc11-sl2021/jwt"
SCOPE_PREFIX: Final = "org.eclipse.dspace.dcp.vc.type:"
SCOPE_READ: Final = "read"
MEMBERSHIP_CREDENTIAL: Final = "MembershipCredential"
DEFAULT_SCOPES: Final = (f"{SCOPE_PREFIX}{MEMBERSHIP_CREDENTIAL}:{SCOPE_READ}",)
#: StatusList2021: the bitstring is at least 16 KiB (131072 entries) for herd privacy.
MIN_STATUS_LIST_BITS: Final = 131072
_BASE_TYPE: Final = "VerifiableCredential"
_STATUS_TYPE: Final = "StatusList2021Entry"
_MAX_STATUS_LIST_BYTES: Final = 1 << 20


class Standing(StrEnum):
    """What a cryptographically valid credential is worth now: the value of its policy claim."""

    ACTIVE = "active"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    REVOKED = "revoked"
    UNTRUSTED_ISSUER = "untrusted-issuer"


@dataclass(frozen=True, slots=True)
class StatusEntry:
    """A `StatusList2021Entry` of purpose `revocation`."""

    list_url: str
    index: int


@dataclass(frozen=True, slots=True)
class VerifiedCredential:
    """A VC whose signature and holder binding were checked; `standing` says whether it counts."""

    id: str
    issuer: str
    types: tuple[str, ...]
    subject: Mapping[str, JsonValue]
    not_before: int | None
    expires_at: int | None
    status: StatusEntry | None
    standing: Standing = Standing.ACTIVE


def scope_for(credential_type: str) -> str:
    """The read scope of a credential type (`org.eclipse.dspace.dcp.vc.type:<Type>:read`)."""
    return f"{SCOPE_PREFIX}{credential_type}:{SCOPE_READ}"


def scope_type(scope: str) -> str:
    """The credential type a read scope names.

    Raises:
        ValueError: not `org.eclipse.dspace.dcp.vc.type:<Type>:read` (or `<Type>` alone after the
            alias, the spec's two-part form).
    """
    if not scope.startswith(SCOPE_PREFIX):
        raise ValueError(f"scope {scope!r} is not a credential type scope")
    rest = scope[len(SCOPE_PREFIX) :]
    name, sep, operation = rest.partition(":")
    if not name or (sep and operation != SCOPE_READ) or ":" in operation:
        raise ValueError(f"scope {scope!r} is not '<alias>:<Type>:read'")
    return name


def presentation_query(scopes: Sequence[str]) -> dict[str, JsonValue]:
    """The `PresentationQueryMessage` asking for `scopes`.

    Raises:
        ValueError: no scope, or a scope that is not a credential type read scope.
    """
    if not scopes:
        raise ValueError("a presentation query needs at least one scope")
    for scope in scopes:
        scope_type(scope)
    return {"@context": [DCP_CONTEXT], "type": "PresentationQueryMessage", "scope": list(scopes)}


def presentations_of(body: object) -> list[str]:
    """The VP JWTs of a `PresentationResponseMessage` (this profile: compact JWT strings)."""
    if not isinstance(body, dict) or body.get("type") != "PresentationResponseMessage":
        raise UnauthorizedError("answer is not a PresentationResponseMessage")
    context = body.get("@context")
    if not isinstance(context, list) or DCP_CONTEXT not in context:
        raise UnauthorizedError("presentation response lacks the DCP context")
    raw = body.get("presentation")
    if not isinstance(raw, list) or not raw:
        raise UnauthorizedError("presentation response holds no presentation")
    if not all(isinstance(p, str) and p.count(".") == 2 for p in raw):
        raise UnauthorizedError(f"presentation not in profile {PROFILE_VC11_SL2021_JWT}")
    return [str(p) for p in raw]


def _number(claims: Mapping[str, object], name: str, *, required: bool) -> int | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnauthorizedError(f"claim {name!r} missing or not a number")
    return int(value)


def _rfc3339(value: object, what: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise UnauthorizedError(f"{what} is not a date-time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UnauthorizedError(f"{what} is not a date-time") from None
    if parsed.tzinfo is None:
        raise UnauthorizedError(f"{what} has no time zone")
    return int(parsed.timestamp())


def _strings(value: object) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [str(v) for v in value]
    return None


def check_presentation_claims(
    claims: Mapping[str, object],
    *,
    holder: str,
    verifier: str,
    now: datetime,
    leeway: int,
    max_lifetime: int,
) -> list[str]:
    """Check a VP JWT's claims; return its credential JWTs.

    Rules: `iss` == `sub` == `vp.holder` == `holder` (the SI token's issuer); `aud` names
    `verifier`; `exp` present, not passed, at most `max_lifetime` after `iat`/`nbf`; `nbf` not in
    the future; `vp.type` holds `VerifiablePresentation`; `vp.verifiableCredential` a list of
    compact JWTs.

    Raises:
        UnauthorizedError: the first violated rule.
    """
    if claims.get("iss") != holder or claims.get("sub") != holder:
        raise UnauthorizedError("presentation is not issued by the caller")
    aud = _strings(claims.get("aud"))
    if aud is None or verifier not in aud:
        raise UnauthorizedError("presentation 'aud' does not name this participant")
    current = int(now.timestamp())
    expires_at = _number(claims, "exp", required=True)
    not_before = _number(claims, "nbf", required=False)
    issued_at = _number(claims, "iat", required=False)
    if expires_at is None or current >= expires_at + leeway:
        raise UnauthorizedError("presentation expired")
    if not_before is not None and not_before > current + leeway:
        raise UnauthorizedError("presentation not yet valid")
    start = issued_at if issued_at is not None else not_before
    if expires_at - (current if start is None else start) > max_lifetime:
        raise UnauthorizedError("presentation lives too long")
    vp = claims.get("vp")
    if not isinstance(vp, dict):
        raise UnauthorizedError("presentation has no 'vp' claim")
    types = _strings(vp.get("type"))
    if types is None or "VerifiablePresentation" not in types:
        raise UnauthorizedError("'vp' is not a VerifiablePresentation")
    if vp.get("holder", holder) != holder:
        raise UnauthorizedError("presentation holder is not the caller")
    credentials = vp.get("verifiableCredential", [])
    if not isinstance(credentials, list) or not all(
        isinstance(c, str) and c.count(".") == 2 for c in credentials
    ):
        raise UnauthorizedError(f"credentials not in profile {PROFILE_VC11_SL2021_JWT}")
    return [str(c) for c in credentials]


def credential_types_of(claims: Mapping[str, object]) -> list[str]:
    """`vc.type` of VC JWT claims, unchecked (to choose the issuer trust rule before fetching)."""
    vc = claims.get("vc")
    types = _strings(vc.get("type")) if isinstance(vc, dict) else None
    return [t for t in types or [] if t != _BASE_TYPE]


def _status_entry(vc: Mapping[str, object]) -> StatusEntry | None:
    raw = vc.get("credentialStatus")
    if raw is None:
        return None
    entries = raw if isinstance(raw, list) else [raw]
    found: StatusEntry | None = None
    for entry in entries:
        if not isinstance(entry, dict):
            raise UnauthorizedError("credentialStatus is not an object")
        if entry.get("type") != _STATUS_TYPE:
            raise UnauthorizedError(f"credentialStatus type {entry.get('type')!r} not supported")
        if entry.get("statusPurpose") != "revocation":
            # A suspension list only matters once we support suspension; it never admits.
            continue
        url = entry.get("statusListCredential")
        index = entry.get("statusListIndex")
        if not isinstance(url, str) or not url:
            raise UnauthorizedError("credentialStatus has no statusListCredential")
        if not isinstance(index, str) or not index.isdigit():
            raise UnauthorizedError("statusListIndex is not a decimal string")
        found = StatusEntry(url, int(index))
    return found


def credential_from_claims(
    claims: Mapping[str, object], *, issuer: str, holder: str
) -> VerifiedCredential:
    """The credential in VC JWT `claims` signed by `issuer`, bound to `holder`.

    Rules: `iss` == `vc.issuer` (string or `{id}`) == `issuer`; `sub` (if present) ==
    `vc.credentialSubject.id` == `holder`; `vc.@context` starts with the VC 1.1 context; `vc.type`
    holds `VerifiableCredential` and a further type; a `jti`/`vc.id`; dates parse; a revocation
    status entry is a well-formed `StatusList2021Entry`.

    Raises:
        UnauthorizedError: the first violated rule (a schema violation is a refusal too).
    """
    vc = claims.get("vc")
    if not isinstance(vc, dict):
        raise UnauthorizedError("credential has no 'vc' claim")
    context = vc.get("@context")
    if not isinstance(context, list) or not context or context[0] != VC_CONTEXT_V1:
        raise UnauthorizedError("credential is not a VC 1.1 credential")
    raw_issuer = vc.get("issuer", issuer)
    vc_issuer = raw_issuer.get("id") if isinstance(raw_issuer, dict) else raw_issuer
    if claims.get("iss") != issuer or vc_issuer != issuer:
        raise UnauthorizedError("credential issuer does not match its signer")
    subject = vc.get("credentialSubject")
    if not isinstance(subject, dict):
        raise UnauthorizedError("credential has no single credentialSubject")
    if subject.get("id") != holder or claims.get("sub", holder) != holder:
        raise UnauthorizedError("credential subject is not the presentation holder")
    types = _strings(vc.get("type"))
    if types is None or _BASE_TYPE not in types or len(types) < 2:
        raise UnauthorizedError("credential types missing")
    credential_id = claims.get("jti", vc.get("id"))
    if not isinstance(credential_id, str) or not credential_id:
        raise UnauthorizedError("credential has no id")
    exp = _number(claims, "exp", required=False)
    nbf = _number(claims, "nbf", required=False)
    issued = _rfc3339(vc.get("issuanceDate"), "issuanceDate")
    expires = _rfc3339(vc.get("expirationDate"), "expirationDate")
    starts = [t for t in (nbf, issued) if t is not None]
    ends = [t for t in (exp, expires) if t is not None]
    return VerifiedCredential(
        id=credential_id,
        issuer=issuer,
        types=tuple(t for t in types if t != _BASE_TYPE),
        subject=dict(subject),
        not_before=max(starts) if starts else None,
        expires_at=min(ends) if ends else None,
        status=_status_entry(vc),
    )


def standing_of(
    credential: VerifiedCredential,
    *,
    trusted_types: Iterable[str],
    revoked: bool,
    now: datetime,
    leeway: int,
) -> Standing:
    """The credential's standing: issuer trusted for every one of its types, validity, status."""
    allowed = set(trusted_types)
    if not all(t in allowed for t in credential.types):
        return Standing.UNTRUSTED_ISSUER
    current = int(now.timestamp())
    if credential.expires_at is not None and current >= credential.expires_at + leeway:
        return Standing.EXPIRED
    if credential.not_before is not None and credential.not_before > current + leeway:
        return Standing.NOT_YET_VALID
    if revoked:
        return Standing.REVOKED
    return Standing.ACTIVE


def check_requested_types(credentials: Iterable[VerifiedCredential], scopes: Iterable[str]) -> None:
    """Every credential type the scopes ask for is present (extra credentials are allowed).

    Raises:
        UnauthorizedError: a requested type is missing.
    """
    present = {t for c in credentials for t in c.types}
    missing = sorted({scope_type(s) for s in scopes} - present)
    if missing:
        raise UnauthorizedError(f"requested credentials missing: {', '.join(missing)}")


def status_list_bits(encoded_list: str) -> bytes:
    """The bitstring of a StatusList2021 `encodedList` (base64url of GZIP; padding optional).

    Raises:
        UnauthorizedError: not base64url, not GZIP, too large or shorter than 131072 bits.
    """
    try:
        padded = encoded_list + "=" * (-len(encoded_list) % 4)
        packed = base64.b64decode(padded, altchars=b"-_", validate=True)
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        bits = inflater.decompress(packed, _MAX_STATUS_LIST_BYTES)
    except (binascii.Error, ValueError, zlib.error):
        raise UnauthorizedError("status list is not base64url GZIP") from None
    if inflater.unconsumed_tail:
        raise UnauthorizedError("status list too large")
    if not inflater.eof:
        raise UnauthorizedError("status list is not base64url GZIP")
    if len(bits) * 8 < MIN_STATUS_LIST_BITS:
        raise UnauthorizedError("status list shorter than 131072 bits")
    return bits


def status_bit(bits: bytes, index: int) -> bool:
    """Bit `index`, read left to right (bit 0 = most significant bit of byte 0); True = set.

    Raises:
        UnauthorizedError: `index` is outside the list.
    """
    if not 0 <= index < len(bits) * 8:
        raise UnauthorizedError("statusListIndex outside the status list")
    return bool(bits[index // 8] >> (7 - index % 8) & 1)


def _scalars(value: JsonValue) -> list[JsonValue]:
    items = value if isinstance(value, list) else [value]
    return [v for v in items if isinstance(v, str | bool | int | float)]


def credential_claims(credentials: Iterable[VerifiedCredential]) -> dict[str, JsonValue]:
    """Policy claims of verified credentials (left operands, docs/security.md):

    * `<Type>`: the best standing among the caller's credentials of that type (`active` when one
      counts; else why not, e.g. `revoked`);
    * `<Type>.<field>`: the scalar values of `credentialSubject.<field>` over the *active*
      credentials of that type (so a revoked framework credential admits nothing);
    * `credential_types`: the types with an active credential; `membership`: the standing of the
      `MembershipCredential`, when one was presented.
    """
    order = list(Standing)
    best: dict[str, Standing] = {}
    fields: dict[str, list[JsonValue]] = {}
    for credential in credentials:
        for type_ in credential.types:
            known = best.get(type_)
            if known is None or order.index(credential.standing) < order.index(known):
                best[type_] = credential.standing
            if credential.standing is not Standing.ACTIVE:
                continue
            for name, value in credential.subject.items():
                if name == "id":
                    continue
                values = fields.setdefault(f"{type_}.{name}", [])
                values.extend(v for v in _scalars(value) if v not in values)
    claims: dict[str, JsonValue] = {t: s.value for t, s in sorted(best.items())}
    claims.update({name: values for name, values in sorted(fields.items()) if values})
    active: list[JsonValue] = [t for t in sorted(best) if best[t] is Standing.ACTIVE]
    claims[CREDENTIAL_TYPES_CLAIM] = active
    if MEMBERSHIP_CREDENTIAL in best:
        claims[MEMBERSHIP_CLAIM] = best[MEMBERSHIP_CREDENTIAL].value
    return claims
