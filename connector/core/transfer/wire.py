"""Outbound DSP transfer process messages: which model, which path (dsp.md §5 bindings, §9).

Pure: the activity encodes the model for the peer's DSP version and POSTs it to
`counterparty_address + path`. A suspension or termination carries a code and text from
`connector.core.peer_reasons`, never the action's own reason (our detail).
"""

from __future__ import annotations

from typing import Final

from connector.core.dsp import (
    DataAddress,
    DspModel,
    TransferCompletionMessage,
    TransferRequestMessage,
    TransferStartMessage,
    TransferSuspensionMessage,
    TransferTerminationMessage,
)
from connector.core.errors import BadRequestError
from connector.core.peer_reasons import for_peer
from connector.core.transfer.actions import (
    Action,
    SendCompletion,
    SendRequest,
    SendStart,
    SendSuspension,
    SendTermination,
)
from connector.core.transfer.aggregate import JsonObject, Transfer
from connector.core.transfer.states import Role, TransferState

__all__ = [
    "ENDPOINT_TYPE_HTTP",
    "INITIAL_PATH",
    "build_message",
    "data_address",
    "is_initial",
    "message_path",
]

INITIAL_PATH: Final = "/transfers/request"
# The endpoint type of an HTTP DataAddress (identity.md §3.1).
ENDPOINT_TYPE_HTTP: Final = "https://w3id.org/idsa/v4.1/HTTP"

_SUFFIX: Final[dict[type, str]] = {
    SendStart: "start",
    SendCompletion: "completion",
    SendSuspension: "suspension",
    SendTermination: "termination",
}


def is_initial(t: Transfer, action: Action) -> bool:
    """The TransferRequestMessage that creates the provider's side (answered 201)."""
    return (
        t.role is Role.CONSUMER
        and t.state is TransferState.INITIAL
        and isinstance(action, SendRequest)
    )


def message_path(t: Transfer, action: Action) -> str:
    """Path under the counterparty's address; always the RECEIVER's pid (dsp.md §6)."""
    if is_initial(t, action):
        return INITIAL_PATH
    peer_pid = t.counterparty_pid
    if peer_pid is None:
        raise BadRequestError("the counterparty's pid is not known yet")
    suffix = _SUFFIX.get(type(action))
    if suffix is None:
        raise BadRequestError(f"no path for {type(action).__name__} after the request")
    return f"/transfers/{peer_pid}/{suffix}"


def data_address(raw: JsonObject | None) -> DataAddress | None:
    """A stored DataAddress as the wire model (None stays None).

    Raises:
        BadRequestError: the stored object is not a DataAddress.
    """
    if raw is None:
        return None
    try:
        return DataAddress.model_validate(raw)
    except ValueError as exc:
        raise BadRequestError(f"invalid dataAddress: {exc}") from None


def _pids(t: Transfer) -> tuple[str, str]:
    if t.provider_pid is None or t.consumer_pid is None:
        raise BadRequestError("both pids are needed for this message")
    return t.provider_pid, t.consumer_pid


def build_message(t: Transfer, action: Action, callback_address: str) -> DspModel:
    """The DSP message for `action`; `callback_address` goes into the TransferRequestMessage."""
    match action:
        case SendRequest(data_address=address):
            if t.consumer_pid is None:
                raise BadRequestError("consumer pid missing")
            return TransferRequestMessage(
                consumer_pid=t.consumer_pid,
                agreement_id=t.agreement_id,
                format=t.format,
                callback_address=callback_address,
                data_address=data_address(address),
            )
        case SendStart(data_address=address):
            provider_pid, consumer_pid = _pids(t)
            return TransferStartMessage(
                provider_pid=provider_pid,
                consumer_pid=consumer_pid,
                data_address=data_address(address),
            )
        case SendCompletion():
            provider_pid, consumer_pid = _pids(t)
            return TransferCompletionMessage(provider_pid=provider_pid, consumer_pid=consumer_pid)
        case SendSuspension(code=code):
            # The peer gets the code's fixed text; `action.reason` (our detail) stays with us.
            provider_pid, consumer_pid = _pids(t)
            peer_code, peer_reason = for_peer(code)
            return TransferSuspensionMessage(
                provider_pid=provider_pid,
                consumer_pid=consumer_pid,
                code=peer_code,
                reason=peer_reason,
            )
        case SendTermination(code=code):
            provider_pid, consumer_pid = _pids(t)
            peer_code, peer_reason = for_peer(code)
            return TransferTerminationMessage(
                provider_pid=provider_pid,
                consumer_pid=consumer_pid,
                code=peer_code,
                reason=peer_reason,
            )
    raise BadRequestError(f"no DSP message for {type(action).__name__}")  # pragma: no cover
