"""Termination and suspension reasons that reach a counterparty come from one fixed vocabulary
(`connector.core.peer_reasons`, issue 16 finding 5); the action's own reason is our detail and
stays in our timeline."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from connector.core.dsp import DspVersion, validate_against_schema
from connector.core.dsp.common import DspModel
from connector.core.jsonld import encode
from connector.core.negotiation import decide as negotiation_decide
from connector.core.negotiation import machine as negotiation_machine
from connector.core.negotiation import wire as negotiation_wire
from connector.core.negotiation.actions import SendTermination as NegotiationTermination
from connector.core.negotiation.aggregate import Negotiation, new_negotiation
from connector.core.negotiation.states import Role as NRole
from connector.core.peer_reasons import PEER_REASONS, UNSPECIFIED, for_peer
from connector.core.transfer import decide as transfer_decide
from connector.core.transfer import machine as transfer_machine
from connector.core.transfer import wire as transfer_wire
from connector.core.transfer.actions import SendSuspension, SendTermination
from connector.core.transfer.aggregate import Transfer, new_transfer
from connector.core.transfer.states import Role as TRole
from workflows import negotiation as negotiation_workflow

T0 = datetime(2025, 1, 1, tzinfo=UTC)
DETAILS = (
    "destination '127.0.0.1' refused",
    "no file 'file:///etc/passwd'",
    "could not deliver ContractAgreementMessage: ConnectError http://10.1.2.3:8080/dsp",
)


def test_every_code_our_side_sends_has_a_fixed_text() -> None:
    used = {
        negotiation_decide.CODE_POLICY_DENIED,
        negotiation_decide.CODE_AGREEMENT_MISMATCH,
        negotiation_decide.CODE_INVALID_OFFER,
        negotiation_workflow.CODE_DEADLINE,
        negotiation_workflow.CODE_OPERATOR,
        "peer_rejected",  # workflows/negotiation.py, _after_failed_send
        transfer_decide.CODE_FLOW_FAILED,
        transfer_decide.CODE_OPERATOR,
        transfer_decide.CODE_UNDELIVERABLE,
        transfer_decide.CODE_NEGOTIATION,
        transfer_decide.CODE_SUSPENDED_BY_OPERATOR,
    }
    assert used <= set(PEER_REASONS), used - set(PEER_REASONS)
    for code, text in PEER_REASONS.items():
        assert for_peer(code) == (code, [text])
        assert 0 < len(text) <= 60, text
        assert not {"'", ":", "/"} & set(text), text


@pytest.mark.parametrize("code", [None, "", "made_up", "flow_failed: 127.0.0.1"])
def test_a_code_outside_the_vocabulary_goes_out_as_unspecified(code: str | None) -> None:
    sent_code, reason = for_peer(code)
    assert sent_code == UNSPECIFIED
    assert reason == ["no reason given"]


def _negotiation() -> Negotiation:
    n = new_negotiation(
        role=NRole.PROVIDER,
        initiator=NRole.CONSUMER,
        own_pid="urn:uuid:p1",
        participant_id="did:web:provider",
        counterparty_id="did:web:consumer",
        at=T0,
    )
    return n.model_copy(update={"consumer_pid": "urn:uuid:c1"})


def _transfer() -> Transfer:
    t = new_transfer(
        role=TRole.PROVIDER,
        own_pid="urn:uuid:p1",
        agreement_id="urn:uuid:a1",
        format="HttpData-PULL",
        counterparty_id="did:web:consumer",
        at=T0,
    )
    return t.model_copy(update={"consumer_pid": "urn:uuid:c1"})


def _wire(model: DspModel) -> str:
    text = json.dumps(encode(model, DspVersion.V2025_1))
    json.dumps(encode(model, DspVersion.V0_8))
    return text


@pytest.mark.parametrize("detail", DETAILS)
def test_a_negotiation_termination_carries_the_code_and_its_text_only(detail: str) -> None:
    n = _negotiation()
    action = NegotiationTermination(code="deadline_exceeded", reason=(detail,))
    message = negotiation_wire.build_message(n, action, "http://unused")
    body = encode(message, DspVersion.V2025_1)
    assert body["code"] == "deadline_exceeded"
    assert body["reason"] == [PEER_REASONS["deadline_exceeded"]]
    assert detail not in _wire(message)
    assert validate_against_schema(body, body["@type"], DspVersion.V2025_1) == []
    # Our own record keeps the detail.
    recorded = negotiation_machine.apply_outbound(n, action, at=T0)
    assert recorded.termination_reason == (detail,)


@pytest.mark.parametrize("detail", DETAILS)
@pytest.mark.parametrize(
    ("action_type", "code"),
    [(SendTermination, "flow_failed"), (SendSuspension, "suspended_by_operator")],
)
def test_a_transfer_termination_or_suspension_carries_the_code_and_its_text_only(
    detail: str, action_type: type[SendTermination] | type[SendSuspension], code: str
) -> None:
    t = _transfer()
    action = action_type(code=code, reason=(detail,))
    message = transfer_wire.build_message(t, action, "http://unused")
    body = encode(message, DspVersion.V2025_1)
    assert (body["code"], body["reason"]) == (code, [PEER_REASONS[code]])
    assert detail not in _wire(message)
    assert validate_against_schema(body, body["@type"], DspVersion.V2025_1) == []
    if action_type is SendTermination:  # SUSPENSION needs STARTED; the record is the same code
        recorded = transfer_machine.apply_outbound(
            t.model_copy(update={"state": t.state.REQUESTED}), action, at=T0
        )
        assert recorded.reason == (detail,)
