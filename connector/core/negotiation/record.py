"""What a negotiation's projection holds: the aggregate plus what the protocol edge needs.

The same record is the workflow's query result, the projection row's payload and the operator
API's view; `version` (the aggregate's) guards every projection write.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict

from connector.core.negotiation.aggregate import JsonObject, Negotiation
from connector.core.negotiation.decide import Awaiting, Decision
from connector.core.negotiation.states import NegotiationState

__all__ = ["DecisionEntry", "NegotiationRecord"]


class DecisionEntry(BaseModel):
    """A person's decision on a held negotiation, for the timeline (decision 0012)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: AwareDatetime
    decision: Decision
    # Who decided: the management API key's name or `oidc:<subject>`.
    operator: str
    # The negotiation's state and version the decision was taken in.
    state: NegotiationState
    version: int
    reason: str | None = None
    offer: JsonObject | None = None


class NegotiationRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    negotiation: Negotiation
    dsp_version: str = "2025-1"
    # Which catalog offer and dataset this negotiation is about (resolved at the edge).
    offer_id: str | None = None
    asset_id: str | None = None
    deadline_at: AwareDatetime | None = None
    # A person must decide (`awaiting` says what, since when, until when; decision 0012).
    awaiting_decision: bool = False
    awaiting: Awaiting | None = None
    # The operator decisions taken so far (they do not change the version).
    decisions: tuple[DecisionEntry, ...] = ()
    # Digest of the counterparty's message that opened this negotiation (None: we opened it, or
    # it was opened before the digest was kept): a re-sent identical message is answered with
    # the current state, a different one under the same pid is refused.
    opening: str | None = None

    @property
    def own_pid(self) -> str:
        pid = self.negotiation.own_pid
        if pid is None:  # pragma: no cover - every record is created with its own pid
            raise ValueError("negotiation has no own pid")
        return pid

    @property
    def version(self) -> int:
        return self.negotiation.version

    @property
    def updated_at(self) -> datetime:
        return self.negotiation.updated_at
