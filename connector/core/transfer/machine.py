"""DSP 2025-1 transfer process state machine (Transfer Process Protocol, States; dsp.md §9).

The table is the spec diagram transcribed. Unlike negotiation, who may send a kind depends on the
state (a start from REQUESTED is the provider's, a resume from SUSPENDED either side's), so SENDER
is keyed like TRANSITIONS. Duplicates are suppressed upstream (Temporal update id; update-with-start
makes a repeated TransferRequestMessage return the existing process, dsp.md §6); a repeat reaching
the machine is judged like any other message, so e.g. a second start while STARTED raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from connector.core.errors import BadRequestError, IllegalTransitionError
from connector.core.transfer.actions import (
    Action,
    SendRequest,
    SendStart,
    SendSuspension,
    SendTermination,
)
from connector.core.transfer.aggregate import JsonObject, TimelineEntry, Transfer
from connector.core.transfer.messages import MessageKind
from connector.core.transfer.states import TERMINAL, Direction, Role, TransferState

__all__ = [
    "SENDER",
    "TRANSITIONS",
    "allowed_messages",
    "apply",
    "apply_outbound",
    "apply_restart",
    "check",
    "check_restart",
    "is_restart",
    "render_mermaid",
]

_S = TransferState
_K = MessageKind

TRANSITIONS: Final[Mapping[tuple[TransferState, MessageKind], TransferState]] = {
    (_S.INITIAL, _K.TRANSFER_REQUEST): _S.REQUESTED,
    (_S.REQUESTED, _K.TRANSFER_START): _S.STARTED,
    (_S.STARTED, _K.TRANSFER_COMPLETION): _S.COMPLETED,
    (_S.STARTED, _K.TRANSFER_SUSPENSION): _S.SUSPENDED,
    # The spec does not say whether a party may resume what the other suspended (dsp.md §14);
    # we allow either side to resume either suspension.
    (_S.SUSPENDED, _K.TRANSFER_START): _S.STARTED,
    # Termination from every non-terminal state, either side (dsp.md §9). INITIAL is included so a
    # workflow whose request never got through can end in TERMINATED.
    **{
        (state, _K.TRANSFER_TERMINATION): _S.TERMINATED
        for state in TransferState
        if state not in TERMINAL
    },
}

# Who may send each (state, kind); None = either side.
SENDER: Final[Mapping[tuple[TransferState, MessageKind], Role | None]] = {
    (_S.INITIAL, _K.TRANSFER_REQUEST): Role.CONSUMER,
    (_S.REQUESTED, _K.TRANSFER_START): Role.PROVIDER,
    (_S.STARTED, _K.TRANSFER_COMPLETION): None,
    (_S.STARTED, _K.TRANSFER_SUSPENSION): None,
    (_S.SUSPENDED, _K.TRANSFER_START): None,
    **{(state, _K.TRANSFER_TERMINATION): None for state in TransferState if state not in TERMINAL},
}


def allowed_messages(state: TransferState) -> list[tuple[MessageKind, Role | None]]:
    """The (kind, sender) pairs the machine accepts in `state`, in table order."""
    return [(kind, SENDER[(s, kind)]) for (s, kind) in TRANSITIONS if s is state]


def _describe(kind: MessageKind, sender: Role | None) -> str:
    return f"{kind.wire_name} ({sender.value if sender else 'either side'})"


def check(state: TransferState, kind: MessageKind, sender: Role) -> TransferState:
    """Return the state a `kind` message from `sender` leads to from `state`.

    Raises:
        IllegalTransitionError: the spec does not allow that message from that sender in `state`
            (answered with DSP 400 + TransferError, dsp.md §10).
    """
    prefix = f"transfer in state {state} cannot accept {kind.wire_name} from the {sender}"
    if state in TERMINAL:
        raise IllegalTransitionError(f"{prefix}: {state} is terminal")
    target = TRANSITIONS.get((state, kind))
    if target is None:
        allowed = ", ".join(_describe(k, s) for k, s in allowed_messages(state))
        raise IllegalTransitionError(f"{prefix}: allowed in {state} are {allowed}")
    expected = SENDER[(state, kind)]
    if expected is not None and sender is not expected:
        raise IllegalTransitionError(
            f"{prefix}: only the {expected} sends {kind.wire_name} in {state}"
        )
    return target


def _merge_pid(current: str | None, given: str | None, field: str) -> str | None:
    # A pid is fixed once known; a message naming another one belongs to a different process.
    if given is None or current == given:
        return current
    if current is None:
        return given
    raise BadRequestError(f"{field} {given!r} does not match this transfer ({current!r})")


def _code_reason_detail(code: str | None, reason: tuple[str, ...]) -> str | None:
    parts = [f"code {code}"] if code else []
    parts.extend(reason)
    return "; ".join(parts) or None


def apply(
    t: Transfer,
    kind: MessageKind,
    sender: Role,
    *,
    at: datetime,
    consumer_pid: str | None = None,
    provider_pid: str | None = None,
    counterparty_address: str | None = None,
    data_address: JsonObject | None = None,
    code: str | None = None,
    reason: tuple[str, ...] = (),
    detail: str | None = None,
) -> Transfer:
    """Return the successor of `t` after a `kind` message from `sender` (ours or the peer's).

    `data_address` is kept from request and start messages; `code`/`reason` from suspension and
    termination; other kinds ignore them. Unknown pids and the counterparty address are filled in;
    version rises by one and a timeline entry is appended.

    Raises:
        IllegalTransitionError: see `check`.
        BadRequestError: a pid contradicts the known one.
        ValueError: `at` is naive.
    """
    if at.utcoffset() is None:
        raise ValueError("`at` must be timezone-aware")
    target = check(t.state, kind, sender)
    update: dict[str, object] = {
        "state": target,
        "version": t.version + 1,
        "updated_at": at,
        "consumer_pid": _merge_pid(t.consumer_pid, consumer_pid, "consumerPid"),
        "provider_pid": _merge_pid(t.provider_pid, provider_pid, "providerPid"),
    }
    if counterparty_address is not None:
        update["counterparty_address"] = counterparty_address
    if kind in (_K.TRANSFER_REQUEST, _K.TRANSFER_START) and data_address is not None:
        update["data_address"] = data_address
    elif kind in (_K.TRANSFER_SUSPENSION, _K.TRANSFER_TERMINATION):
        update["code"] = code
        update["reason"] = tuple(reason)
        if detail is None:
            detail = _code_reason_detail(code, reason)
    entry = TimelineEntry(
        at=at,
        direction=Direction.OUT if sender is t.role else Direction.IN,
        kind=kind,
        from_state=t.state,
        to_state=target,
        detail=detail,
    )
    update["timeline"] = (*t.timeline, entry)
    return t.model_copy(update=update)


def apply_outbound(
    t: Transfer,
    action: Action,
    *,
    at: datetime,
    consumer_pid: str | None = None,
    provider_pid: str | None = None,
    detail: str | None = None,
) -> Transfer:
    """Record that we sent `action` (after the peer acked it); pids come from the peer's ACK.

    Raises:
        IllegalTransitionError, BadRequestError, ValueError: see `apply`.
    """
    return apply(
        t,
        action.message_kind,
        t.role,
        at=at,
        consumer_pid=consumer_pid,
        provider_pid=provider_pid,
        data_address=action.data_address if isinstance(action, SendRequest | SendStart) else None,
        code=action.code if isinstance(action, SendSuspension | SendTermination) else None,
        reason=action.reason if isinstance(action, SendSuspension | SendTermination) else (),
        detail=detail,
    )


def check_restart(t: Transfer, sender: Role, data_address: JsonObject | None) -> None:
    """Allow the provider's TransferStartMessage that follows a consumer's resume.

    A consumer resumes with a TransferStartMessage (SUSPENDED -> STARTED); the new DataAddress
    (new token) can only reach it in a TransferStartMessage from the provider, which arrives while
    both sides are already STARTED. EDC behaves the same way. Allowed exactly once per consumer
    resume, only from the provider and only with a DataAddress; anything else is judged by
    `check` (and so refused).

    Raises:
        IllegalTransitionError: not such a restart.
    """
    last = t.timeline[-1] if t.timeline else None
    resumed_by_consumer = (
        last is not None
        and last.kind is _K.TRANSFER_START
        and last.from_state is _S.SUSPENDED
        and last.to_state is _S.STARTED
        and (last.direction is Direction.OUT) == (t.role is Role.CONSUMER)
    )
    if (
        t.state is not _S.STARTED
        or sender is not Role.PROVIDER
        or data_address is None
        or not resumed_by_consumer
    ):
        check(t.state, _K.TRANSFER_START, sender)


def apply_restart(
    t: Transfer, sender: Role, *, at: datetime, data_address: JsonObject | None
) -> Transfer:
    """Record the provider's post-resume TransferStartMessage: new DataAddress, state STARTED.

    Raises:
        IllegalTransitionError: see `check_restart`.
        ValueError: `at` is naive.
    """
    if at.utcoffset() is None:
        raise ValueError("`at` must be timezone-aware")
    check_restart(t, sender, data_address)
    entry = TimelineEntry(
        at=at,
        direction=Direction.OUT if sender is t.role else Direction.IN,
        kind=_K.TRANSFER_START,
        from_state=t.state,
        to_state=_S.STARTED,
        detail="new data address after the consumer resumed",
    )
    return t.model_copy(
        update={
            "data_address": data_address,
            "version": t.version + 1,
            "updated_at": at,
            "timeline": (*t.timeline, entry),
        }
    )


def is_restart(
    t: Transfer, kind: MessageKind, sender: Role, data_address: JsonObject | None
) -> bool:
    """Whether a message is the post-resume restart `check_restart` admits (else use `check`)."""
    if kind is not _K.TRANSFER_START or t.state is not _S.STARTED:
        return False
    try:
        check_restart(t, sender, data_address)
    except IllegalTransitionError:
        return False
    return True


def render_mermaid() -> str:
    """Mermaid `stateDiagram-v2` source generated from TRANSITIONS and SENDER (no code fence)."""
    lines = ["stateDiagram-v2", f"    [*] --> {_S.INITIAL}"]
    for (from_state, kind), to_state in TRANSITIONS.items():
        sender = SENDER[(from_state, kind)]
        by = sender.value if sender else "either side"
        lines.append(f"    {from_state} --> {to_state} : {kind.wire_name} by {by}")
    lines.extend(f"    {state} --> [*]" for state in TransferState if state in TERMINAL)
    return "\n".join(lines) + "\n"
