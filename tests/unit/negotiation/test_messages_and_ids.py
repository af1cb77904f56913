"""Message kinds <-> DSP names (dsp.md §8), states/roles, and ids/workflow ids (dsp.md §6)."""

from __future__ import annotations

from datetime import datetime

import pytest
from pydantic import ValidationError

from connector.core import ids
from connector.core.errors import BadRequestError
from connector.core.negotiation.aggregate import new_negotiation
from connector.core.negotiation.messages import WIRE_NAMES, MessageKind, kind_of
from connector.core.negotiation.states import TERMINAL, NegotiationState, Role


@pytest.mark.parametrize(
    ("type_name", "event_type", "expected"),
    [
        ("ContractRequestMessage", None, MessageKind.CONTRACT_REQUEST),
        ("ContractOfferMessage", None, MessageKind.CONTRACT_OFFER),
        ("ContractAgreementMessage", None, MessageKind.AGREEMENT),
        ("ContractAgreementVerificationMessage", None, MessageKind.VERIFICATION),
        ("ContractNegotiationTerminationMessage", None, MessageKind.TERMINATION),
        ("ContractNegotiationEventMessage", "ACCEPTED", MessageKind.ACCEPTED_EVENT),
        ("ContractNegotiationEventMessage", "FINALIZED", MessageKind.FINALIZED_EVENT),
        ("dspace:ContractNegotiationEventMessage", "dspace:FINALIZED", MessageKind.FINALIZED_EVENT),
        ("dspace:ContractRequestMessage", None, MessageKind.CONTRACT_REQUEST),
    ],
)
def test_kind_of_maps_dsp_names(
    type_name: str, event_type: str | None, expected: MessageKind
) -> None:
    assert kind_of(type_name, event_type) is expected


@pytest.mark.parametrize(
    ("type_name", "event_type"),
    [
        ("TransferStartMessage", None),
        ("ContractNegotiationEventMessage", None),
        ("ContractNegotiationEventMessage", "VERIFIED"),
    ],
)
def test_kind_of_rejects_unknown_names(type_name: str, event_type: str | None) -> None:
    with pytest.raises(BadRequestError):
        kind_of(type_name, event_type)


def test_every_kind_has_a_wire_name() -> None:
    assert set(WIRE_NAMES) == set(MessageKind)
    assert MessageKind.ACCEPTED_EVENT.wire_name == "ContractNegotiationEventMessage(ACCEPTED)"


def test_terminal_states() -> None:
    assert {NegotiationState.FINALIZED, NegotiationState.TERMINATED} == TERMINAL
    assert NegotiationState.FINALIZED.is_terminal
    assert not NegotiationState.VERIFIED.is_terminal


def test_role_counterparty() -> None:
    assert Role.PROVIDER.counterparty is Role.CONSUMER
    assert Role.CONSUMER.counterparty is Role.PROVIDER


def test_workflow_ids() -> None:
    assert (
        ids.negotiation_workflow_id(Role.PROVIDER, "urn:uuid:1")
        == "negotiation:provider:urn:uuid:1"
    )
    assert ids.transfer_workflow_id(Role.CONSUMER, "urn:uuid:2") == "transfer:consumer:urn:uuid:2"


def test_aggregate_requires_aware_times() -> None:
    with pytest.raises(ValidationError):
        new_negotiation(
            role=Role.CONSUMER,
            initiator=Role.CONSUMER,
            own_pid="urn:uuid:c",
            participant_id="a",
            counterparty_id="b",
            at=datetime(2025, 1, 1),  # noqa: DTZ001 - the point of the test
        )


def test_aggregate_party_ids_by_role() -> None:
    n = new_negotiation(
        role=Role.CONSUMER,
        initiator=Role.CONSUMER,
        own_pid="urn:uuid:c",
        participant_id="me",
        counterparty_id="them",
        at=datetime.fromisoformat("2025-01-01T00:00:00+00:00"),
    )
    assert (n.consumer_id, n.provider_id, n.own_pid, n.counterparty_pid) == (
        "me",
        "them",
        "urn:uuid:c",
        None,
    )
    assert not n.is_terminal


def test_derived_pid_is_stable_per_parts_and_differs_across_them() -> None:
    one = ids.derived_pid("provider", "did:web:a", "urn:uuid:1")
    assert one == ids.derived_pid("provider", "did:web:a", "urn:uuid:1")
    assert one.startswith("urn:uuid:")
    assert one != ids.derived_pid("consumer", "did:web:a", "urn:uuid:1")
    # The value is part of stored process ids: it never changes with a refactoring.
    assert ids.derived_pid("x") == "urn:uuid:99297565-cf15-5447-bec6-cd65c97c4694"
