"""Identity settings models, to be embedded in the settings tree by `connector/settings.py`
(e.g. `Settings.identity: IdentityConfig`, `Settings.outbound: OutboundConfig`,
`Settings.management_auth: ManagementAuthConfig`). Plain values only; no I/O here."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from connector.core.identity.claims import DEFAULT_LEEWAY_SECONDS, MAX_LIFETIME_SECONDS
from connector.identity.keys import IdentityKeysConfig
from connector.identity.profile import AuthProfile
from connector.identity.trust import TrustConfig

__all__ = ["IdentityConfig", "ManagementAuthConfig"]


class IdentityConfig(BaseModel):
    """DSP caller authentication and our own DID."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: AuthProfile = Field(
        default=AuthProfile.SECURE, description="'secure' (signed did:web JWTs) or 'dev'."
    )
    allow_insecure: bool = Field(
        default=False, description="Required to start with profile 'dev' (unsigned tokens)."
    )
    did_host: str | None = Field(
        default=None,
        description="Host of our did:web DID (from configuration, never from the Host header).",
    )
    did_port: int | None = Field(default=None, description="Port encoded as %3A<port> in the DID.")
    leeway_seconds: int = Field(default=DEFAULT_LEEWAY_SECONDS, ge=0, le=60)
    max_token_lifetime_seconds: int = Field(default=MAX_LIFETIME_SECONDS, gt=0, le=300)
    did_cache_ttl_seconds: int = Field(default=300, ge=0)
    did_negative_cache_ttl_seconds: int = Field(default=30, ge=0)
    did_refresh_interval_seconds: int = Field(default=30, ge=0)
    did_allow_http: bool = Field(
        default=False, description="Resolve did:web over http (tests/TCK only)."
    )
    did_allow_ip: bool = Field(default=False, description="Allow IP-literal did:web hosts (tests).")
    keys: IdentityKeysConfig = Field(default_factory=IdentityKeysConfig)
    trust: TrustConfig = Field(default_factory=TrustConfig)


class ManagementAuthConfig(BaseModel):
    """Management API keys: plain (>= 32 chars) or `sha256:<hex>`; several for rotation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_keys: tuple[SecretStr, ...] = Field(default=())
    generate_edge_key: bool = Field(
        default=False,
        description="Edge mode: create <data dir>/management-api-key (0600) on first start.",
    )
    data_dir: Path = Field(default=Path("./var"))

    @model_validator(mode="after")
    def _some_key(self) -> ManagementAuthConfig:
        if not self.api_keys and not self.generate_edge_key:
            raise ValueError("configure management api_keys or enable generate_edge_key")
        return self
