"""Transfer next_action (dsp.md §9): one test per branch; message kinds <-> DSP names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.core.errors import BadRequestError
from connector.core.transfer import decide, machine
from connector.core.transfer.actions import SendRequest, SendStart, SendTermination
from connector.core.transfer.aggregate import JsonObject, Transfer, new_transfer
from connector.core.transfer.decide import Facts, next_action
from connector.core.transfer.messages import WIRE_NAMES, MessageKind, kind_of
from connector.core.transfer.states import TERMINAL, Role, TransferState

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
