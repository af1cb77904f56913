"""An in-test OIDC identity provider: keys, a JWKS and access tokens minted with joserfc."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

ISSUER = "https://idp.example/realms/operators"
AUDIENCE = "connector-management"
SCOPE = "connector:manage"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class TestIdp:
    """EC P-256 (`ec-1`) and RSA (`rsa-1`) signing keys; `jwks()` publishes the public halves."""

    __test__ = False  # not a pytest class

    keys: dict[str, ECKey | RSAKey] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.keys:
            self.add("ec-1")
            self.keys["rsa-1"] = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})

    def add(self, kid: str) -> ECKey:
        key = ECKey.generate_key("P-256", parameters={"kid": kid})
        self.keys[kid] = key
        return key

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.as_dict(private=False) for k in self.keys.values()]}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()))
        return path

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(NOW.timestamp())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": [AUDIENCE, "account"],
            "sub": "alice",
            "iat": now - 10,
            "exp": now + 300,
            "scope": f"openid {SCOPE}",
            "realm_access": {"roles": ["connector-admin"]},
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(
        self,
        kid: str = "ec-1",
        *,
        alg: str | None = None,
        header: dict[str, Any] | None = None,
        key: ECKey | RSAKey | None = None,
        **claims: Any,
    ) -> str:
        signing_key = key or self.keys[kid]
        algorithm = alg or ("RS256" if isinstance(signing_key, RSAKey) else "ES256")
        protected = {"alg": algorithm, "typ": "JWT", "kid": kid, **(header or {})}
        return jwt.encode(protected, self.claims(**claims), signing_key, algorithms=[algorithm])

    def unsigned(self, kid: str | None = "ec-1", **claims: Any) -> str:
        """`alg: none`: header and claims, empty signature."""
        header = {"alg": "none", "typ": "JWT", **({"kid": kid} if kid else {})}
        return f"{_b64(header)}.{_b64(self.claims(**claims))}."
