"""Inputs and outputs of workflows, updates and activities (single pydantic models, stable shapes).

New fields only with defaults, at the end: running histories hold the old shapes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, JsonValue

from connector.core.negotiation import machine
from connector.core.negotiation.actions import Action
from connector.core.negotiation.aggregate import JsonObject, Negotiation
from connector.core.negotiation.decide import Decision, Facts, Holds, awaiting
from connector.core.negotiation.messages import MessageKind
from connector.core.negotiation.record import NegotiationRecord
from connector.core.negotiation.states import Role
from connector.core.transfer.actions import Action as TransferAction
from connector.core.transfer.aggregate import Transfer
from connector.core.transfer.hold import StartMode
from connector.core.transfer.messages import MessageKind as TransferMessageKind
from connector.core.transfer.record import TransferRecord


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NegotiationStart(_Contract):
    record: NegotiationRecord
    callback_address: str
    auto_accept: bool = True
    # Pause before a second message of ours in a row: the peer may not be listening yet.
    back_to_back_pause: timedelta = timedelta(milliseconds=0)
    # Policy decision on the request that started a provider negotiation (made by the control
    # plane's negotiation service).
    policy_allowed: bool | None = None
    policy_reasons: tuple[str, ...] = ()

    # Operator holds (decision 0012): what this side leaves to a person, whether the opening
    # request asks for other rules than the published offer's, and the negotiation's deadline
    # length (re-armed after each decision: a hold may outlast the first deadline).
    holds: Holds = Holds()
    request_differs: bool = False
    deadline: timedelta | None = None

    def awaited(self, record: NegotiationRecord) -> NegotiationRecord:
        """`record` with what a person owes on it right after the opening message."""
        facts = Facts(
            policy_allowed=self.policy_allowed,
            policy_reasons=self.policy_reasons,
            auto_accept=self.auto_accept,
            request_differs=self.request_differs,
            holds=self.holds,
        )
        held = awaiting(record.negotiation, facts)
        return record.model_copy(update={"awaiting": held, "awaiting_decision": held is not None})


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
    # Provider: the contract policy decision on this request's offer, made by the control plane's
    # negotiation service.
    policy_allowed: bool | None = None
    policy_reasons: tuple[str, ...] = ()

    # Provider: the request asks for other rules than the published offer's (a counter-request).
    request_differs: bool = False

    def apply_to(self, n: Negotiation, *, at: datetime) -> Negotiation:
        """`n` after this message (the state machine's rules; raises as `machine.apply`)."""
        return machine.apply(
            n,
            self.kind,
            self.sender,
            at=at,
            consumer_pid=self.consumer_pid,
            provider_pid=self.provider_pid,
            counterparty_address=self.counterparty_address,
            offer=self.offer,
            agreement=self.agreement,
            code=self.code,
            reason=self.reason,
        )


class OperatorDecision(_Contract):
    decision: Decision
    offer: JsonObject | None = None
    reason: str | None = None
    # Who decided (API key name or `oidc:<subject>`), for the timeline.
    operator: str = ""


class OutboundNegotiationMessage(_Contract):
    negotiation: Negotiation
    action: Action
    callback_address: str
    dsp_version: str
    # Bounded retries of a 404 from a peer that already acknowledged the process (conformance).
    not_found_attempts: int = 4
    # Its key in the delivery journal ("": not journaled; decision 0010).
    delivery_key: str = ""


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


# --- transfer processes (dsp.md §9) ---------------------------------------------------------


class TransferStart(_Contract):
    record: TransferRecord
    callback_address: str
    back_to_back_pause: timedelta = timedelta(milliseconds=0)
    # Provider: push attempts (a restart after a failed or interrupted push) before TERMINATED.
    push_max_attempts: int = 3
    # How long a message to the counterparty is retried before the transfer is given up.
    send_deadline: timedelta = timedelta(minutes=10)
    # Consumer shortcut (offer instead of agreement): the negotiation to run first, as a child.
    negotiation: NegotiationStart | None = None
    # Provider: start at once, or hold the request for an operator until `hold_timeout` passes
    # (decision 0013).
    start_mode: StartMode = StartMode.AUTO
    hold_timeout: timedelta = timedelta(days=7)


class InboundTransferMessage(_Contract):
    kind: TransferMessageKind
    sender: Role
    consumer_pid: str | None = None
    provider_pid: str | None = None
    counterparty_address: str | None = None
    data_address: JsonObject | None = None
    code: str | None = None
    reason: tuple[str, ...] = ()


class TransferCommand(_Contract):
    """An operator's (or an integrator's) decision on one transfer."""

    command: Literal["start", "suspend", "resume", "terminate", "complete"]
    reason: str | None = None
    # Who asked (API key name or `oidc:<subject>`), for the timeline.
    operator: str = ""


class OutboundTransferMessage(_Contract):
    transfer: Transfer
    action: TransferAction
    callback_address: str
    dsp_version: str
    not_found_attempts: int = 4
    delivery_key: str = ""


class FlowStart(_Contract):
    """Ask the data plane to prepare a pull (token + endpoint) or start a push."""

    process_id: str
    agreement_id: str
    asset_id: str | None = None
    consumer_id: str
    format: str
    push: bool
    finite: bool = True
    source: JsonObject
    destination: JsonObject | None = None


class FlowResult(_Contract):
    state: str
    # Pull: the DataAddress for the TransferStartMessage (endpoint + token).
    data_address: JsonObject | None = None
    attempt: int = 1


class FlowStop(_Contract):
    process_id: str
    how: Literal["suspend", "terminate", "complete"]
    reason: str | None = None


class FlowStatus(_Contract):
    state: str
    bytes_moved: int = 0
    attempt: int = 1
    error: str | None = None


# --- the operator webhook (decision 0013) --------------------------------------------------


class OperatorNotice(_Contract):
    """A process started waiting for a person: the webhook's body (no secrets, no tokens).

    `id` is unique per wait (the receiver drops a repeat); `deadline` is when the wait ends on
    its own (the process then terminates).
    """

    id: str
    process: Literal["negotiation", "transfer"]
    process_id: str
    role: str
    state: str
    awaiting: str
    since: datetime
    deadline: datetime | None = None
    counterparty_id: str
    # The answers the management API accepts for it (e.g. start, terminate).
    commands: tuple[str, ...] = ()
