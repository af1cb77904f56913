"""The transfer workflow's decisions (dsp.md §9), one test per branch; message kinds <-> names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.core.errors import BadRequestError, IllegalTransitionError
from connector.core.negotiation.aggregate import Negotiation
from connector.core.negotiation.states import NegotiationState
from connector.core.transfer import decide, hold, machine
from connector.core.transfer.actions import (
    SendCompletion,
    SendRequest,
    SendStart,
    SendSuspension,
    SendTermination,
)
from connector.core.transfer.aggregate import JsonObject, Transfer, new_transfer
from connector.core.transfer.decide import (
    Act,
    ApproveStart,
    EndHere,
    Facts,
    FlowReport,
    GiveUp,
    PrepareFlow,
    ResumeFlow,
    RetryFlow,
    Rewatch,
    StopFlow,
    after_approval,
    after_failed_send,
    after_negotiation,
    after_retry,
    answers_inbound,
    command_step,
    flow_after_inbound,
    give_up,
    hold_wait,
    inbound_judged_against,
    negotiation_failed,
    next_action,
    next_step,
    outbound_target,
    pauses_before_send,
    watches_flow,
)
from connector.core.transfer.messages import WIRE_NAMES, MessageKind, kind_of
from connector.core.transfer.states import TERMINAL, Direction, Role, TransferState

C, P = Role.CONSUMER, Role.PROVIDER
T0 = datetime(2025, 1, 1, tzinfo=UTC)
PUSH_TARGET: JsonObject = {"@type": "DataAddress", "endpointType": "urn:push", "endpoint": "s3://b"}
PULL_SOURCE: JsonObject = {
    "@type": "DataAddress",
    "endpointType": "urn:pull",
    "endpoint": "https://p",
}

PATHS: dict[TransferState, list[tuple[MessageKind, Role]]] = {
    TransferState.INITIAL: [],
    TransferState.REQUESTED: [(MessageKind.TRANSFER_REQUEST, C)],
    TransferState.STARTED: [(MessageKind.TRANSFER_REQUEST, C), (MessageKind.TRANSFER_START, P)],
    TransferState.SUSPENDED: [
        (MessageKind.TRANSFER_REQUEST, C),
        (MessageKind.TRANSFER_START, P),
        (MessageKind.TRANSFER_SUSPENSION, C),
    ],
    TransferState.COMPLETED: [
        (MessageKind.TRANSFER_REQUEST, C),
        (MessageKind.TRANSFER_START, P),
        (MessageKind.TRANSFER_COMPLETION, C),
    ],
    TransferState.TERMINATED: [(MessageKind.TRANSFER_TERMINATION, P)],
}


def transfer(role: Role, state: TransferState, data_address: JsonObject | None = None) -> Transfer:
    t = new_transfer(
        role=role,
        own_pid="urn:uuid:own",
        agreement_id="urn:uuid:agr",
        format="HttpData-PUSH",
        counterparty_id="did:web:other",
        data_address=data_address,
        at=T0,
    )
    for i, (kind, sender) in enumerate(PATHS[state], start=1):
        t = machine.apply(t, kind, sender, at=T0 + timedelta(minutes=i))
    assert t.state is state
    return t


def test_consumer_sends_the_request_with_its_push_target() -> None:
    t = transfer(C, TransferState.INITIAL, data_address=PUSH_TARGET)
    assert next_action(t, Facts()) == SendRequest(data_address=PUSH_TARGET)


def test_provider_starts_once_the_flow_is_prepared() -> None:
    facts = Facts(flow_prepared=True, data_address=PULL_SOURCE)
    assert next_action(transfer(P, TransferState.REQUESTED), facts) == SendStart(
        data_address=PULL_SOURCE
    )


def test_provider_waits_for_the_flow() -> None:
    assert next_action(transfer(P, TransferState.REQUESTED), Facts()) is None


def test_provider_terminates_when_the_flow_fails() -> None:
    facts = Facts(flow_prepared=True, flow_error="no such asset")
    assert next_action(transfer(P, TransferState.REQUESTED), facts) == SendTermination(
        code=decide.CODE_FLOW_FAILED, reason=("no such asset",)
    )


@pytest.mark.parametrize(
    ("role", "state"),
    [
        (P, TransferState.INITIAL),
        (C, TransferState.REQUESTED),
        (P, TransferState.STARTED),
        (C, TransferState.STARTED),
        (P, TransferState.SUSPENDED),
        (C, TransferState.SUSPENDED),
        (P, TransferState.COMPLETED),
        (C, TransferState.TERMINATED),
    ],
)
def test_otherwise_waits(role: Role, state: TransferState) -> None:
    assert next_action(transfer(role, state), Facts(flow_prepared=True)) is None


@pytest.mark.parametrize("kind", list(MessageKind))
def test_kind_of_maps_every_type_name(kind: MessageKind) -> None:
    assert kind_of(kind.wire_name) is kind
    assert kind_of(f"dspace:{kind.wire_name}") is kind


def test_kind_of_rejects_unknown_names() -> None:
    with pytest.raises(BadRequestError):
        kind_of("ContractRequestMessage")


def test_every_kind_has_a_wire_name_and_terminal_states() -> None:
    assert set(WIRE_NAMES) == set(MessageKind)
    assert {TransferState.COMPLETED, TransferState.TERMINATED} == TERMINAL
    assert not TransferState.SUSPENDED.is_terminal


# --- next_step: the run loop's decision (dsp.md §9; holds: decision 0013) ----------------------

HELD = hold.Awaiting(
    kind=hold.AWAITING_START,
    state=TransferState.REQUESTED,
    since=T0,
    deadline=T0 + timedelta(days=1),
)


def test_a_held_request_waits_for_the_operator() -> None:
    facts = Facts(awaiting=HELD, now=T0 + timedelta(hours=1))
    assert next_step(transfer(P, TransferState.REQUESTED), facts) == decide.WAIT


def test_a_held_request_without_a_clock_waits() -> None:
    assert next_step(transfer(P, TransferState.REQUESTED), Facts(awaiting=HELD)) == decide.WAIT


@pytest.mark.parametrize(
    "facts",
    [
        Facts(awaiting=HELD, now=HELD.deadline),
        Facts(awaiting=HELD, hold_timed_out=True, now=T0),
        Facts(awaiting=HELD, hold_timed_out=True),
    ],
)
def test_a_hold_past_its_deadline_terminates(facts: Facts) -> None:
    why = hold.expiry_reason(HELD)
    assert next_step(transfer(P, TransferState.REQUESTED), facts) == Act(
        action=SendTermination(code=hold.CODE_HOLD_EXPIRED, reason=(why,)), detail=why
    )


def test_the_provider_prepares_the_flow_of_a_request() -> None:
    assert isinstance(next_step(transfer(P, TransferState.REQUESTED), Facts()), PrepareFlow)


def test_then_starts_or_terminates_with_what_the_data_plane_said() -> None:
    t = transfer(P, TransferState.REQUESTED)
    prepared = Facts(flow_prepared=True, data_address=PULL_SOURCE)
    assert next_step(t, prepared) == Act(action=SendStart(data_address=PULL_SOURCE))
    refused = Facts(flow_error="no such asset")
    assert next_step(t, refused) == Act(
        action=SendTermination(code=decide.CODE_FLOW_FAILED, reason=("no such asset",))
    )


def test_a_resumed_consumer_is_owed_a_start_with_the_new_address() -> None:
    facts = Facts(owed_address=PULL_SOURCE, flow_report=FlowReport(state="COMPLETED"))
    assert next_step(transfer(P, TransferState.STARTED), facts) == Act(
        action=SendStart(data_address=PULL_SOURCE)
    )


def test_a_finite_flow_delivered_completes_the_transfer() -> None:
    facts = Facts(flow_report=FlowReport(state="COMPLETED"))
    assert next_step(transfer(P, TransferState.STARTED), facts) == Act(
        action=SendCompletion(), stop=StopFlow(how="complete")
    )


def test_a_failed_push_with_attempts_left_is_restarted() -> None:
    facts = Facts(flow_report=FlowReport(state="FAILED", error="sink down"), flow_attempts=2)
    assert next_step(transfer(P, TransferState.STARTED), facts) == RetryFlow(attempt=3)


@pytest.mark.parametrize(
    ("report", "attempts"),
    [(FlowReport(state="FAILED", error="sink down"), 3), (FlowReport(state="TERMINATED"), 1)],
)
def test_a_flow_failed_for_good_terminates(report: FlowReport, attempts: int) -> None:
    facts = Facts(flow_report=report, flow_attempts=attempts, max_attempts=3)
    reason = f"data flow failed after {attempts} attempt(s): {report.error}"
    assert next_step(transfer(P, TransferState.STARTED), facts) == Act(
        action=SendTermination(code=decide.CODE_FLOW_FAILED, reason=(reason,)),
        stop=StopFlow(how="terminate", reason=report.error),
    )


def test_another_report_is_dropped_and_the_flow_watched_again() -> None:
    facts = Facts(flow_report=FlowReport(state="STARTED"))
    assert next_step(transfer(P, TransferState.STARTED), facts) == Rewatch()


@pytest.mark.parametrize(
    ("role", "state", "step"),
    [
        (C, TransferState.INITIAL, Act(action=SendRequest(data_address=PUSH_TARGET))),
        (C, TransferState.STARTED, decide.WAIT),
        (P, TransferState.STARTED, decide.WAIT),
        (P, TransferState.SUSPENDED, decide.WAIT),
    ],
)
def test_otherwise_the_automatic_message_or_wait(
    role: Role, state: TransferState, step: decide.Step
) -> None:
    assert next_step(transfer(role, state, data_address=PUSH_TARGET), Facts()) == step


def test_after_a_restart_the_new_flow_is_watched_or_the_transfer_ends() -> None:
    assert after_retry(Facts(flow_prepared=True, flow_attempts=2)) == decide.WAIT
    reason = "data flow failed after 2 attempt(s): refused"
    assert after_retry(Facts(flow_error="refused", flow_attempts=2)) == Act(
        action=SendTermination(code=decide.CODE_FLOW_FAILED, reason=(reason,)),
        stop=StopFlow(how="terminate", reason="refused"),
    )


@pytest.mark.parametrize(
    ("role", "state", "facts", "watched"),
    [
        (P, TransferState.STARTED, Facts(), True),
        (P, TransferState.STARTED, Facts(finite=False, push=True), True),
        (P, TransferState.STARTED, Facts(finite=False, push=False), False),
        (P, TransferState.STARTED, Facts(flow_report=FlowReport(state="FAILED")), False),
        (P, TransferState.STARTED, Facts(owed_address=PULL_SOURCE), False),
        (P, TransferState.SUSPENDED, Facts(), False),
        (C, TransferState.STARTED, Facts(), False),
    ],
)
def test_which_flows_are_watched(
    role: Role, state: TransferState, facts: Facts, watched: bool
) -> None:
    assert watches_flow(transfer(role, state), facts) is watched


def test_a_hold_bounds_the_providers_wait() -> None:
    t = transfer(P, TransferState.REQUESTED)
    assert hold_wait(t, None, T0) is None
    assert hold_wait(transfer(C, TransferState.REQUESTED), HELD, T0) is None
    assert hold_wait(t, HELD, T0 + timedelta(hours=1)) == timedelta(hours=23)
    assert hold_wait(t, HELD, HELD.deadline + timedelta(hours=1)) == timedelta(0)


# --- operator commands -------------------------------------------------------------------------


def command(
    t: Transfer, cmd: hold.Command, facts: Facts | None = None, reason: str | None = "why"
) -> decide.Step:
    return command_step(t, cmd, facts or Facts(), reason=reason, operator="alice")


def detail(cmd: str, reason: str | None = "why") -> str:
    return hold.operator_detail(cmd, "alice", reason=reason)


def test_a_command_on_an_ended_transfer_does_nothing() -> None:
    assert command(transfer(P, TransferState.TERMINATED), "terminate") == decide.WAIT


def test_start_approves_a_held_request() -> None:
    t = transfer(P, TransferState.REQUESTED)
    assert command(t, "start", Facts(awaiting=HELD)) == ApproveStart(detail=detail("start"))
    assert command(t, "start") == decide.WAIT


def test_terminate_before_the_peer_answered_ends_here() -> None:
    t = transfer(C, TransferState.INITIAL)
    assert command(t, "terminate") == EndHere(
        action=SendTermination(code=decide.CODE_OPERATOR, reason=(detail("terminate"),)),
        detail=detail("terminate"),
    )


@pytest.mark.parametrize(
    ("role", "reason", "stop", "reasons"),
    [
        (P, "why", StopFlow(how="terminate", reason="why"), ("why",)),
        (C, None, None, ("operator",)),
    ],
)
def test_terminate_stops_the_providers_flow_and_tells_the_peer(
    role: Role, reason: str | None, stop: StopFlow | None, reasons: tuple[str, ...]
) -> None:
    t = transfer(role, TransferState.STARTED)
    t = t.model_copy(update={"consumer_pid": "urn:uuid:c", "provider_pid": "urn:uuid:p"})
    step = command(t, "terminate", reason=reason)
    assert step == Act(
        action=SendTermination(code=decide.CODE_OPERATOR, reason=reasons),
        stop=stop,
        detail=detail("terminate", reason),
    )


@pytest.mark.parametrize("role", [P, C])
def test_suspend_and_complete_a_started_transfer(role: Role) -> None:
    t = transfer(role, TransferState.STARTED)
    provider = role is P
    assert command(t, "suspend") == Act(
        action=SendSuspension(code=decide.CODE_SUSPENDED_BY_OPERATOR, reason=("why",)),
        stop=StopFlow(how="suspend", reason="why") if provider else None,
        detail=detail("suspend"),
    )
    assert command(t, "complete", reason=None) == Act(
        action=SendCompletion(),
        stop=StopFlow(how="complete") if provider else None,
        detail=detail("complete", None),
    )


def test_resume_a_suspended_transfer() -> None:
    assert command(transfer(P, TransferState.SUSPENDED), "resume") == ResumeFlow(
        detail=detail("resume")
    )
    assert command(transfer(C, TransferState.SUSPENDED), "resume") == Act(
        action=SendStart(), detail=detail("resume")
    )


@pytest.mark.parametrize(
    ("state", "cmd"),
    [
        (TransferState.REQUESTED, "suspend"),
        (TransferState.SUSPENDED, "complete"),
        (TransferState.STARTED, "resume"),
    ],
)
def test_a_command_the_state_moved_past_does_nothing(
    state: TransferState, cmd: hold.Command
) -> None:
    assert command(transfer(P, state), cmd) == decide.WAIT


def test_after_approval_start_or_terminate_or_revoke_the_flow() -> None:
    prepared = Facts(flow_prepared=True, data_address=PULL_SOURCE)
    requested = transfer(P, TransferState.REQUESTED)
    assert after_approval(requested, prepared, "d") == Act(
        action=SendStart(data_address=PULL_SOURCE), detail="d"
    )
    assert after_approval(requested, Facts(flow_error="x"), "d") == Act(
        action=SendTermination(code=decide.CODE_FLOW_FAILED, reason=("x",))
    )
    ended = transfer(P, TransferState.TERMINATED)
    assert after_approval(ended, prepared, "d") == Act(
        stop=StopFlow(how="terminate", reason="ended before the start")
    )
    assert after_approval(ended.model_copy(update={"code": "c"}), prepared, "d") == Act(
        stop=StopFlow(how="terminate", reason="c")
    )
    assert after_approval(ended, Facts(flow_error="x"), "d") == Act()


# --- inbound messages --------------------------------------------------------------------------

K = MessageKind


def resumed_by(role: Role) -> Transfer:
    """STARTED again after `role`'s resume (a TransferStartMessage from SUSPENDED)."""
    t = transfer(P, TransferState.SUSPENDED)
    return machine.apply(t, K.TRANSFER_START, role, at=T0 + timedelta(hours=1))


