"""What a negotiation's projection holds: the aggregate plus what the protocol edge needs.

The same record is the workflow's query result, the projection row's payload and the operator
API's view; `version` (the aggregate's) guards every projection write.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict

from connector.core.negotiation.aggregate import Negotiation
from connector.core.negotiation.states import NegotiationState, Role

__all__ = ["NegotiationRecord", "awaits_operator"]


def awaits_operator(n: Negotiation, *, auto_accept: bool) -> bool:
    """An offer received by the consumer that no configured rule accepts waits for the operator."""
    return n.role is Role.CONSUMER and n.state is NegotiationState.OFFERED and not auto_accept


class NegotiationRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    negotiation: Negotiation
    dsp_version: str = "2025-1"
    # Which catalog offer and dataset this negotiation is about (resolved at the edge).
    offer_id: str | None = None
    asset_id: str | None = None
    deadline_at: AwareDatetime | None = None
    # The operator must decide (consumer side, offer received, no auto-accept rule).
    awaiting_decision: bool = False
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
