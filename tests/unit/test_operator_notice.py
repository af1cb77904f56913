"""The operator webhook's notices (decision 0013): built from a held transfer's or negotiation's
record (nothing for one that awaits no one), with an id stable per wait, and the JSON body the
signature covers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from activities.operator_webhook import notice_body
from connector.core.negotiation.aggregate import new_negotiation
from connector.core.negotiation.decide import Awaiting, AwaitKind, Decision
from connector.core.negotiation.record import NegotiationRecord
from connector.core.negotiation.states import Role as NRole
from connector.core.transfer import machine
from connector.core.transfer.aggregate import new_transfer
from connector.core.transfer.hold import StartMode, hold_for
from connector.core.transfer.messages import MessageKind
from connector.core.transfer.record import TransferRecord
from connector.core.transfer.states import Role
from workflows.operator_notice import negotiation_notice, transfer_notice

T0 = datetime(2025, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def held_transfer() -> TransferRecord:
    t = new_transfer(
        role=Role.PROVIDER,
        own_pid="urn:uuid:p1",
        agreement_id="urn:uuid:agr",
        format="HttpData-PULL",
        counterparty_id="did:web:consumer",
        at=T0,
    )
    t = machine.apply(
        t, MessageKind.TRANSFER_REQUEST, Role.CONSUMER, at=T0, consumer_pid="urn:uuid:c1"
    )
    awaiting = hold_for(t, StartMode.APPROVE, at=T0, timeout=DAY)
    return TransferRecord(transfer=t, awaiting=awaiting)


def test_a_held_transfer_is_noticed_with_what_it_awaits() -> None:
    notice = transfer_notice(held_transfer())
    assert notice is not None
    assert notice.model_dump() == {
        "id": "transfer:provider:urn:uuid:p1/1/start",
        "process": "transfer",
        "process_id": "urn:uuid:p1",
        "role": "provider",
        "state": "REQUESTED",
        "awaiting": "start",
        "since": T0,
        "deadline": T0 + DAY,
        "counterparty_id": "did:web:consumer",
        "commands": ("start", "terminate"),
    }
    # The same wait gives the same id (the receiver deduplicates retries and replays).
    assert transfer_notice(held_transfer()) == notice


def test_nothing_to_notice_without_a_hold() -> None:
    record = held_transfer().model_copy(update={"awaiting": None})
    assert transfer_notice(record) is None


def test_a_held_negotiation_is_noticed_with_its_decisions() -> None:
    n = new_negotiation(
        role=NRole.PROVIDER,
        initiator=NRole.CONSUMER,
        own_pid="urn:uuid:n1",
        participant_id="did:web:provider",
        counterparty_id="did:web:consumer",
        at=T0,
    )
    awaiting = Awaiting(
        kind=AwaitKind.APPROVE_REQUEST,
        since=T0,
        deadline=T0 + DAY,
        decisions=(Decision.AGREE, Decision.OFFER, Decision.TERMINATE),
    )
    record = NegotiationRecord(negotiation=n, awaiting=awaiting)
    notice = negotiation_notice(record)
    assert notice is not None
    assert (notice.id, notice.process, notice.awaiting, notice.commands) == (
        f"negotiation:provider:urn:uuid:n1/{n.version}/approve-request",
        "negotiation",
        "approve-request",
        ("agree", "offer", "terminate"),
    )
    assert (notice.role, notice.state, notice.counterparty_id) == (
        "provider",
        n.state.value,
        "did:web:consumer",
    )
    assert negotiation_notice(NegotiationRecord(negotiation=n)) is None


def test_the_body_is_compact_camel_case_json_without_secrets() -> None:
    notice = transfer_notice(held_transfer())
    assert notice is not None
    raw = notice_body(notice)
    assert b" " not in raw  # compact: what is signed is what is sent
    assert json.loads(raw) == {
        "id": "transfer:provider:urn:uuid:p1/1/start",
        "process": "transfer",
        "processId": "urn:uuid:p1",
        "role": "provider",
        "state": "REQUESTED",
        "awaiting": "start",
        "since": "2025-01-01T00:00:00+00:00",
        "deadline": "2025-01-02T00:00:00+00:00",
        "counterPartyId": "did:web:consumer",
        "commands": ["start", "terminate"],
    }