def test_inbound_is_judged_against_our_state_or_our_in_flight_target() -> None:
    t = transfer(P, TransferState.STARTED)
    args = (K.TRANSFER_SUSPENSION, C, None)
    assert inbound_judged_against(t, None, *args) is TransferState.STARTED
    assert inbound_judged_against(t, TransferState.COMPLETED, *args) is TransferState.COMPLETED


def test_the_providers_start_after_our_resume_is_admitted() -> None:
    consumer = transfer(C, TransferState.SUSPENDED)
    start = (K.TRANSFER_START, P, PULL_SOURCE)
    assert inbound_judged_against(consumer, TransferState.STARTED, *start) is None
    # Without a new address it is judged like any message.
    no_address = (K.TRANSFER_START, P, None)
    assert (
        inbound_judged_against(consumer, TransferState.STARTED, *no_address)
        is TransferState.STARTED
    )
    assert inbound_judged_against(consumer, None, *start) is TransferState.SUSPENDED


def test_a_restart_after_the_consumers_resume_is_admitted() -> None:
    consumer = transfer(C, TransferState.SUSPENDED)
    consumer = machine.apply_outbound(consumer, SendStart(), at=T0 + timedelta(hours=1))
    start = (K.TRANSFER_START, P, PULL_SOURCE)
    assert inbound_judged_against(consumer, None, *start) is None
    assert inbound_judged_against(consumer, TransferState.STARTED, *start) is TransferState.STARTED


