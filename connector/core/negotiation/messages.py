"""Kinds of contract negotiation messages and their DSP 2025-1 `@type` / `eventType` names
(Contract Negotiation Protocol, Message Types; dsp.md §8 "Message fields")."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final

from connector.core.errors import BadRequestError

__all__ = [
    "EVENT_MESSAGE_TYPE",
    "EVENT_TYPES",
    "MESSAGE_TYPES",
    "WIRE_NAMES",
    "MessageKind",
    "kind_of",
]


class MessageKind(StrEnum):
    CONTRACT_REQUEST = "contract_request"
    CONTRACT_OFFER = "contract_offer"
    ACCEPTED_EVENT = "accepted_event"
    AGREEMENT = "agreement"
    VERIFICATION = "verification"
    FINALIZED_EVENT = "finalized_event"
    TERMINATION = "termination"

    @property
    def wire_name(self) -> str:
        """The DSP name used in logs and error reasons, e.g. `ContractOfferMessage`."""
        return WIRE_NAMES[self]


EVENT_MESSAGE_TYPE: Final = "ContractNegotiationEventMessage"

# @type -> kind for every message whose @type alone determines the kind.
MESSAGE_TYPES: Final[Mapping[str, MessageKind]] = {
    "ContractRequestMessage": MessageKind.CONTRACT_REQUEST,
    "ContractOfferMessage": MessageKind.CONTRACT_OFFER,
    "ContractAgreementMessage": MessageKind.AGREEMENT,
    "ContractAgreementVerificationMessage": MessageKind.VERIFICATION,
    "ContractNegotiationTerminationMessage": MessageKind.TERMINATION,
}

# ContractNegotiationEventMessage.eventType -> kind.
EVENT_TYPES: Final[Mapping[str, MessageKind]] = {
    "ACCEPTED": MessageKind.ACCEPTED_EVENT,
    "FINALIZED": MessageKind.FINALIZED_EVENT,
}

WIRE_NAMES: Final[Mapping[MessageKind, str]] = {
    **{kind: type_name for type_name, kind in MESSAGE_TYPES.items()},
    **{kind: f"{EVENT_MESSAGE_TYPE}({event})" for event, kind in EVENT_TYPES.items()},
}

_PREFIX: Final = "dspace:"


def _bare(term: str) -> str:
    # 0.8 peers send prefixed terms ("dspace:FINALIZED"); accept both forms (dsp.md §13.5).
    return term.removeprefix(_PREFIX)


def kind_of(type_name: str, event_type: str | None = None) -> MessageKind:
    """Map a message's `@type` (and `eventType` for event messages) to its kind.

    Raises:
        BadRequestError: unknown `@type`, or an event message with a missing/unknown `eventType`.
    """
    bare_type = _bare(type_name)
    if bare_type == EVENT_MESSAGE_TYPE:
        kind = EVENT_TYPES.get(_bare(event_type)) if event_type is not None else None
        if kind is None:
            raise BadRequestError(f"unknown {EVENT_MESSAGE_TYPE} eventType: {event_type!r}")
        return kind
    kind = MESSAGE_TYPES.get(bare_type)
    if kind is None:
        raise BadRequestError(f"not a contract negotiation message: {type_name!r}")
    return kind
