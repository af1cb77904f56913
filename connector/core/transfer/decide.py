"""What one side of a transfer process sends next (dsp.md §9).

Minimal on purpose: suspension, completion and termination are operator or data-plane decisions
that arrive as commands; the only automatic steps are the consumer's request and the provider's
start (or refusal) once the data flow is prepared.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict

from connector.core.transfer.actions import Action, SendRequest, SendStart, SendTermination
from connector.core.transfer.aggregate import JsonObject, Transfer
from connector.core.transfer.states import Role, TransferState

__all__ = ["CODE_FLOW_FAILED", "Facts", "next_action"]

# `code` of our own TransferTerminationMessage when the data flow cannot be prepared.
CODE_FLOW_FAILED: Final = "flow_failed"


class Facts(BaseModel):
    """What the workflow learned from the data plane (provider side)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    flow_prepared: bool = False
    # Pull: the endpoint the consumer pulls from (MUST be in the start message, dsp.md §9).
    data_address: JsonObject | None = None
    # Set when the data plane refused or failed to prepare the flow.
    flow_error: str | None = None


def next_action(t: Transfer, facts: Facts) -> Action | None:
    """The message this side should send next, or None to wait."""
    match (t.role, t.state):
        case (Role.CONSUMER, TransferState.INITIAL):
            return SendRequest(data_address=t.data_address)
        case (Role.PROVIDER, TransferState.REQUESTED) if facts.flow_error is not None:
            return SendTermination(code=CODE_FLOW_FAILED, reason=(facts.flow_error,))
        case (Role.PROVIDER, TransferState.REQUESTED) if facts.flow_prepared:
            return SendStart(data_address=facts.data_address)
        case _:
            return None
