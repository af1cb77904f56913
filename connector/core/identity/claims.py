"""Registered-claim checks of a DCP self-issued ID token (identity.md §1.3, §1.8 steps 4 and 8).

Pure: the caller passes `now`; signature checks and key selection happen in `connector.identity`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from connector.core.errors import UnauthorizedError

__all__ = [
    "DEFAULT_LEEWAY_SECONDS",
    "MAX_JTI_LENGTH",
    "MAX_LIFETIME_SECONDS",
    "CheckedClaims",
    "VerifiedCaller",
    "check_claims",
]

#: Tolerated clock skew for `exp`, `iat` and `nbf`.
DEFAULT_LEEWAY_SECONDS: Final = 5
#: `exp - iat` may not exceed this (identity issue: tokens live at most 5 minutes).
MAX_LIFETIME_SECONDS: Final = 300
#: Bounds the replay-set key size.
MAX_JTI_LENGTH: Final = 256


@dataclass(frozen=True, slots=True)
class CheckedClaims:
    """The registered claims of a token that passed `check_claims`."""

    issuer: str
    audience: tuple[str, ...]
    jti: str
    issued_at: int
    expires_at: int
    not_before: int | None


@dataclass(frozen=True, slots=True)
class VerifiedCaller:
    """The authenticated counterparty: what policies evaluate (`PolicyContext` caller claims).

    `did` and `participant_id` are equal for did-jwt callers. `insecure` is True only for
    callers accepted by the `dev` profile without any signature.
    """

    did: str
    participant_id: str
    claims: Mapping[str, object] = field(default_factory=dict)
    key_id: str | None = None
    insecure: bool = False


def _numeric(claims: Mapping[str, object], name: str) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    # bool is an int subclass: `"exp": true` must not pass as 1.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnauthorizedError(f"claim {name!r} is not a number")
    return int(value)


def _required_numeric(claims: Mapping[str, object], name: str) -> int:
    value = _numeric(claims, name)
    if value is None:
        raise UnauthorizedError(f"claim {name!r} is missing")
    return value


def check_claims(
    claims: Mapping[str, object],
    *,
    audience: str,
    now: datetime,
    leeway: int = DEFAULT_LEEWAY_SECONDS,
    max_lifetime: int = MAX_LIFETIME_SECONDS,
) -> CheckedClaims:
    """Check `iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, lifetime and `jti` of a self-issued token.

    Rules: `iss` and `sub` present and equal; `aud` (string or list) contains `audience`; `exp`
    and `iat` present; `now < exp + leeway`; `iat <= now + leeway`; `nbf` (optional)
    `<= now + leeway`; `0 < exp - iat <= max_lifetime`; `jti` a non-empty string of at most
    `MAX_JTI_LENGTH` characters.

    Raises:
        UnauthorizedError: the first violated rule, with a precise reason (for logs, not the wire).
    """
    issuer = claims.get("iss")
    subject = claims.get("sub")
    if not isinstance(issuer, str) or not issuer:
        raise UnauthorizedError("claim 'iss' is missing")
    if not isinstance(subject, str) or not subject:
        raise UnauthorizedError("claim 'sub' is missing")
    if issuer != subject:
        raise UnauthorizedError("claims 'iss' and 'sub' differ")

    raw_aud = claims.get("aud")
    if isinstance(raw_aud, str):
        aud: tuple[str, ...] = (raw_aud,)
    elif isinstance(raw_aud, list) and all(isinstance(a, str) for a in raw_aud):
        aud = tuple(str(a) for a in raw_aud)
    else:
        raise UnauthorizedError("claim 'aud' is missing")
    if audience not in aud:
        raise UnauthorizedError("claim 'aud' does not name this participant")

    current = int(now.timestamp())
    expires_at = _required_numeric(claims, "exp")
    issued_at = _required_numeric(claims, "iat")
    not_before = _numeric(claims, "nbf")
    if current >= expires_at + leeway:
        raise UnauthorizedError("token expired")
    if issued_at > current + leeway:
        raise UnauthorizedError("claim 'iat' is in the future")
    if not_before is not None and not_before > current + leeway:
        raise UnauthorizedError("token not yet valid ('nbf')")
    lifetime = expires_at - issued_at
    if lifetime <= 0:
        raise UnauthorizedError("claim 'exp' is not after 'iat'")
    if lifetime > max_lifetime:
        raise UnauthorizedError(f"token lifetime {lifetime}s exceeds {max_lifetime}s")

    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise UnauthorizedError("claim 'jti' is missing")
    if len(jti) > MAX_JTI_LENGTH:
        raise UnauthorizedError("claim 'jti' is too long")

    return CheckedClaims(
        issuer=issuer,
        audience=aud,
        jti=jti,
        issued_at=issued_at,
        expires_at=expires_at,
        not_before=not_before,
    )
