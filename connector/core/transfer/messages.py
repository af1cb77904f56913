"""Kinds of transfer process messages and their DSP 2025-1 `@type` names
(Transfer Process Protocol, Message Types; dsp.md §9 "Message fields")."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final

from connector.core.errors import BadRequestError

__all__ = ["MESSAGE_TYPES", "WIRE_NAMES", "MessageKind", "kind_of"]


class MessageKind(StrEnum):
    TRANSFER_REQUEST = "transfer_request"
    TRANSFER_START = "transfer_start"
    TRANSFER_SUSPENSION = "transfer_suspension"
    TRANSFER_COMPLETION = "transfer_completion"
    TRANSFER_TERMINATION = "transfer_termination"

    @property
    def wire_name(self) -> str:
        """The DSP `@type`, e.g. `TransferStartMessage`."""
        return WIRE_NAMES[self]


MESSAGE_TYPES: Final[Mapping[str, MessageKind]] = {
    "TransferRequestMessage": MessageKind.TRANSFER_REQUEST,
    "TransferStartMessage": MessageKind.TRANSFER_START,
    "TransferSuspensionMessage": MessageKind.TRANSFER_SUSPENSION,
    "TransferCompletionMessage": MessageKind.TRANSFER_COMPLETION,
    "TransferTerminationMessage": MessageKind.TRANSFER_TERMINATION,
}

WIRE_NAMES: Final[Mapping[MessageKind, str]] = {
    kind: type_name for type_name, kind in MESSAGE_TYPES.items()
}


def kind_of(type_name: str) -> MessageKind:
    """Map a message's `@type` (bare or `dspace:`-prefixed, dsp.md §13.5) to its kind.

    Raises:
        BadRequestError: not a transfer process message.
    """
    kind = MESSAGE_TYPES.get(type_name.removeprefix("dspace:"))
    if kind is None:
        raise BadRequestError(f"not a transfer process message: {type_name!r}")
    return kind
