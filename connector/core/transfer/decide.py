"""What one side of a transfer process does next (dsp.md §9): the transfer workflow's decisions.

Given the aggregate and the facts the workflow collected (data plane reports, the operator hold,
the operator's command), each function returns a step; the workflow executes it and asks again.
The provider's data plane follows the DSP state (Data Plane Signaling): it prepares the flow
before TransferStartMessage, stops it before it sends or acknowledges a suspension, completion or
termination, and resumes it on a consumer's resume. A finite or push flow is watched until the
data plane reports it delivered (TransferCompletionMessage) or failed (restarted up to
`max_attempts`, then TransferTerminationMessage). In `approve` mode a request waits for an
operator (`hold`, decision 0013). The workflow's run loop, its update handlers and the unit tests
share these functions.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from connector.core.negotiation.aggregate import Negotiation
from connector.core.negotiation.states import NegotiationState
from connector.core.transfer import hold, machine
from connector.core.transfer.actions import (
    Action,
    SendCompletion,
    SendRequest,
    SendStart,
    SendSuspension,
    SendTermination,
)
from connector.core.transfer.aggregate import JsonObject, Transfer
from connector.core.transfer.messages import MessageKind
from connector.core.transfer.states import Direction, Role, TransferState

__all__ = [
    "CODE_FLOW_FAILED",
    "CODE_NEGOTIATION",
    "CODE_OPERATOR",
    "CODE_SUSPENDED_BY_OPERATOR",
    "CODE_UNDELIVERABLE",
    "WAIT",
    "Act",
    "ApproveStart",
    "EndHere",
    "Facts",
    "FlowReport",
    "GiveUp",
    "PrepareFlow",
    "ResumeFlow",
    "RetryFlow",
    "Rewatch",
    "Step",
    "StopFlow",
    "StopKind",
    "Wait",
    "after_approval",
    "after_failed_send",
    "after_negotiation",
    "after_retry",
    "answers_inbound",
    "command_step",
    "flow_after_inbound",
    "give_up",
    "hold_wait",
    "inbound_judged_against",
    "negotiation_failed",
    "next_action",
    "next_step",
    "outbound_target",
    "pauses_before_send",
    "stop_if_ended",
    "watches_flow",
]

# `code` values of our own TransferTerminationMessages (and suspensions): free strings in DSP.
CODE_FLOW_FAILED: Final = "flow_failed"  # the data flow cannot be prepared or failed for good
CODE_OPERATOR: Final = "terminated_by_operator"
CODE_SUSPENDED_BY_OPERATOR: Final = "suspended_by_operator"
CODE_UNDELIVERABLE: Final = "undeliverable"  # our message was refused or never got through
CODE_NEGOTIATION: Final = "negotiation_failed"  # consumer shortcut: no agreement came of it

# Which data plane operation follows our side entering a state (provider only).
StopKind = Literal["suspend", "terminate", "complete"]
_STOP_FOR: Final[dict[TransferState, StopKind]] = {
    TransferState.SUSPENDED: "suspend",
    TransferState.TERMINATED: "terminate",
    TransferState.COMPLETED: "complete",
}


class FlowReport(BaseModel):
    """How the data plane says a watched flow ended (COMPLETED, FAILED, TERMINATED, ...)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: str
    error: str | None = None


