"""Outbound contract negotiation actions: what `decide.next_action` asks the workflow to send
(one per DSP 2025-1 negotiation message, dsp.md §8). `machine.apply_outbound` records them."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from connector.core.negotiation.aggregate import JsonObject
from connector.core.negotiation.messages import MessageKind

__all__ = [
    "Action",
    "SendAccepted",
    "SendAgreement",
    "SendFinalized",
    "SendOffer",
    "SendRequest",
    "SendTermination",
    "SendVerification",
]


class _Action(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    message_kind: ClassVar[MessageKind]


class SendRequest(_Action):
    """ContractRequestMessage: the consumer's initial request or a counter-request."""

    message_kind: ClassVar[MessageKind] = MessageKind.CONTRACT_REQUEST
    action: Literal["send_request"] = "send_request"
    offer: JsonObject


class SendOffer(_Action):
    """ContractOfferMessage: the provider's initial offer or a counter-offer."""

    message_kind: ClassVar[MessageKind] = MessageKind.CONTRACT_OFFER
    action: Literal["send_offer"] = "send_offer"
    offer: JsonObject


class SendAccepted(_Action):
    message_kind: ClassVar[MessageKind] = MessageKind.ACCEPTED_EVENT
    action: Literal["send_accepted"] = "send_accepted"


class SendAgreement(_Action):
    message_kind: ClassVar[MessageKind] = MessageKind.AGREEMENT
    action: Literal["send_agreement"] = "send_agreement"
    agreement: JsonObject


class SendVerification(_Action):
    message_kind: ClassVar[MessageKind] = MessageKind.VERIFICATION
    action: Literal["send_verification"] = "send_verification"


class SendFinalized(_Action):
    message_kind: ClassVar[MessageKind] = MessageKind.FINALIZED_EVENT
    action: Literal["send_finalized"] = "send_finalized"


class SendTermination(_Action):
    message_kind: ClassVar[MessageKind] = MessageKind.TERMINATION
    action: Literal["send_termination"] = "send_termination"
    code: str | None = None
    # DSP `reason` is an array with at least one item when present (dsp.md §8).
    reason: tuple[str, ...] = ()


Action = Annotated[
    SendRequest
    | SendOffer
    | SendAccepted
    | SendAgreement
    | SendVerification
    | SendFinalized
    | SendTermination,
    Field(discriminator="action"),
]