@pytest.mark.parametrize(
    ("before", "after", "prepared", "follow"),
    [
        (TransferState.STARTED, TransferState.SUSPENDED, True, StopFlow(how="suspend", reason="w")),
        (
            TransferState.STARTED,
            TransferState.COMPLETED,
            True,
            StopFlow(how="complete", reason="w"),
        ),
        (
            TransferState.REQUESTED,
            TransferState.TERMINATED,
            True,
            StopFlow(how="terminate", reason="w"),
        ),
        (TransferState.REQUESTED, TransferState.TERMINATED, False, None),
        (TransferState.SUSPENDED, TransferState.STARTED, True, ResumeFlow(detail="w")),
        (TransferState.INITIAL, TransferState.REQUESTED, False, None),
        (TransferState.STARTED, TransferState.STARTED, True, None),
    ],
)
def test_the_providers_flow_follows_inbound_messages(
    before: TransferState, after: TransferState, prepared: bool, follow: object
) -> None:
    t = transfer(P, after)
    assert flow_after_inbound(before, t, Facts(flow_prepared=prepared), "w") == follow


def test_the_consumer_has_no_flow_to_follow() -> None:
    t = transfer(C, TransferState.TERMINATED)
    assert flow_after_inbound(TransferState.STARTED, t, Facts(flow_prepared=True), "w") is None


