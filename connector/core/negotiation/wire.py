"""Outbound DSP negotiation messages: which model, which path (dsp.md §5 bindings, §8).

Pure: the activity encodes the model for the peer's DSP version and POSTs it to
`counterparty_address + path`. A termination carries a code and text from
`connector.core.peer_reasons`, never the action's own reason (our detail).
"""

from __future__ import annotations

from typing import Final

from connector.core.dsp import (
    Agreement,
    ContractAgreementMessage,
    ContractAgreementVerificationMessage,
    ContractNegotiationEventMessage,
    ContractNegotiationTerminationMessage,
    ContractOfferMessage,
    ContractRequestMessage,
    DspModel,
    Offer,
)
from connector.core.errors import BadRequestError
from connector.core.negotiation.actions import (
    Action,
    SendAccepted,
    SendAgreement,
    SendFinalized,
    SendOffer,
    SendRequest,
    SendTermination,
    SendVerification,
)
from connector.core.negotiation.aggregate import Negotiation
from connector.core.negotiation.states import NegotiationState, Role
from connector.core.peer_reasons import for_peer

__all__ = ["INITIAL_PATHS", "build_message", "message_path"]

# The two messages that create a process at the receiver (answered 201 with its pid).
INITIAL_PATHS: Final = {
    Role.CONSUMER: "/negotiations/request",
    Role.PROVIDER: "/negotiations/offers",
}

_SUFFIX: Final[dict[type, str]] = {
    SendRequest: "request",
    SendOffer: "offers",
    SendAccepted: "events",
    SendFinalized: "events",
    SendAgreement: "agreement",
    SendVerification: "agreement/verification",
    SendTermination: "termination",
}


def is_initial(n: Negotiation, action: Action) -> bool:
    """The first message of a negotiation we initiate (no peer pid known yet)."""
    return n.state is NegotiationState.INITIAL and isinstance(action, SendRequest | SendOffer)


def message_path(n: Negotiation, action: Action) -> str:
    """Path under the counterparty's address; always the RECEIVER's pid (dsp.md §6)."""
    if is_initial(n, action):
        return INITIAL_PATHS[n.role]
    peer_pid = n.counterparty_pid
    if peer_pid is None:
        raise BadRequestError("the counterparty's pid is not known yet")
    return f"/negotiations/{peer_pid}/{_SUFFIX[type(action)]}"


def _pids(n: Negotiation) -> tuple[str, str]:
    if n.provider_pid is None or n.consumer_pid is None:
        raise BadRequestError("both pids are needed for this message")
    return n.provider_pid, n.consumer_pid


def build_message(n: Negotiation, action: Action, callback_address: str) -> DspModel:
    """The DSP message for `action`; `callback_address` goes only into initiating messages."""
    initial = is_initial(n, action)
    match action:
        case SendRequest(offer=offer):
            if initial:
                if n.consumer_pid is None:
                    raise BadRequestError("consumer pid missing")
                return ContractRequestMessage(
                    consumer_pid=n.consumer_pid,
                    offer=Offer.model_validate(offer),
                    callback_address=callback_address,
                )
            provider_pid, consumer_pid = _pids(n)
            return ContractRequestMessage(
                consumer_pid=consumer_pid,
                provider_pid=provider_pid,
                offer=Offer.model_validate(offer),
            )
        case SendOffer(offer=offer):
            if initial:
                if n.provider_pid is None:
                    raise BadRequestError("provider pid missing")
                return ContractOfferMessage(
                    provider_pid=n.provider_pid,
                    offer=Offer.model_validate(offer),
                    callback_address=callback_address,
                )
            provider_pid, consumer_pid = _pids(n)
            return ContractOfferMessage(
                provider_pid=provider_pid,
                consumer_pid=consumer_pid,
                offer=Offer.model_validate(offer),
            )
        case SendAccepted() | SendFinalized():
            provider_pid, consumer_pid = _pids(n)
            return ContractNegotiationEventMessage(
                provider_pid=provider_pid,
                consumer_pid=consumer_pid,
                event_type="ACCEPTED" if isinstance(action, SendAccepted) else "FINALIZED",
            )
        case SendAgreement(agreement=agreement):
            provider_pid, consumer_pid = _pids(n)
            return ContractAgreementMessage(
                provider_pid=provider_pid,
                consumer_pid=consumer_pid,
                agreement=Agreement.model_validate(agreement),
            )
        case SendVerification():
            provider_pid, consumer_pid = _pids(n)
            return ContractAgreementVerificationMessage(
                provider_pid=provider_pid, consumer_pid=consumer_pid
            )
        case SendTermination(code=code):
            # The peer gets the code's fixed text; `action.reason` (our detail) stays with us.
            provider_pid, consumer_pid = _pids(n)
            peer_code, peer_reason = for_peer(code)
            return ContractNegotiationTerminationMessage(
                provider_pid=provider_pid,
                consumer_pid=consumer_pid,
                code=peer_code,
                reason=peer_reason,
            )
    raise BadRequestError(f"no DSP message for {type(action).__name__}")  # pragma: no cover
