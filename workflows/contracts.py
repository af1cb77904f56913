"""Inputs and outputs of workflows, updates and activities (single pydantic models, stable shapes).

New fields only with defaults, at the end: running histories hold the old shapes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, JsonValue

from connector.core.negotiation.actions import Action
from connector.core.negotiation.aggregate import JsonObject, Negotiation
from connector.core.negotiation.messages import MessageKind
from connector.core.negotiation.record import NegotiationRecord
from connector.core.negotiation.states import Role


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NegotiationStart(_Contract):
    record: NegotiationRecord
    callback_address: str
    auto_accept: bool = True
    # Pause before a second message of ours in a row: the peer may not be listening yet.
    back_to_back_pause: timedelta = timedelta(milliseconds=0)
    # Policy decision on the request that started a provider negotiation (made at the API edge).
    policy_allowed: bool | None = None
    policy_reasons: tuple[str, ...] = ()


class InboundNegotiationMessage(_Contract):
    kind: MessageKind
    sender: Role
    consumer_pid: str | None = None
    provider_pid: str | None = None
    counterparty_address: str | None = None
    offer: JsonObject | None = None
    agreement: JsonObject | None = None
    code: str | None = None
    reason: tuple[str, ...] = ()
    # Provider: the contract policy decision on this request's offer, made at the API edge.
    policy_allowed: bool | None = None
    policy_reasons: tuple[str, ...] = ()


class OperatorDecision(_Contract):
    decision: Literal["accept", "counter", "terminate"]
    offer: JsonObject | None = None
    reason: str | None = None


class OutboundNegotiationMessage(_Contract):
    negotiation: Negotiation
    action: Action
    callback_address: str
    dsp_version: str
    # Bounded retries of a 404 from a peer that already acknowledged the process (conformance).
    not_found_attempts: int = 4


class RemoteAck(_Contract):
    status: int
    # The peer's pid from a 201 answer to an initiating message.
    peer_pid: str | None = None


class PeerRejection(_Contract):
    """Details of a non-retryable 4xx from the counterparty, kept for the timeline."""

    status: int
    code: str | None = None
    reasons: tuple[str, ...] = ()
    body: JsonValue = None
