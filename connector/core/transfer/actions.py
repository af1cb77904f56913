"""Outbound transfer process actions: what `decide.next_action` (or an operator command) asks the
workflow to send, one per DSP 2025-1 transfer message (dsp.md §9). `machine.apply_outbound`
records them."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from connector.core.transfer.aggregate import JsonObject
from connector.core.transfer.messages import MessageKind

__all__ = [
    "Action",
    "SendCompletion",
    "SendRequest",
    "SendStart",
    "SendSuspension",
    "SendTermination",
]


class _Action(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    message_kind: ClassVar[MessageKind]


class SendRequest(_Action):
    """TransferRequestMessage; `data_address` only for push (where to push)."""

    message_kind: ClassVar[MessageKind] = MessageKind.TRANSFER_REQUEST
    action: Literal["send_request"] = "send_request"
    data_address: JsonObject | None = None


class SendStart(_Action):
    """TransferStartMessage; `data_address` MUST be present for pull (dsp.md §9)."""

    message_kind: ClassVar[MessageKind] = MessageKind.TRANSFER_START
    action: Literal["send_start"] = "send_start"
    data_address: JsonObject | None = None


class SendSuspension(_Action):
    message_kind: ClassVar[MessageKind] = MessageKind.TRANSFER_SUSPENSION
    action: Literal["send_suspension"] = "send_suspension"
    code: str | None = None
    reason: tuple[str, ...] = ()


class SendCompletion(_Action):
    message_kind: ClassVar[MessageKind] = MessageKind.TRANSFER_COMPLETION
    action: Literal["send_completion"] = "send_completion"


class SendTermination(_Action):
    message_kind: ClassVar[MessageKind] = MessageKind.TRANSFER_TERMINATION
    action: Literal["send_termination"] = "send_termination"
    code: str | None = None
    reason: tuple[str, ...] = ()


Action = Annotated[
    SendRequest | SendStart | SendSuspension | SendCompletion | SendTermination,
    Field(discriminator="action"),
]
