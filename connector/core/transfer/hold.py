"""Provider start mode and the operator's hold on a transfer request (issue 15; decision 0013).

DSP 2025-1 leaves it to the provider when (and whether) it answers a TransferRequestMessage with
a TransferStartMessage (dsp.md §9): REQUESTED may last. In `approve` mode the provider's side
waits in REQUESTED until a person `start`s it or `terminate`s it, or the hold's deadline passes
(then it terminates with CODE_HOLD_EXPIRED). A hold lasts only as long as its state: any message
that moves the process (the consumer's termination, say) ends it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from connector.core.transfer.aggregate import Transfer
from connector.core.transfer.states import Role, TransferState

__all__ = [
    "AWAITING_START",
    "CODE_HOLD_EXPIRED",
    "Awaiting",
    "StartMode",
    "command_refusal",
    "expired",
    "expiry_reason",
    "hold_for",
    "operator_detail",
    "still_held",
]

# What a held transfer request waits for: the operator's `start` (or `terminate`).
AWAITING_START: Final = "start"
# `code` of our TransferTerminationMessage when no one decided before the hold's deadline.
CODE_HOLD_EXPIRED: Final = "hold_expired"

Command = Literal["start", "suspend", "resume", "terminate", "complete"]


class StartMode(StrEnum):
    """How the provider answers a TransferRequestMessage."""

    AUTO = "auto"  # start as soon as the data flow is prepared
    APPROVE = "approve"  # wait in REQUESTED for an operator's start or terminate


class Awaiting(BaseModel):
    """A decision a person owes on a transfer: which, in what state, since when, until when, and
    the operator commands that answer it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    state: TransferState
    since: AwareDatetime
    deadline: AwareDatetime
    commands: tuple[str, ...] = ("start", "terminate")


def hold_for(t: Transfer, mode: StartMode, *, at: datetime, timeout: timedelta) -> Awaiting | None:
    """What a provider's transfer awaits on the consumer's request, if its mode holds it."""
    if mode is not StartMode.APPROVE or t.role is not Role.PROVIDER:
        return None
    if t.state is not TransferState.REQUESTED:
        return None
    return Awaiting(kind=AWAITING_START, state=t.state, since=at, deadline=at + timeout)


def still_held(hold: Awaiting | None, t: Transfer) -> Awaiting | None:
    """`hold` while the process is still in the state it was entered in; else None."""
    if hold is None or t.state is not hold.state:
        return None
    return hold


def expired(hold: Awaiting | None, now: datetime) -> bool:
    """Whether the hold's deadline has passed at `now`."""
    return hold is not None and now >= hold.deadline


def expiry_reason(hold: Awaiting) -> str:
    """Our timeline's detail of a termination for an expired hold (the peer gets the code)."""
    return f"no operator decision ({hold.kind}) by {hold.deadline.isoformat()}"


def command_refusal(
    state: TransferState, hold: Awaiting | None, command: Command, *, pending: bool
) -> str | None:
    """Why an operator `command` is illegal now (None: allowed).

    `state` is the state our in-flight message (if any) leads to: the counterparty may already
    show it. `start` is legal only for a request held for it; the others follow the state
    machine (suspend/complete a STARTED transfer, resume a SUSPENDED one, terminate anything not
    ended). One command at a time.
    """
    if pending:
        return f"cannot {command} a transfer in state {state.value} (another command is pending)"
    if command == "start":
        if hold is None or command not in hold.commands or state is not hold.state:
            return f"cannot start a transfer in state {state.value}: it awaits no start"
        return None
    needs = {
        "suspend": (TransferState.STARTED,),
        "complete": (TransferState.STARTED,),
        "resume": (TransferState.SUSPENDED,),
        "terminate": tuple(s for s in TransferState if not s.is_terminal),
    }[command]
    if state not in needs:
        return f"cannot {command} a transfer in state {state.value}"
    return None


def operator_detail(
    command: str, operator: str, *, code: str | None = None, reason: str | None = None
) -> str:
    """Our timeline's detail of a message an operator's command sent: who, and why."""
    parts = [f"{command} by operator {operator or 'unknown'}"]
    if code:
        parts.append(f"code {code}")
    if reason:
        parts.append(reason)
    return "; ".join(parts)
