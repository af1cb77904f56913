"""DSP 2025-1 contract negotiation state machine (Contract Negotiation Protocol, States; dsp.md §8).

The table is the spec diagram transcribed. The workflow update validator (`check`), the update
handler and run loop (`apply`, `apply_outbound`), the tests and docs/state-machines.md
(`render_mermaid`) all use it, so inbound and outbound handling cannot drift apart.

Duplicates: a re-delivered identical message is NOT a no-op here. It is suppressed upstream
(Temporal update id derived from the message, update-with-start for initial messages); if one
still reaches the machine it is judged like any other message, so a repeat that is not itself a
legal transition (e.g. a second ContractRequestMessage while REQUESTED) raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from connector.core.errors import BadRequestError, IllegalTransitionError
from connector.core.negotiation.actions import (
    Action,
    SendAgreement,
    SendOffer,
    SendRequest,
    SendTermination,
)
from connector.core.negotiation.aggregate import JsonObject, Negotiation, TimelineEntry
from connector.core.negotiation.messages import MessageKind
from connector.core.negotiation.states import TERMINAL, Direction, NegotiationState, Role

__all__ = [
    "SENDER",
    "TRANSITIONS",
    "allowed_messages",
    "apply",
    "apply_outbound",
    "check",
    "render_mermaid",
]

_S = NegotiationState
_K = MessageKind

TRANSITIONS: Final[Mapping[tuple[NegotiationState, MessageKind], NegotiationState]] = {
    (_S.INITIAL, _K.CONTRACT_REQUEST): _S.REQUESTED,  # initial request (consumer-initiated)
    (_S.INITIAL, _K.CONTRACT_OFFER): _S.OFFERED,  # initial offer (provider-initiated)
    (_S.REQUESTED, _K.CONTRACT_OFFER): _S.OFFERED,  # counter-offer
    (_S.REQUESTED, _K.AGREEMENT): _S.AGREED,  # provider agrees to the consumer's request
    (_S.OFFERED, _K.CONTRACT_REQUEST): _S.REQUESTED,  # counter-request
    (_S.OFFERED, _K.ACCEPTED_EVENT): _S.ACCEPTED,
    (_S.ACCEPTED, _K.AGREEMENT): _S.AGREED,
    (_S.AGREED, _K.VERIFICATION): _S.VERIFIED,
    (_S.VERIFIED, _K.FINALIZED_EVENT): _S.FINALIZED,
    # Not drawn: OFFERED -> OFFERED (provider re-offers). dsp.md §8 lets us choose; we follow the
    # diagram and reject it (no TCK test needs it).
    #
    # Termination: the diagram allows only some (state, sender) pairs, the prose says "MAY be sent
    # at any state". Project decision (dsp.md §14): either side, every non-terminal state. INITIAL
    # is included so a workflow whose first message never got through can end in TERMINATED.
    **{
        (state, _K.TERMINATION): _S.TERMINATED
        for state in NegotiationState
        if state not in TERMINAL
    },
}

# Who may send each kind; None = either side (termination only).
SENDER: Final[Mapping[MessageKind, Role | None]] = {
    _K.CONTRACT_REQUEST: Role.CONSUMER,
    _K.CONTRACT_OFFER: Role.PROVIDER,
    _K.ACCEPTED_EVENT: Role.CONSUMER,
    _K.AGREEMENT: Role.PROVIDER,
    _K.VERIFICATION: Role.CONSUMER,
    _K.FINALIZED_EVENT: Role.PROVIDER,
    _K.TERMINATION: None,
}


def allowed_messages(state: NegotiationState) -> list[tuple[MessageKind, Role | None]]:
    """The (kind, sender) pairs the machine accepts in `state`, in table order."""
    return [(kind, SENDER[kind]) for (from_state, kind) in TRANSITIONS if from_state is state]


def _describe(kind: MessageKind, sender: Role | None) -> str:
    return f"{kind.wire_name} ({sender.value if sender else 'either side'})"


def check(state: NegotiationState, kind: MessageKind, sender: Role) -> NegotiationState:
    """Return the state a `kind` message from `sender` leads to from `state`.

    Raises:
        IllegalTransitionError: the spec does not allow that message from that sender in `state`
            (answered with DSP 400 + ContractNegotiationError, dsp.md §10).
    """
    prefix = f"negotiation in state {state} cannot accept {kind.wire_name} from the {sender}"
    if state in TERMINAL:
        raise IllegalTransitionError(f"{prefix}: {state} is terminal")
    target = TRANSITIONS.get((state, kind))
    if target is None:
        allowed = ", ".join(_describe(k, s) for k, s in allowed_messages(state))
        raise IllegalTransitionError(f"{prefix}: allowed in {state} are {allowed}")
    expected = SENDER[kind]
    if expected is not None and sender is not expected:
        raise IllegalTransitionError(f"{prefix}: only the {expected} sends {kind.wire_name}")
    return target


def _merge_pid(current: str | None, given: str | None, field: str) -> str | None:
    # A pid is fixed once known; a message naming another one belongs to a different process.
    if given is None or current == given:
        return current
    if current is None:
        return given
    raise BadRequestError(f"{field} {given!r} does not match this negotiation ({current!r})")


def _termination_detail(code: str | None, reason: tuple[str, ...]) -> str | None:
    parts = [f"code {code}"] if code else []
    parts.extend(reason)
    return "; ".join(parts) or None


def apply(
    n: Negotiation,
    kind: MessageKind,
    sender: Role,
    *,
    at: datetime,
    consumer_pid: str | None = None,
    provider_pid: str | None = None,
    counterparty_address: str | None = None,
    offer: JsonObject | None = None,
    agreement: JsonObject | None = None,
    code: str | None = None,
    reason: tuple[str, ...] = (),
    detail: str | None = None,
) -> Negotiation:
    """Return the successor of `n` after a `kind` message from `sender` (ours or the peer's).

    Fields a kind does not carry are ignored (`offer` only for request/offer, `agreement` only
    for agreement, `code`/`reason` only for termination). Unknown pids and the counterparty
    address are filled in; version rises by one and a timeline entry is appended.

    Raises:
        IllegalTransitionError: see `check`.
        BadRequestError: a pid contradicts the known one, or a request/offer without an offer,
            or an agreement message without an agreement.
        ValueError: `at` is naive.
    """
    if at.utcoffset() is None:
        raise ValueError("`at` must be timezone-aware")
    target = check(n.state, kind, sender)
    update: dict[str, object] = {
        "state": target,
        "version": n.version + 1,
        "updated_at": at,
        "consumer_pid": _merge_pid(n.consumer_pid, consumer_pid, "consumerPid"),
        "provider_pid": _merge_pid(n.provider_pid, provider_pid, "providerPid"),
    }
    if counterparty_address is not None:
        update["counterparty_address"] = counterparty_address
    if kind in (_K.CONTRACT_REQUEST, _K.CONTRACT_OFFER):
        if offer is None:
            raise BadRequestError(f"{kind.wire_name} must carry an offer")
        update["offer"] = offer
    elif kind is _K.AGREEMENT:
        if agreement is None:
            raise BadRequestError(f"{kind.wire_name} must carry an agreement")
        update["agreement"] = agreement
    elif kind is _K.TERMINATION:
        update["termination_code"] = code
        update["termination_reason"] = tuple(reason)
        if detail is None:
            detail = _termination_detail(code, reason)
    entry = TimelineEntry(
        at=at,
        direction=Direction.OUT if sender is n.role else Direction.IN,
        kind=kind,
        from_state=n.state,
        to_state=target,
        detail=detail,
    )
    update["timeline"] = (*n.timeline, entry)
    return n.model_copy(update=update)


def apply_outbound(
    n: Negotiation,
    action: Action,
    *,
    at: datetime,
    consumer_pid: str | None = None,
    provider_pid: str | None = None,
    detail: str | None = None,
) -> Negotiation:
    """Record that we sent `action` (after the peer acked it); pids come from the peer's ACK.

    Raises:
        IllegalTransitionError, BadRequestError, ValueError: see `apply`.
    """
    return apply(
        n,
        action.message_kind,
        n.role,
        at=at,
        consumer_pid=consumer_pid,
        provider_pid=provider_pid,
        offer=action.offer if isinstance(action, SendRequest | SendOffer) else None,
        agreement=action.agreement if isinstance(action, SendAgreement) else None,
        code=action.code if isinstance(action, SendTermination) else None,
        reason=action.reason if isinstance(action, SendTermination) else (),
        detail=detail,
    )


def render_mermaid() -> str:
    """Mermaid `stateDiagram-v2` source generated from TRANSITIONS and SENDER (no code fence)."""
    lines = ["stateDiagram-v2", f"    [*] --> {_S.INITIAL}"]
    for (from_state, kind), to_state in TRANSITIONS.items():
        sender = SENDER[kind]
        by = sender.value if sender else "either side"
        lines.append(f"    {from_state} --> {to_state} : {kind.wire_name} by {by}")
    lines.extend(f"    {state} --> [*]" for state in NegotiationState if state in TERMINAL)
    return "\n".join(lines) + "\n"
