"""Claim checks of an OIDC access token for the management API (docs/security.md §3).

Pure: the caller passes `now`; signature checks and key selection happen in
`connector.identity.oidc`. Unlike DSP tokens (`claims.check_claims`), an IdP's access token has
no `iss == sub` rule, no `jti` and no 5-minute lifetime cap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from connector.core.errors import UnauthorizedError

__all__ = ["AccessTokenRules", "check_access_token", "claim_at"]


@dataclass(frozen=True, slots=True)
class AccessTokenRules:
    issuer: str
    audience: str
    leeway: int = 30
    required_scope: str | None = None
    required_role: str | None = None
    roles_claim: str = "roles"


def claim_at(claims: Mapping[str, object], dotted: str) -> object:
    """The value at a dotted path (`realm_access.roles`), or None."""
    node: object = claims
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _numeric(claims: Mapping[str, object], name: str, *, required: bool) -> int | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise UnauthorizedError(f"claim {name!r} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnauthorizedError(f"claim {name!r} is not a number")
    return int(value)


def _strings(value: object, *, split: bool) -> set[str]:
    if isinstance(value, str):
        return set(value.split()) if split else {value}
    if isinstance(value, list):
        return {v for v in value if isinstance(v, str)}
    return set()


def check_access_token(
    claims: Mapping[str, object], rules: AccessTokenRules, *, now: datetime
) -> str:
    """Check `iss`, `aud`, `exp`, `nbf`, `iat`, `sub` and the optional scope and role; the subject.

    Rules: `iss` equals the configured issuer; `aud` (string or list) contains the audience;
    `exp` present and `now < exp + leeway`; `nbf` and `iat` (optional) not after `now + leeway`;
    `sub` a non-empty string; `required_scope` in `scope` (space-separated) or `scp` (string or
    list); `required_role` in the (string or list) value at `roles_claim`.

    Raises:
        UnauthorizedError: the first violated rule (a reason for logs, not the wire).
    """
    if claims.get("iss") != rules.issuer:
        raise UnauthorizedError("claim 'iss' is not the configured issuer")
    raw_aud = claims.get("aud")
    audiences = _strings(raw_aud, split=False)
    if rules.audience not in audiences:
        raise UnauthorizedError("claim 'aud' does not name this connector")
    current = int(now.timestamp())
    expires_at = _numeric(claims, "exp", required=True)
    if expires_at is not None and current >= expires_at + rules.leeway:
        raise UnauthorizedError("token expired")
    not_before = _numeric(claims, "nbf", required=False)
    if not_before is not None and not_before > current + rules.leeway:
        raise UnauthorizedError("token not yet valid ('nbf')")
    issued_at = _numeric(claims, "iat", required=False)
    if issued_at is not None and issued_at > current + rules.leeway:
        raise UnauthorizedError("claim 'iat' is in the future")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise UnauthorizedError("claim 'sub' is missing")
    if rules.required_scope is not None:
        scopes = _strings(claims.get("scope"), split=True) | _strings(claims.get("scp"), split=True)
        if rules.required_scope not in scopes:
            raise UnauthorizedError("token lacks the required scope")
    if rules.required_role is not None:
        roles = _strings(claim_at(claims, rules.roles_claim), split=False)
        if rules.required_role not in roles:
            raise UnauthorizedError("token lacks the required role")
    return subject
