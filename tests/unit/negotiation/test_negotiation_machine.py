"""Negotiation state machine vs the spec table (dsp.md §8), plus Hypothesis invariants."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from pydantic import TypeAdapter

from connector.core.errors import BadRequestError, ErrorCode, IllegalTransitionError
from connector.core.negotiation import machine
from connector.core.negotiation.actions import (
    Action,
    SendAccepted,
    SendAgreement,
    SendRequest,
    SendTermination,
)
from connector.core.negotiation.aggregate import JsonObject, Negotiation, new_negotiation
from connector.core.negotiation.messages import MessageKind as K
from connector.core.negotiation.states import Direction, Role
from connector.core.negotiation.states import NegotiationState as S

C, P = Role.CONSUMER, Role.PROVIDER
T0 = datetime(2025, 1, 1, tzinfo=UTC)
OFFER: JsonObject = {"@id": "urn:uuid:offer-1", "@type": "Offer", "target": "urn:uuid:ds-1"}
AGREEMENT: JsonObject = {"@id": "urn:uuid:agr-1", "@type": "Agreement", "target": "urn:uuid:ds-1"}

# Written from dsp.md §8 (the spec diagram), NOT derived from machine.TRANSITIONS.
ALLOWED: list[tuple[S, K, Role, S]] = [
    (S.INITIAL, K.CONTRACT_REQUEST, C, S.REQUESTED),
    (S.INITIAL, K.CONTRACT_OFFER, P, S.OFFERED),
    (S.REQUESTED, K.CONTRACT_OFFER, P, S.OFFERED),
    (S.REQUESTED, K.AGREEMENT, P, S.AGREED),
    (S.OFFERED, K.CONTRACT_REQUEST, C, S.REQUESTED),
    (S.OFFERED, K.ACCEPTED_EVENT, C, S.ACCEPTED),
    (S.ACCEPTED, K.AGREEMENT, P, S.AGREED),
    (S.AGREED, K.VERIFICATION, C, S.VERIFIED),
    (S.VERIFIED, K.FINALIZED_EVENT, P, S.FINALIZED),
    # Termination: either side, every non-terminal state (project decision, dsp.md §14).
    (S.INITIAL, K.TERMINATION, C, S.TERMINATED),
    (S.INITIAL, K.TERMINATION, P, S.TERMINATED),
    (S.REQUESTED, K.TERMINATION, C, S.TERMINATED),
    (S.REQUESTED, K.TERMINATION, P, S.TERMINATED),
    (S.OFFERED, K.TERMINATION, C, S.TERMINATED),
    (S.OFFERED, K.TERMINATION, P, S.TERMINATED),
    (S.ACCEPTED, K.TERMINATION, C, S.TERMINATED),
    (S.ACCEPTED, K.TERMINATION, P, S.TERMINATED),
    (S.AGREED, K.TERMINATION, C, S.TERMINATED),
    (S.AGREED, K.TERMINATION, P, S.TERMINATED),
    (S.VERIFIED, K.TERMINATION, C, S.TERMINATED),
    (S.VERIFIED, K.TERMINATION, P, S.TERMINATED),
]
ALLOWED_MAP = {(state, kind, sender): to for state, kind, sender, to in ALLOWED}
ALL_COMBINATIONS = list(itertools.product(S, K, Role))
FORBIDDEN = [combo for combo in ALL_COMBINATIONS if combo not in ALLOWED_MAP]


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
        if machine.SENDER[kind] in (None, sender)
    }
    assert table == ALLOWED_MAP


def test_verification_while_offered_is_illegal() -> None:
    with pytest.raises(IllegalTransitionError, match="state OFFERED"):
        machine.check(S.OFFERED, K.VERIFICATION, C)


@pytest.mark.parametrize("state", [S.REQUESTED, S.OFFERED, S.ACCEPTED, S.AGREED])
def test_finalized_before_verified_is_illegal(state: S) -> None:
    with pytest.raises(IllegalTransitionError):
        machine.check(state, K.FINALIZED_EVENT, P)


@pytest.mark.parametrize("state", [S.FINALIZED, S.TERMINATED])
@pytest.mark.parametrize("kind", list(K))
@pytest.mark.parametrize("sender", list(Role))
def test_anything_after_a_terminal_state_is_illegal(state: S, kind: K, sender: Role) -> None:
    with pytest.raises(IllegalTransitionError, match=f"{state} is terminal"):
        machine.check(state, kind, sender)


def test_accepted_sent_by_the_provider_is_illegal() -> None:
    with pytest.raises(IllegalTransitionError, match="only the consumer sends"):
        machine.check(S.OFFERED, K.ACCEPTED_EVENT, P)


def test_provider_reoffer_while_offered_is_illegal() -> None:
    with pytest.raises(IllegalTransitionError):
        machine.check(S.OFFERED, K.CONTRACT_OFFER, P)


def test_error_reason_names_state_message_sender_and_alternatives() -> None:
    with pytest.raises(IllegalTransitionError) as excinfo:
        machine.check(S.VERIFIED, K.CONTRACT_OFFER, C)
    (reason,) = excinfo.value.reasons
    assert reason.startswith(
        "negotiation in state VERIFIED cannot accept ContractOfferMessage from the consumer: "
    )
    assert "ContractNegotiationEventMessage(FINALIZED) (provider)" in reason
    assert "ContractNegotiationTerminationMessage (either side)" in reason


def test_allowed_messages_lists_kinds_and_senders() -> None:
    assert machine.allowed_messages(S.OFFERED) == [
        (K.CONTRACT_REQUEST, C),
        (K.ACCEPTED_EVENT, C),
        (K.TERMINATION, None),
    ]
    assert machine.allowed_messages(S.FINALIZED) == []


# --- apply -------------------------------------------------------------------------------------


def _provider() -> Negotiation:
    return new_negotiation(
        role=P,
        initiator=C,
        own_pid="urn:uuid:p1",
        participant_id="did:web:provider",
        counterparty_id="did:web:consumer",
        at=T0,
    )


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_apply_inbound_request_fills_pid_address_offer_and_timeline() -> None:
    n = machine.apply(
        _provider(),
        K.CONTRACT_REQUEST,
        C,
        at=_at(1),
        consumer_pid="urn:uuid:c1",
        counterparty_address="https://consumer.example/cb",
        offer=OFFER,
    )
    assert n.state is S.REQUESTED
    assert (n.consumer_pid, n.provider_pid) == ("urn:uuid:c1", "urn:uuid:p1")
    assert n.counterparty_address == "https://consumer.example/cb"
    assert n.offer == OFFER
    assert n.version == 1
    assert n.updated_at == _at(1)
    assert n.created_at == T0
    (entry,) = n.timeline
    assert (entry.direction, entry.kind, entry.from_state, entry.to_state) == (
        Direction.IN,
        K.CONTRACT_REQUEST,
        S.INITIAL,
        S.REQUESTED,
    )


def test_apply_does_not_mutate_the_input() -> None:
    before = _provider()
    machine.apply(before, K.CONTRACT_REQUEST, C, at=_at(1), offer=OFFER)
    assert before.state is S.INITIAL
    assert before.version == 0
    assert before.timeline == ()


def test_apply_rejects_a_pid_that_contradicts_the_known_one() -> None:
    with pytest.raises(BadRequestError, match="providerPid"):
        machine.apply(
            _provider(),
            K.CONTRACT_REQUEST,
            C,
            at=_at(1),
            provider_pid="urn:uuid:other",
            offer=OFFER,
        )


def test_apply_accepts_a_repeated_known_pid() -> None:
    n = machine.apply(
        _provider(), K.CONTRACT_REQUEST, C, at=_at(1), provider_pid="urn:uuid:p1", offer=OFFER
    )
    assert n.provider_pid == "urn:uuid:p1"


@pytest.mark.parametrize(("kind", "sender"), [(K.CONTRACT_REQUEST, C), (K.CONTRACT_OFFER, P)])
def test_request_or_offer_without_offer_is_a_bad_request(kind: K, sender: Role) -> None:
    with pytest.raises(BadRequestError, match="must carry an offer"):
        machine.apply(_provider(), kind, sender, at=_at(1))


def test_agreement_without_agreement_is_a_bad_request() -> None:
    n = machine.apply(_provider(), K.CONTRACT_REQUEST, C, at=_at(1), offer=OFFER)
    with pytest.raises(BadRequestError, match="must carry an agreement"):
        machine.apply(n, K.AGREEMENT, P, at=_at(2))


def test_apply_rejects_a_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        machine.apply(_provider(), K.CONTRACT_REQUEST, C, at=datetime(2025, 1, 1), offer=OFFER)  # noqa: DTZ001


def test_illegal_apply_raises_before_anything_changes() -> None:
    with pytest.raises(IllegalTransitionError):
        machine.apply(_provider(), K.VERIFICATION, C, at=_at(1))


def test_termination_records_code_reason_and_detail() -> None:
    n = machine.apply(
        _provider(), K.TERMINATION, C, at=_at(1), code="bye", reason=("changed my mind",)
    )
    assert n.state is S.TERMINATED
    assert n.termination_code == "bye"
    assert n.termination_reason == ("changed my mind",)
    assert n.timeline[-1].detail == "code bye; changed my mind"


def test_termination_keeps_an_explicit_detail() -> None:
    n = machine.apply(_provider(), K.TERMINATION, P, at=_at(1), code="c", detail="deadline passed")
    assert (n.termination_code, n.timeline[-1].detail) == ("c", "deadline passed")


def test_termination_without_code_has_no_detail() -> None:
    n = machine.apply(_provider(), K.TERMINATION, P, at=_at(1))
    assert n.timeline[-1].detail is None
    assert n.timeline[-1].direction is Direction.OUT


def test_full_provider_path_via_apply_outbound() -> None:
    n = machine.apply(_provider(), K.CONTRACT_REQUEST, C, at=_at(1), offer=OFFER)
    n = machine.apply_outbound(n, SendAgreement(agreement=AGREEMENT), at=_at(2))
    assert (n.state, n.agreement) == (S.AGREED, AGREEMENT)
    n = machine.apply(n, K.VERIFICATION, C, at=_at(3))
    n = machine.apply(n, K.FINALIZED_EVENT, P, at=_at(4), detail="done")
    assert n.state is S.FINALIZED
    assert n.version == 4
    assert [e.direction for e in n.timeline] == [
        Direction.IN,
        Direction.OUT,
        Direction.IN,
        Direction.OUT,
    ]
    assert n.timeline[-1].detail == "done"


def test_consumer_apply_outbound_takes_provider_pid_from_the_ack() -> None:
    n = new_negotiation(
        role=C,
        initiator=C,
        own_pid="urn:uuid:c1",
        participant_id="did:web:consumer",
        counterparty_id="did:web:provider",
        counterparty_address="https://provider.example/dsp",
        offer=OFFER,
        at=T0,
    )
    n = machine.apply_outbound(n, SendRequest(offer=OFFER), at=_at(1), provider_pid="urn:uuid:p1")
    assert (n.state, n.provider_pid, n.counterparty_pid, n.own_pid) == (
        S.REQUESTED,
        "urn:uuid:p1",
        "urn:uuid:p1",
        "urn:uuid:c1",
    )
    n = machine.apply(n, K.CONTRACT_OFFER, P, at=_at(2), offer={**OFFER, "@id": "urn:uuid:o2"})
    n = machine.apply_outbound(n, SendAccepted(), at=_at(3))
    assert n.state is S.ACCEPTED
    n = machine.apply_outbound(n, SendTermination(code="x", reason=("y",)), at=_at(4))
    assert (n.state, n.termination_code, n.termination_reason) == (S.TERMINATED, "x", ("y",))


def test_aggregate_and_actions_round_trip_through_json() -> None:
    n = machine.apply(_provider(), K.CONTRACT_REQUEST, C, at=_at(1), offer=OFFER)
    assert Negotiation.model_validate_json(n.model_dump_json()) == n
    adapter: TypeAdapter[Action] = TypeAdapter(Action)
    for action in (SendAgreement(agreement=AGREEMENT), SendTermination(code="c", reason=("r",))):
        assert adapter.validate_json(adapter.dump_json(action)) == action


def test_render_mermaid_draws_every_table_row() -> None:
    diagram = machine.render_mermaid()
    assert diagram.startswith("stateDiagram-v2\n")
    assert (
        "    VERIFIED --> FINALIZED : ContractNegotiationEventMessage(FINALIZED) by provider\n"
        in (diagram)
    )
    assert "    FINALIZED --> [*]\n" in diagram
    assert diagram.count(" --> ") == len(machine.TRANSITIONS) + 1 + 2


# --- Hypothesis invariants -----------------------------------------------------------------------


class NegotiationMessages(RuleBasedStateMachine):
    """Random message streams (legal and not) against one provider-side aggregate."""

    def __init__(self) -> None:
        super().__init__()
        self.n = _provider()
        self.minutes = 0

    def _deliver(self, kind: K, sender: Role) -> None:
        before = self.n
        self.minutes += 1
        try:
            after = machine.apply(
                before, kind, sender, at=_at(self.minutes), offer=OFFER, agreement=AGREEMENT
            )
        except IllegalTransitionError:
            assert (before.state, kind, sender) not in ALLOWED_MAP
            return
        # Terminal states absorb; no message from the wrong role is accepted: anything accepted
        # is a row of the literal spec table.
        assert not before.state.is_terminal
        assert ALLOWED_MAP[(before.state, kind, sender)] is after.state
        assert after.version == before.version + 1
        self.n = after

    @rule(kind=st.sampled_from(list(K)), sender=st.sampled_from(list(Role)))
    def any_message(self, kind: K, sender: Role) -> None:
        self._deliver(kind, sender)

    @precondition(lambda self: not self.n.is_terminal)
    @rule(data=st.data())
    def legal_message(self, data: st.DataObject) -> None:
        # Biases the walk towards deep paths (FINALIZED needs five specific steps in a row).
        moves = [(k, s) for (state, k, s) in ALLOWED_MAP if state is self.n.state]
        kind, sender = data.draw(st.sampled_from(moves))
        self._deliver(kind, sender)

    @invariant()
    def finalized_implies_agreed_then_verified(self) -> None:
        if self.n.state is S.FINALIZED:
            path = [e.to_state for e in self.n.timeline]
            assert path[-3:] == [S.AGREED, S.VERIFIED, S.FINALIZED]

    @invariant()
    def version_counts_accepted_messages(self) -> None:
        assert self.n.version == len(self.n.timeline)

    @invariant()
    def timeline_is_a_connected_path(self) -> None:
        states = [S.INITIAL] + [e.to_state for e in self.n.timeline]
        assert [e.from_state for e in self.n.timeline] == states[:-1]
        assert states[-1] is self.n.state


NegotiationMessages.TestCase.settings = settings(max_examples=200, stateful_step_count=30)
test_negotiation_message_streams = NegotiationMessages.TestCase