# --- sending -----------------------------------------------------------------------------------


def test_outbound_target_and_restart() -> None:
    requested = transfer(P, TransferState.REQUESTED)
    assert outbound_target(requested, SendStart(data_address=PULL_SOURCE)) == (
        TransferState.STARTED,
        False,
    )
    restarted = resumed_by(C)
    assert outbound_target(restarted, SendStart(data_address=PULL_SOURCE)) == (
        TransferState.STARTED,
        True,
    )
    assert outbound_target(restarted, SendCompletion()) == (TransferState.COMPLETED, False)
    with pytest.raises(IllegalTransitionError):
        outbound_target(requested, SendCompletion())


def test_back_to_back_sends_pause_only_when_asked() -> None:
    assert pauses_before_send(True, timedelta(milliseconds=50))
    assert not pauses_before_send(True, timedelta(0))
    assert not pauses_before_send(False, timedelta(milliseconds=50))


def test_a_send_answers_an_update_or_the_opening_request() -> None:
    assert not answers_inbound(transfer(C, TransferState.INITIAL), updated=False)
    assert answers_inbound(transfer(C, TransferState.INITIAL), updated=True)
    provider = transfer(P, TransferState.REQUESTED)
    provider = provider.model_copy(
        update={
            "timeline": tuple(
                e.model_copy(update={"direction": Direction.IN}) for e in provider.timeline
            )
        }
    )
    assert answers_inbound(provider, updated=False)
    ours = provider.model_copy(
        update={
            "timeline": tuple(
                e.model_copy(update={"direction": Direction.OUT}) for e in provider.timeline
            )
        }
    )
    assert not answers_inbound(ours, updated=False)


