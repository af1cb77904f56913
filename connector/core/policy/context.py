"""The facts a policy is evaluated against (STYLE.md §11): who asks, when, why, where, scope.

Built by the caller from verified identity (never from the request body); time is a parameter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from connector.core.policy.scopes import Scope

__all__ = ["CREDENTIAL_TYPES_CLAIM", "MEMBERSHIP_CLAIM", "PolicyContext"]

# Claim names the built-in left operands read (functions.py); api/auth fills them.
MEMBERSHIP_CLAIM: Final = "membership"
CREDENTIAL_TYPES_CLAIM: Final = "credential_types"


class PolicyContext(BaseModel):
    """Immutable evaluation context.

    `claims` maps a claim name to a value or a list of values (a list is a set of values, e.g.
    every credential type the caller presented). `extra` holds further facts by name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scope: Scope
    participant_id: str
    now: AwareDatetime
    claims: Mapping[str, JsonValue] = Field(default_factory=dict)
    purpose: str | None = None
    spatial: str | None = None
    extra: Mapping[str, JsonValue] = Field(default_factory=dict)
