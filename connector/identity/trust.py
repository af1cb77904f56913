"""Who may call us: DID allow-list, trusted membership issuers, per-counterparty relaxations
(identity.md §1.6, §1.8 step 10, §4.3 item 7)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MEMBERSHIP_CREDENTIAL", "TrustConfig", "TrustList"]

MEMBERSHIP_CREDENTIAL: Final = "MembershipCredential"


class TrustConfig(BaseModel):
    """Trust settings (embedded by the lead, e.g. `settings.identity.trust`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed_dids: tuple[str, ...] = Field(
        default=(), description="Counterparty DIDs accepted without a membership credential."
    )
    trusted_issuers: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description=(
            "Issuer DID -> credential types it may issue. `secure` profile: a caller not on "
            "`allowed_dids` is accepted if its token carries a `membership` credential (JWT VC) "
            "of such a type from such an issuer. `dcp` profile: the issuers whose presented "
            "credentials count, per type."
        ),
    )
    require_capability_invocation: bool = Field(
        default=True,
        description="The signing key must be listed under `capabilityInvocation` (DCP).",
    )
    relax_capability_invocation: tuple[str, ...] = Field(
        default=(),
        description="Counterparty DIDs exempt from the `capabilityInvocation` check (EDC peers).",
    )


@dataclass(frozen=True, slots=True)
class TrustList:
    """Immutable trust decisions; build with `TrustList.from_config`."""

    allowed_dids: frozenset[str] = frozenset()
    trusted_issuers: Mapping[str, frozenset[str]] = field(default_factory=dict)
    require_capability_invocation: bool = True
    relaxed: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, config: TrustConfig) -> TrustList:
        return cls(
            allowed_dids=frozenset(config.allowed_dids),
            trusted_issuers={k: frozenset(v) for k, v in config.trusted_issuers.items()},
            require_capability_invocation=config.require_capability_invocation,
            relaxed=frozenset(config.relax_capability_invocation),
        )

    @classmethod
    def of(cls, dids: Iterable[str], *, relaxed: Iterable[str] = ()) -> TrustList:
        """Convenience for an allow-list only (tests, small deployments)."""
        return cls(allowed_dids=frozenset(dids), relaxed=frozenset(relaxed))

    def is_allowed(self, did: str) -> bool:
        """The DID is on the allow-list (no credential needed)."""
        return did in self.allowed_dids

    @property
    def membership_enabled(self) -> bool:
        return bool(self.trusted_issuers)

    def trusts_issuer(self, issuer: str, credential_types: Iterable[str]) -> bool:
        """`issuer` is trusted for at least one of `credential_types`."""
        allowed = self.trusted_issuers.get(issuer)
        return allowed is not None and any(t in allowed for t in credential_types)

    def requires_capability_invocation(self, did: str) -> bool:
        return self.require_capability_invocation and did not in self.relaxed