def test_a_failed_termination_is_recorded_anyway() -> None:
    t = transfer(C, TransferState.STARTED)
    action = SendTermination(code="c")
    assert after_failed_send(t, Facts(), action, error="503", rejected=False) == EndHere(
        action=action, detail="peer: 503"
    )
    assert after_failed_send(
        t, Facts(), action, error="503", rejected=True, detail="by operator"
    ) == EndHere(action=action, detail="by operator; peer: 503")


@pytest.mark.parametrize(("rejected", "verb"), [(True, "rejected"), (False, "could not be sent")])
def test_another_failed_message_gives_the_transfer_up(rejected: bool, verb: str) -> None:
    t = transfer(P, TransferState.REQUESTED).model_copy(
        update={"consumer_pid": "urn:uuid:c", "counterparty_address": "https://c/cb"}
    )
    reason = f"our TransferStartMessage {verb}: 400"
    step = after_failed_send(
        t, Facts(flow_prepared=True), SendStart(), error="400", rejected=rejected
    )
    assert step == GiveUp(
        action=SendTermination(code=decide.CODE_UNDELIVERABLE, reason=(reason,)),
        detail=reason,
        stop=StopFlow(how="terminate", reason=reason),
        tell_peer=True,
    )


@pytest.mark.parametrize(
    ("role", "prepared", "update", "stop", "tell"),
    [
        (P, False, {"consumer_pid": "c", "counterparty_address": "https://c"}, False, True),
        (C, True, {"provider_pid": "p", "counterparty_address": "https://p"}, False, True),
        (C, False, {"provider_pid": None}, False, False),
        (C, False, {"provider_pid": "p", "counterparty_address": ""}, False, False),
        (P, True, {"consumer_pid": "c", "counterparty_address": None}, True, False),
    ],
)
def test_giving_up_stops_our_flow_and_tells_a_peer_we_can_reach(
    role: Role, prepared: bool, update: dict[str, object], stop: bool, tell: bool
) -> None:
    t = transfer(role, TransferState.REQUESTED).model_copy(update=update)
    step = give_up(t, Facts(flow_prepared=prepared), "c", "r")
    assert (step.stop is not None, step.tell_peer) == (stop, tell)
    assert step.action == SendTermination(code="c", reason=("r",))