class Facts(BaseModel):
    """What the workflow knows beyond the aggregate (provider side; the consumer needs none)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    flow_prepared: bool = False
    # Pull: the endpoint the consumer pulls from (MUST be in the start message, dsp.md §9).
    data_address: JsonObject | None = None
    # Set when the data plane refused or failed to prepare the flow.
    flow_error: str | None = None
    # The offer's distribution: a finite flow ends on its own, a push is watched for failure.
    finite: bool = True
    push: bool = False
    # What the data plane reported for the running flow (None: still moving, or not watched).
    flow_report: FlowReport | None = None
    # Push attempts made so far, and how many are allowed before the transfer terminates.
    flow_attempts: int = 1
    max_attempts: int = 3
    # A new DataAddress owed to a consumer that resumed.
    owed_address: JsonObject | None = None
    # The operator hold (decision 0013), and whether its deadline timer fired.
    awaiting: hold.Awaiting | None = None
    hold_timed_out: bool = False
    now: AwareDatetime | None = None


# --- steps: what the workflow executes ---------------------------------------------------------


class _Step(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StopFlow(_Step):
    """Stop the data flow (suspend, terminate or complete), revoking its tokens."""

    how: StopKind
    reason: str | None = None


class Wait(_Step):
    """Nothing to do: wait for a message, a command, a data plane report or a deadline."""


WAIT: Final = Wait()


class Act(_Step):
    """Stop the flow (if `stop`), then send `action` (if any); `detail` goes on our timeline."""

    action: Action | None = None
    stop: StopFlow | None = None
    detail: str | None = None


class PrepareFlow(_Step):
    """Provider, REQUESTED: ask the data plane for the pull endpoint or to start pushing; then
    ask `next_step` again."""


class RetryFlow(_Step):
    """Provider: the push failed with attempts left. Count `attempt`, forget the failed flow and
    prepare a new one from the start (the sink got no file); then ask `after_retry`."""

    attempt: int


class Rewatch(_Step):
    """Provider: the data plane reported neither an end nor a failure; forget it, watch again."""


class ApproveStart(_Step):
    """Provider: the operator approved the held request. End the hold, prepare the flow, then
    ask `after_approval`."""

    detail: str


class ResumeFlow(_Step):
    """Provider: the operator resumes. Resume the data flow, then send TransferStartMessage with
    the data plane's new address (dsp.md §9)."""

    detail: str


class EndHere(_Step):
    """Record our `action` (a termination) without sending it: no one to tell, or it is the
    message that failed."""

    action: SendTermination
    detail: str


class GiveUp(_Step):
    """End the transfer on our side: stop the flow (if `stop`), tell the counterparty best
    effort (if `tell_peer`), record `action`."""

    action: SendTermination
    detail: str
    stop: StopFlow | None = None
    tell_peer: bool = False


Step = Wait | Act | PrepareFlow | RetryFlow | Rewatch | ApproveStart | ResumeFlow | EndHere


# --- the run loop ------------------------------------------------------------------------------


def next_action(t: Transfer, facts: Facts) -> Action | None:
    """The automatic message of this side's state, or None to wait: the consumer's request, the
    provider's start once the flow is prepared (or its termination if it cannot be)."""
    match (t.role, t.state):
        case (Role.CONSUMER, TransferState.INITIAL):
            return SendRequest(data_address=t.data_address)
        case (Role.PROVIDER, TransferState.REQUESTED) if facts.flow_error is not None:
            return SendTermination(code=CODE_FLOW_FAILED, reason=(facts.flow_error,))
        case (Role.PROVIDER, TransferState.REQUESTED) if facts.flow_prepared:
            return SendStart(data_address=facts.data_address)
        case _:
            return None


def next_step(t: Transfer, facts: Facts) -> Step:
    """What this side does next when no operator command is pending.

    A provider's held request (decision 0013) waits, and terminates once its deadline passed; a
    request prepares the flow first; a resumed consumer is owed a start with the new address; a
    watched flow's end completes or terminates the transfer (or restarts a failed push).
    """
    if t.role is Role.PROVIDER:
        awaiting = facts.awaiting
        if awaiting is not None:
            if facts.hold_timed_out or (
                facts.now is not None and hold.expired(awaiting, facts.now)
            ):
                why = hold.expiry_reason(awaiting)
                return Act(
                    action=SendTermination(code=hold.CODE_HOLD_EXPIRED, reason=(why,)), detail=why
                )
            return WAIT  # held for the operator: no flow, no start
        if (
            t.state is TransferState.REQUESTED
            and not facts.flow_prepared
            and facts.flow_error is None
        ):
            return PrepareFlow()
        if t.state is TransferState.STARTED and facts.owed_address is not None:
            return Act(action=SendStart(data_address=facts.owed_address))
        if t.state is TransferState.STARTED and facts.flow_report is not None:
            return _after_flow(facts.flow_report, facts)
    action = next_action(t, facts)
    return WAIT if action is None else Act(action=action)


def _after_flow(report: FlowReport, facts: Facts) -> Step:
    """Provider, STARTED: the data plane finished (or failed) moving the bytes."""
    if report.state == "COMPLETED":
        return Act(action=SendCompletion(), stop=StopFlow(how="complete"))
    if report.state == "FAILED" and facts.flow_attempts < facts.max_attempts:
        return RetryFlow(attempt=facts.flow_attempts + 1)
    if report.state in ("FAILED", "TERMINATED"):
        return _flow_failed(facts.flow_attempts, report.error)
    return Rewatch()


