"""DCP Secure Token Service, embedded: our self-issued ID tokens and access tokens (DCP 1.0 §4,
identity.md §1.3).

* `issue_access_token`: the token a verifier hands back to our Credential Service to read our
  credentials. Signed by our own key: `iss = aud = our DID`, `sub = verifier DID`, `scope` =
  space-separated DCP scopes, `jti`, `iat`, `exp` (5 minutes).
* `issue_si_token`: a self-issued ID token, `iss = sub = our DID`, `aud = audience`, `jti`, `iat`,
  `exp`, plus `token` when given (the holder's access token on a DSP request, or that same token
  handed back verbatim on a presentation query).

All tokens are compact ES256 JWTs with header `{"alg":"ES256","kid":"<our DID>#<key id>",
"typ":"JWT"}` signed by the key ring's current key.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Final

from joserfc import jwt

from connector.core.identity.claims import MAX_LIFETIME_SECONDS
from connector.identity.keys import KeyRing

__all__ = [
    "ACCESS_TOKEN_LIFETIME_SECONDS",
    "DcpTokenIssuer",
    "issue_access_token",
    "issue_si_token",
]

ACCESS_TOKEN_LIFETIME_SECONDS: Final = MAX_LIFETIME_SECONDS


def _sign(keyring: KeyRing, our_did: str, claims: Mapping[str, object]) -> str:
    entry = keyring.current
    header = {"alg": "ES256", "typ": "JWT", "kid": f"{our_did}#{entry.key_id}"}
    return jwt.encode(header, dict(claims), entry.key, algorithms=["ES256"])


def issue_access_token(
    keyring: KeyRing, our_did: str, verifier_did: str, scopes: Iterable[str], now: datetime
) -> str:
    """An access token letting `verifier_did` query our Credential Service for `scopes`."""
    issued = int(now.timestamp())
    return _sign(
        keyring,
        our_did,
        {
            "iss": our_did,
            "aud": our_did,
            "sub": verifier_did,
            "scope": " ".join(scopes),
            "jti": f"urn:uuid:{uuid.uuid4()}",
            "iat": issued,
            "exp": issued + ACCESS_TOKEN_LIFETIME_SECONDS,
        },
    )


def issue_si_token(
    keyring: KeyRing, our_did: str, audience: str, now: datetime, token: str | None = None
) -> str:
    """A self-issued ID token for `audience`, carrying `token` when given."""
    issued = int(now.timestamp())
    claims: dict[str, object] = {
        "iss": our_did,
        "sub": our_did,
        "aud": audience,
        "jti": f"urn:uuid:{uuid.uuid4()}",
        "iat": issued,
        "exp": issued + MAX_LIFETIME_SECONDS,
    }
    if token is not None:
        claims["token"] = token
    return _sign(keyring, our_did, claims)


class DcpTokenIssuer:
    """Outbound DSP tokens in the `dcp` profile: an SI token carrying our access token for
    `scopes`, so the counterparty (the verifier) can query our Credential Service."""

    def __init__(
        self,
        keyring: KeyRing,
        our_did: str,
        scopes: Iterable[str],
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self.keyring = keyring
        self.our_did = our_did
        self._scopes = tuple(scopes)
        self._clock = clock

    def issue(self, audience: str, *, extra_claims: Mapping[str, object] | None = None) -> str:
        now = self._clock()
        access = issue_access_token(self.keyring, self.our_did, audience, self._scopes, now)
        return issue_si_token(self.keyring, self.our_did, audience, now, token=access)
