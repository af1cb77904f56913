"""Transfer process state machine vs the spec table (dsp.md §9), plus Hypothesis invariants."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from pydantic import TypeAdapter

from connector.core.errors import BadRequestError, ErrorCode, IllegalTransitionError
from connector.core.transfer import machine
from connector.core.transfer.actions import (
    Action,
    SendCompletion,
    SendRequest,
    SendStart,
    SendSuspension,
    SendTermination,
)
from connector.core.transfer.aggregate import JsonObject, Transfer, new_transfer
from connector.core.transfer.messages import MessageKind as K
from connector.core.transfer.states import Direction, Role
from connector.core.transfer.states import TransferState as S

C, P = Role.CONSUMER, Role.PROVIDER
T0 = datetime(2025, 1, 1, tzinfo=UTC)
PULL_ADDRESS: JsonObject = {
    "@type": "DataAddress",
    "endpointType": "https://w3id.org/idsa/v4.1/HTTP",
    "endpoint": "https://provider.example/data",
}

# Written from dsp.md §9 (the spec diagram), NOT derived from machine.TRANSITIONS.
ALLOWED: list[tuple[S, K, Role, S]] = [
    (S.INITIAL, K.TRANSFER_REQUEST, C, S.REQUESTED),
    (S.REQUESTED, K.TRANSFER_START, P, S.STARTED),
    (S.STARTED, K.TRANSFER_COMPLETION, P, S.COMPLETED),
    (S.STARTED, K.TRANSFER_COMPLETION, C, S.COMPLETED),
    (S.STARTED, K.TRANSFER_SUSPENSION, P, S.SUSPENDED),
    (S.STARTED, K.TRANSFER_SUSPENSION, C, S.SUSPENDED),
    (S.SUSPENDED, K.TRANSFER_START, P, S.STARTED),
    (S.SUSPENDED, K.TRANSFER_START, C, S.STARTED),
    # Termination: either side, every non-terminal state.
    (S.INITIAL, K.TRANSFER_TERMINATION, C, S.TERMINATED),
    (S.INITIAL, K.TRANSFER_TERMINATION, P, S.TERMINATED),
    (S.REQUESTED, K.TRANSFER_TERMINATION, C, S.TERMINATED),
    (S.REQUESTED, K.TRANSFER_TERMINATION, P, S.TERMINATED),
    (S.STARTED, K.TRANSFER_TERMINATION, C, S.TERMINATED),
    (S.STARTED, K.TRANSFER_TERMINATION, P, S.TERMINATED),
    (S.SUSPENDED, K.TRANSFER_TERMINATION, C, S.TERMINATED),
    (S.SUSPENDED, K.TRANSFER_TERMINATION, P, S.TERMINATED),
]
ALLOWED_MAP = {(state, kind, sender): to for state, kind, sender, to in ALLOWED}
FORBIDDEN = [combo for combo in itertools.product(S, K, Role) if combo not in ALLOWED_MAP]


@pytest.mark.parametrize(("state", "kind", "sender", "expected"), ALLOWED)
def test_spec_transition_is_allowed(state: S, kind: K, sender: Role, expected: S) -> None:
    assert machine.check(state, kind, sender) is expected


@pytest.mark.parametrize(("state", "kind", "sender"), FORBIDDEN)
def test_every_other_combination_is_illegal(state: S, kind: K, sender: Role) -> None:
    with pytest.raises(IllegalTransitionError) as excinfo:
        machine.check(state, kind, sender)
    assert excinfo.value.code is ErrorCode.CONFLICT


def test_table_has_no_rows_beyond_the_spec() -> None:
    table = {
        (state, kind, sender): to
        for (state, kind), to in machine.TRANSITIONS.items()
        for sender in Role
        if machine.SENDER[(state, kind)] in (None, sender)
    }
    assert table == ALLOWED_MAP
    assert set(machine.SENDER) == set(machine.TRANSITIONS)


@pytest.mark.parametrize("sender", list(Role))
def test_completion_while_requested_is_illegal(sender: Role) -> None:
    with pytest.raises(IllegalTransitionError, match="state REQUESTED"):
        machine.check(S.REQUESTED, K.TRANSFER_COMPLETION, sender)


def test_start_from_the_consumer_while_requested_is_illegal() -> None:
    with pytest.raises(
        IllegalTransitionError, match="only the provider sends TransferStartMessage"
    ):
        machine.check(S.REQUESTED, K.TRANSFER_START, C)


@pytest.mark.parametrize("state", [S.COMPLETED, S.TERMINATED])
@pytest.mark.parametrize("kind", list(K))
@pytest.mark.parametrize("sender", list(Role))
def test_anything_after_a_terminal_state_is_illegal(state: S, kind: K, sender: Role) -> None:
    with pytest.raises(IllegalTransitionError, match=f"{state} is terminal"):
        machine.check(state, kind, sender)


@pytest.mark.parametrize(
    ("state", "kind"),
    [
        (S.REQUESTED, K.TRANSFER_SUSPENSION),
        (S.SUSPENDED, K.TRANSFER_COMPLETION),
        # A repeated start is a no-op only when deduplicated upstream (dsp.md §9).
        (S.STARTED, K.TRANSFER_START),
        (S.REQUESTED, K.TRANSFER_REQUEST),
    ],
)
def test_other_spec_negatives_are_illegal(state: S, kind: K) -> None:
    with pytest.raises(IllegalTransitionError):
        machine.check(state, kind, P)


def test_error_reason_names_state_message_sender_and_alternatives() -> None:
    with pytest.raises(IllegalTransitionError) as excinfo:
        machine.check(S.SUSPENDED, K.TRANSFER_COMPLETION, C)
    (reason,) = excinfo.value.reasons
    assert reason == (
        "transfer in state SUSPENDED cannot accept TransferCompletionMessage from the consumer: "
        "allowed in SUSPENDED are TransferStartMessage (either side), "
        "TransferTerminationMessage (either side)"
    )


def test_allowed_messages_depends_on_state() -> None:
    assert machine.allowed_messages(S.REQUESTED) == [
        (K.TRANSFER_START, P),
        (K.TRANSFER_TERMINATION, None),
    ]
    assert machine.allowed_messages(S.COMPLETED) == []


# --- apply -------------------------------------------------------------------------------------


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _provider() -> Transfer:
    return new_transfer(
        role=P,
        own_pid="urn:uuid:p1",
        agreement_id="urn:uuid:agr-1",
        format="HttpData-PULL",
        counterparty_id="did:web:consumer",
        at=T0,
    )


def _consumer() -> Transfer:
    return new_transfer(
        role=C,
        own_pid="urn:uuid:c1",
        agreement_id="urn:uuid:agr-1",
        format="HttpData-PULL",
        counterparty_id="did:web:provider",
        counterparty_address="https://provider.example/dsp",
        at=T0,
    )


def test_provider_lifecycle_with_suspend_and_resume() -> None:
    t = machine.apply(
        _provider(),
        K.TRANSFER_REQUEST,
        C,
        at=_at(1),
        consumer_pid="urn:uuid:c1",
        counterparty_address="https://consumer.example/cb",
    )
    assert (t.state, t.consumer_pid, t.counterparty_address) == (
        S.REQUESTED,
        "urn:uuid:c1",
        "https://consumer.example/cb",
    )
    t = machine.apply_outbound(t, SendStart(data_address=PULL_ADDRESS), at=_at(2))
    assert (t.state, t.data_address) == (S.STARTED, PULL_ADDRESS)
    t = machine.apply(t, K.TRANSFER_SUSPENSION, C, at=_at(3), code="pause", reason=("maint",))
    assert (t.state, t.code, t.reason) == (S.SUSPENDED, "pause", ("maint",))
    assert t.timeline[-1].detail == "code pause; maint"
    # The consumer resumes a suspension it caused; the data address stays.
    t = machine.apply(t, K.TRANSFER_START, C, at=_at(4))
    assert (t.state, t.data_address) == (S.STARTED, PULL_ADDRESS)
    t = machine.apply_outbound(t, SendCompletion(), at=_at(5))
    assert t.state is S.COMPLETED
    assert t.version == 5
    assert [e.direction for e in t.timeline] == [
        Direction.IN,
        Direction.OUT,
        Direction.IN,
        Direction.IN,
        Direction.OUT,
    ]
    assert t.is_terminal
    assert t.updated_at == _at(5)


def test_consumer_request_takes_provider_pid_from_the_ack() -> None:
    t = machine.apply_outbound(_consumer(), SendRequest(), at=_at(1), provider_pid="urn:uuid:p1")
    assert (t.state, t.own_pid, t.counterparty_pid) == (S.REQUESTED, "urn:uuid:c1", "urn:uuid:p1")
    t = machine.apply_outbound(t, SendTermination(code="stop", reason=("done",)), at=_at(2))
    assert (t.state, t.code, t.reason) == (S.TERMINATED, "stop", ("done",))


def test_outbound_suspension_records_code_and_reason() -> None:
    t = machine.apply(_provider(), K.TRANSFER_REQUEST, C, at=_at(1))
    t = machine.apply(t, K.TRANSFER_START, P, at=_at(2))
    t = machine.apply_outbound(t, SendSuspension(code="s"), at=_at(3), detail="operator")
    assert (t.state, t.code, t.reason, t.timeline[-1].detail) == (S.SUSPENDED, "s", (), "operator")


def test_termination_without_code_has_no_detail() -> None:
    t = machine.apply(_provider(), K.TRANSFER_TERMINATION, P, at=_at(1))
    assert t.timeline[-1].detail is None


def test_apply_rejects_a_pid_that_contradicts_the_known_one() -> None:
    with pytest.raises(BadRequestError, match="providerPid"):
        machine.apply(_provider(), K.TRANSFER_REQUEST, C, at=_at(1), provider_pid="urn:uuid:x")


def test_apply_accepts_a_repeated_known_pid() -> None:
    t = machine.apply(_provider(), K.TRANSFER_REQUEST, C, at=_at(1), provider_pid="urn:uuid:p1")
    assert t.provider_pid == "urn:uuid:p1"


def test_apply_rejects_a_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        machine.apply(_provider(), K.TRANSFER_REQUEST, C, at=datetime(2025, 1, 1))  # noqa: DTZ001


def test_aggregate_and_actions_round_trip_through_json() -> None:
    t = machine.apply(_provider(), K.TRANSFER_REQUEST, C, at=_at(1), data_address=PULL_ADDRESS)
    assert Transfer.model_validate_json(t.model_dump_json()) == t
    adapter: TypeAdapter[Action] = TypeAdapter(Action)
    for action in (SendStart(data_address=PULL_ADDRESS), SendSuspension(code="c", reason=("r",))):
        assert adapter.validate_json(adapter.dump_json(action)) == action


def test_render_mermaid_draws_every_table_row() -> None:
    diagram = machine.render_mermaid()
    assert diagram.startswith("stateDiagram-v2\n")
    assert "    REQUESTED --> STARTED : TransferStartMessage by provider\n" in diagram
    assert "    SUSPENDED --> STARTED : TransferStartMessage by either side\n" in diagram
    assert diagram.count(" --> ") == len(machine.TRANSITIONS) + 1 + 2


# --- Hypothesis invariants -----------------------------------------------------------------------


class TransferMessages(RuleBasedStateMachine):
    """Random message streams (legal and not) against one provider-side aggregate."""

    def __init__(self) -> None:
        super().__init__()
        self.t = _provider()
        self.minutes = 0

    def _deliver(self, kind: K, sender: Role) -> None:
        before = self.t
        self.minutes += 1
        try:
            after = machine.apply(before, kind, sender, at=_at(self.minutes))
        except IllegalTransitionError:
            assert (before.state, kind, sender) not in ALLOWED_MAP
            return
        # Terminal states absorb; no message from the wrong role is accepted.
        assert not before.state.is_terminal
        assert ALLOWED_MAP[(before.state, kind, sender)] is after.state
        assert after.version == before.version + 1
        self.t = after

    @rule(kind=st.sampled_from(list(K)), sender=st.sampled_from(list(Role)))
    def any_message(self, kind: K, sender: Role) -> None:
        self._deliver(kind, sender)

    @precondition(lambda self: not self.t.is_terminal)
    @rule(data=st.data())
    def legal_message(self, data: st.DataObject) -> None:
        moves = [(k, s) for (state, k, s) in ALLOWED_MAP if state is self.t.state]
        kind, sender = data.draw(st.sampled_from(moves))
        self._deliver(kind, sender)

    @invariant()
    def completed_only_from_started(self) -> None:
        if self.t.state is S.COMPLETED:
            assert self.t.timeline[-1].from_state is S.STARTED

    @invariant()
    def started_only_after_a_provider_start(self) -> None:
        # The first start out of REQUESTED is always the provider's.
        starts = [e for e in self.t.timeline if e.to_state is S.STARTED]
        if starts:
            assert starts[0].from_state is S.REQUESTED
            assert starts[0].direction is Direction.OUT  # we are the provider

    @invariant()
    def version_counts_accepted_messages(self) -> None:
        assert self.t.version == len(self.t.timeline)

    @invariant()
    def timeline_is_a_connected_path(self) -> None:
        states = [S.INITIAL] + [e.to_state for e in self.t.timeline]
        assert [e.from_state for e in self.t.timeline] == states[:-1]
        assert states[-1] is self.t.state


TransferMessages.TestCase.settings = settings(max_examples=200, stateful_step_count=30)
test_transfer_message_streams = TransferMessages.TestCase