def _flow_failed(attempts: int, error: str | None) -> Act:
    reason = f"data flow failed after {attempts} attempt(s): {error}"
    return Act(
        action=SendTermination(code=CODE_FLOW_FAILED, reason=(reason,)),
        stop=StopFlow(how="terminate", reason=error),
    )


def after_retry(facts: Facts) -> Step:
    """After `RetryFlow` prepared the new flow: watch it, or terminate if it cannot start."""
    if facts.flow_error is None:
        return WAIT
    return _flow_failed(facts.flow_attempts, facts.flow_error)


def watches_flow(t: Transfer, facts: Facts) -> bool:
    """Whether the provider waits on the data plane's report of a running flow (finite or push)
    rather than only on messages and commands."""
    return (
        t.role is Role.PROVIDER
        and t.state is TransferState.STARTED
        and (facts.finite or facts.push)
        and facts.flow_report is None
        and facts.owed_address is None
    )


def hold_wait(t: Transfer, awaiting: hold.Awaiting | None, now: AwareDatetime) -> timedelta | None:
    """How long a provider waits for a change before its hold expires (None: no limit; zero:
    expired already)."""
    if awaiting is None or t.role is not Role.PROVIDER:
        return None
    return max(awaiting.deadline - now, timedelta(0))


# --- operator commands -------------------------------------------------------------------------


def command_step(
    t: Transfer, command: hold.Command, facts: Facts, *, reason: str | None, operator: str
) -> Step:
    """What an operator's command does now (`hold.command_refusal` admitted it earlier; the state
    may have moved since, and then it does nothing). The provider's data plane follows first."""
    if t.is_terminal:
        return WAIT
    provider = t.role is Role.PROVIDER
    detail = hold.operator_detail(command, operator, reason=reason)
    reasons = (reason,) if reason else ()
    match command:
        case "start" if t.state is TransferState.REQUESTED and facts.awaiting is not None:
            return ApproveStart(detail=detail)
        case "terminate":
            if t.counterparty_pid is None:
                # The counterparty never answered: there is no process of theirs to tell.
                return EndHere(
                    action=SendTermination(code=CODE_OPERATOR, reason=(detail,)), detail=detail
                )
            return Act(
                action=SendTermination(code=CODE_OPERATOR, reason=reasons or ("operator",)),
                stop=StopFlow(how="terminate", reason=reason) if provider else None,
                detail=detail,
            )
        case "suspend" if t.state is TransferState.STARTED:
            return Act(
                action=SendSuspension(code=CODE_SUSPENDED_BY_OPERATOR, reason=reasons),
                stop=StopFlow(how="suspend", reason=reason) if provider else None,
                detail=detail,
            )
        case "complete" if t.state is TransferState.STARTED:
            return Act(
                action=SendCompletion(),
                stop=StopFlow(how="complete", reason=reason) if provider else None,
                detail=detail,
            )
        case "resume" if t.state is TransferState.SUSPENDED:
            if provider:
                return ResumeFlow(detail=detail)
            return Act(action=SendStart(), detail=detail)
        case _:
            return WAIT


def stop_if_ended(t: Transfer, facts: Facts) -> StopFlow | None:
    """Provider: a flow prepared for a process that ended while the data plane prepared it (the
    consumer terminated meanwhile) is revoked at once: nobody will be sent its token."""
    if t.is_terminal and facts.flow_prepared:
        return StopFlow(how="terminate", reason=t.code or "ended before the start")
    return None


def after_approval(t: Transfer, facts: Facts, detail: str) -> Act:
    """After `ApproveStart` prepared the flow: start, or terminate if the data plane cannot
    provide it; a consumer that ended the process meanwhile gets nothing, and the flow is
    revoked."""
    action = next_action(t, facts)
    return Act(
        action=action,
        stop=stop_if_ended(t, facts),
        detail=detail if isinstance(action, SendStart) else None,
    )


# --- inbound messages --------------------------------------------------------------------------


