"""The provider's start mode and the operator hold (decision 0013): which requests are held, how
long a hold lasts, which operator commands are legal, and the timeline's detail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.core.peer_reasons import PEER_REASONS
from connector.core.transfer import hold, machine
from connector.core.transfer.aggregate import Transfer, new_transfer
from connector.core.transfer.hold import AWAITING_START, Awaiting, StartMode
from connector.core.transfer.messages import MessageKind
from connector.core.transfer.record import TransferRecord
from connector.core.transfer.states import Role, TransferState

T0 = datetime(2025, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
S = TransferState


def requested(role: Role = Role.PROVIDER) -> Transfer:
    t = new_transfer(
        role=role,
        own_pid="urn:uuid:own",
        agreement_id="urn:uuid:agr",
        format="HttpData-PULL",
        counterparty_id="did:web:other",
        at=T0,
    )
    pid = "urn:uuid:c" if role is Role.PROVIDER else None
    return machine.apply(t, MessageKind.TRANSFER_REQUEST, Role.CONSUMER, at=T0, consumer_pid=pid)


def test_approve_mode_holds_the_providers_request_for_a_start() -> None:
    awaiting = hold.hold_for(requested(), StartMode.APPROVE, at=T0, timeout=DAY)
    assert awaiting == Awaiting(
        kind=AWAITING_START,
        state=S.REQUESTED,
        since=T0,
        deadline=T0 + DAY,
        commands=("start", "terminate"),
    )


@pytest.mark.parametrize(
    ("mode", "role"),
    [
        (StartMode.AUTO, Role.PROVIDER),
        (StartMode.APPROVE, Role.CONSUMER),
    ],
)
def test_auto_mode_and_the_consumer_hold_nothing(mode: StartMode, role: Role) -> None:
    assert hold.hold_for(requested(role), mode, at=T0, timeout=DAY) is None


def test_nothing_is_held_outside_requested() -> None:
    t = machine.apply(requested(), MessageKind.TRANSFER_TERMINATION, Role.CONSUMER, at=T0)
    assert hold.hold_for(t, StartMode.APPROVE, at=T0, timeout=DAY) is None


def test_a_hold_lasts_as_long_as_its_state() -> None:
    t = requested()
    awaiting = hold.hold_for(t, StartMode.APPROVE, at=T0, timeout=DAY)
    assert hold.still_held(awaiting, t) is awaiting
    ended = machine.apply(t, MessageKind.TRANSFER_TERMINATION, Role.CONSUMER, at=T0)
    assert hold.still_held(awaiting, ended) is None
    assert hold.still_held(None, t) is None


def test_the_deadline_expires_the_hold_at_and_after_it() -> None:
    awaiting = hold.hold_for(requested(), StartMode.APPROVE, at=T0, timeout=DAY)
    assert not hold.expired(awaiting, T0 + DAY - timedelta(microseconds=1))
    assert hold.expired(awaiting, T0 + DAY)
    assert hold.expired(awaiting, T0 + 2 * DAY)
    assert not hold.expired(None, T0 + 2 * DAY)


def test_an_expired_hold_ends_with_a_code_the_peer_has_a_text_for() -> None:
    awaiting = hold.hold_for(requested(), StartMode.APPROVE, at=T0, timeout=DAY)
    assert awaiting is not None
    assert hold.CODE_HOLD_EXPIRED in PEER_REASONS
    assert hold.expiry_reason(awaiting) == (
        "no operator decision (start) by 2025-01-02T00:00:00+00:00"
    )


HELD = Awaiting(kind=AWAITING_START, state=S.REQUESTED, since=T0, deadline=T0 + DAY)
NO_START = "cannot start a transfer in state {}: it awaits no start"


@pytest.mark.parametrize(
    ("state", "awaiting", "command", "refusal"),
    [
        (S.REQUESTED, HELD, "start", None),
        (S.REQUESTED, HELD, "terminate", None),
        (
            S.REQUESTED,
            None,
            "start",
            NO_START.format("REQUESTED"),
        ),
        (S.STARTED, HELD, "start", "cannot start a transfer in state STARTED: it awaits no start"),
        (
            S.REQUESTED,
            HELD.model_copy(update={"commands": ("terminate",)}),
            "start",
            NO_START.format("REQUESTED"),
        ),
        (S.REQUESTED, HELD, "suspend", "cannot suspend a transfer in state REQUESTED"),
        (S.REQUESTED, HELD, "complete", "cannot complete a transfer in state REQUESTED"),
        (S.STARTED, None, "suspend", None),
        (S.STARTED, None, "complete", None),
        (S.SUSPENDED, None, "resume", None),
        (S.STARTED, None, "resume", "cannot resume a transfer in state STARTED"),
        (S.TERMINATED, None, "terminate", "cannot terminate a transfer in state TERMINATED"),
        (S.COMPLETED, None, "terminate", "cannot terminate a transfer in state COMPLETED"),
    ],
)
def test_which_operator_commands_are_legal(
    state: TransferState, awaiting: Awaiting | None, command: hold.Command, refusal: str | None
) -> None:
    assert hold.command_refusal(state, awaiting, command, pending=False) == refusal


def test_one_command_at_a_time() -> None:
    assert hold.command_refusal(S.REQUESTED, HELD, "start", pending=True) == (
        "cannot start a transfer in state REQUESTED (another command is pending)"
    )


def test_the_timeline_names_the_operator_and_the_reason() -> None:
    assert hold.operator_detail("start", "ops-key") == "start by operator ops-key"
    assert (
        hold.operator_detail("terminate", "oidc:alice", code="x", reason="no contract")
        == "terminate by operator oidc:alice; code x; no contract"
    )
    assert hold.operator_detail("suspend", "") == "suspend by operator unknown"


def test_the_record_carries_the_hold_through_json() -> None:
    record = TransferRecord(transfer=requested(), awaiting=HELD)
    assert TransferRecord.model_validate_json(record.model_dump_json()) == record
    assert TransferRecord(transfer=requested()).awaiting is None