# --- consumer shortcut: the negotiation first (decision 0005) ----------------------------------


def negotiation(state: NegotiationState, **update: object) -> Negotiation:
    n = Negotiation(
        role=C,
        state=state,
        initiator=C,
        consumer_pid="urn:uuid:c",
        participant_id="did:web:c",
        counterparty_id="did:web:p",
        created_at=T0,
        updated_at=T0,
    )
    return n.model_copy(update=update)


def test_the_negotiations_agreement_is_the_transfers() -> None:
    n = negotiation(NegotiationState.FINALIZED, agreement={"@id": "urn:uuid:agr"})
    assert after_negotiation(n) == "urn:uuid:agr"


@pytest.mark.parametrize(
    ("n", "why"),
    [
        (negotiation(NegotiationState.TERMINATED, termination_reason=("a", "b")), "a; b"),
        (negotiation(NegotiationState.TERMINATED), "TERMINATED"),
        (negotiation(NegotiationState.FINALIZED, agreement={"@id": 7}), "FINALIZED"),
        (negotiation(NegotiationState.FINALIZED), "FINALIZED"),
    ],
)
def test_no_agreement_ends_the_transfer_here(n: Negotiation, why: str) -> None:
    reason = f"no agreement: {why}"
    assert after_negotiation(n) == EndHere(
        action=SendTermination(code=decide.CODE_NEGOTIATION, reason=(reason,)), detail=reason
    )


def test_a_failed_negotiation_ends_the_transfer_here() -> None:
    reason = "the negotiation failed: boom"
    assert negotiation_failed("boom") == EndHere(
        action=SendTermination(code=decide.CODE_NEGOTIATION, reason=(reason,)), detail=reason
    )