def inbound_judged_against(
    t: Transfer,
    inflight: TransferState | None,
    kind: MessageKind,
    sender: Role,
    data_address: JsonObject | None,
) -> TransferState | None:
    """The state an inbound message is checked against (`machine.check`), or None when it is
    admitted as it is: a restart after a resume (`machine.check_restart`).

    With our message in flight, that is the state it leads to (the peer may already be there);
    the provider's start with a new address may overtake the acknowledgement of our own resume.
    """
    resuming = (
        inflight is TransferState.STARTED
        and t.state is TransferState.SUSPENDED
        and t.role is Role.CONSUMER
        and kind is MessageKind.TRANSFER_START
        and sender is Role.PROVIDER
        and data_address is not None
    )
    if resuming or (inflight is None and machine.is_restart(t, kind, sender, data_address)):
        return None
    return inflight or t.state


def flow_after_inbound(
    before: TransferState, t: Transfer, facts: Facts, why: str
) -> StopFlow | ResumeFlow | None:
    """Provider: how the data flow follows an inbound message that moved the process from
    `before` to `t.state` (tokens die before the consumer hears our acknowledgement)."""
    if t.role is not Role.PROVIDER or t.state is before:
        return None
    how = _STOP_FOR.get(t.state)
    if how is not None and facts.flow_prepared:
        return StopFlow(how=how, reason=why)
    if before is TransferState.SUSPENDED and t.state is TransferState.STARTED:
        return ResumeFlow(detail=why)
    return None


# --- sending -----------------------------------------------------------------------------------


def outbound_target(t: Transfer, action: Action) -> tuple[TransferState, bool]:
    """The state our `action` leads to, and whether it is a restart (the provider's start with a
    new address after the consumer resumed, `machine.check_restart`).

    Raises:
        IllegalTransitionError: `action` is illegal in `t.state`.
    """
    address = action.data_address if isinstance(action, SendRequest | SendStart) else None
    if machine.is_restart(t, action.message_kind, t.role, address):
        return TransferState.STARTED, True
    return machine.check(t.state, action.message_kind, t.role), False


def pauses_before_send(sent_last: bool, pause: timedelta) -> bool:
    """Whether to pause before a send that follows our own last send (back-to-back pacing)."""
    return sent_last and pause > timedelta(0)


def answers_inbound(t: Transfer, *, updated: bool) -> bool:
    """Whether our next send answers an inbound message (an update since our last send, or the
    request the provider's process was opened with; decision 0010)."""
    return updated or (bool(t.timeline) and t.timeline[-1].direction is Direction.IN)


def give_up(t: Transfer, facts: Facts, code: str, reason: str) -> GiveUp:
    """End the transfer on our side (the data flow stopped first) and tell the counterparty, if
    it has a process to tell."""
    stop = (
        StopFlow(how="terminate", reason=reason)
        if t.role is Role.PROVIDER and facts.flow_prepared
        else None
    )
    return GiveUp(
        action=SendTermination(code=code, reason=(reason,)),
        detail=reason,
        stop=stop,
        tell_peer=t.counterparty_pid is not None and bool(t.counterparty_address),
    )


def after_failed_send(
    t: Transfer,
    facts: Facts,
    action: Action,
    *,
    error: str,
    rejected: bool,
    detail: str | None = None,
) -> EndHere | GiveUp:
    """Our `action` was refused by the peer (`rejected`) or never got through: a termination is
    recorded anyway (we were ending it; the peer's answer does not change that), anything else
    gives the transfer up as undeliverable."""
    if isinstance(action, SendTermination):
        peer = f"peer: {error}"
        return EndHere(action=action, detail=f"{detail}; {peer}" if detail else peer)
    verb = "rejected" if rejected else "could not be sent"
    what = action.message_kind.wire_name
    return give_up(t, facts, CODE_UNDELIVERABLE, f"our {what} {verb}: {error}")


# --- consumer shortcut: the negotiation first (decision 0005) ----------------------------------


def after_negotiation(n: Negotiation) -> str | EndHere:
    """The agreement id the negotiation produced, or the local end of a transfer without one."""
    agreement_id = (n.agreement or {}).get("@id")
    if n.state is not NegotiationState.FINALIZED or not isinstance(agreement_id, str):
        why = "; ".join(n.termination_reason) or n.state.value
        return _end(CODE_NEGOTIATION, f"no agreement: {why}")
    return agreement_id


def negotiation_failed(error: str) -> EndHere:
    """The local end of a transfer whose negotiation failed (the child workflow did not end)."""
    return _end(CODE_NEGOTIATION, f"the negotiation failed: {error}")


def _end(code: str, reason: str) -> EndHere:
    return EndHere(action=SendTermination(code=code, reason=(reason,)), detail=reason)
