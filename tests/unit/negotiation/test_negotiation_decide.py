"""next_action and the agreement check (dsp.md §8, §11): one test per branch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import JsonValue

from connector.core.negotiation import decide, machine
from connector.core.negotiation.actions import (
    SendAccepted,
    SendAgreement,
    SendFinalized,
    SendOffer,
    SendRequest,
    SendTermination,
    SendVerification,
)
from connector.core.negotiation.aggregate import JsonObject, Negotiation, new_negotiation
from connector.core.negotiation.decide import Facts, agreement_matches_offer, next_action
from connector.core.negotiation.messages import MessageKind as K
from connector.core.negotiation.states import NegotiationState as S
from connector.core.negotiation.states import Role

C, P = Role.CONSUMER, Role.PROVIDER
T0 = datetime(2025, 1, 1, tzinfo=UTC)
PROVIDER_ID = "did:web:provider"
CONSUMER_ID = "did:web:consumer"
PERMISSION: JsonValue = [
    {
        "action": "use",
        "constraint": [{"leftOperand": "spatial", "operator": "eq", "rightOperand": "EU"}],
    }
]
OFFER: JsonObject = {
    "@id": "urn:uuid:offer-1",
    "@type": "Offer",
    "target": "urn:uuid:ds-1",
    "permission": PERMISSION,
}
MATCHING_AGREEMENT: JsonObject = {
    "@id": "urn:uuid:agr-1",
    "@type": "Agreement",
    "target": "urn:uuid:ds-1",
    "assigner": PROVIDER_ID,
    "assignee": CONSUMER_ID,
    "timestamp": "2025-01-01T00:00:00Z",
    "permission": PERMISSION,
}
ALLOWED = Facts(policy_allowed=True, agreement_id="urn:uuid:agr-1", now=T0)

# Messages that drive a negotiation from INITIAL to each state (sender, kind).
PATHS: dict[S, list[tuple[K, Role]]] = {
    S.INITIAL: [],
    S.REQUESTED: [(K.CONTRACT_REQUEST, C)],
    S.OFFERED: [(K.CONTRACT_OFFER, P)],
    S.ACCEPTED: [(K.CONTRACT_OFFER, P), (K.ACCEPTED_EVENT, C)],
    S.AGREED: [(K.CONTRACT_REQUEST, C), (K.AGREEMENT, P)],
    S.VERIFIED: [(K.CONTRACT_REQUEST, C), (K.AGREEMENT, P), (K.VERIFICATION, C)],
    S.FINALIZED: [
        (K.CONTRACT_REQUEST, C),
        (K.AGREEMENT, P),
        (K.VERIFICATION, C),
        (K.FINALIZED_EVENT, P),
    ],
    S.TERMINATED: [(K.TERMINATION, C)],
}


def negotiation(
    role: Role,
    state: S,
    *,
    initiator: Role = C,
    offer: JsonObject | None = OFFER,
    agreement: JsonObject = MATCHING_AGREEMENT,
) -> Negotiation:
    own, other = (PROVIDER_ID, CONSUMER_ID) if role is P else (CONSUMER_ID, PROVIDER_ID)
    n = new_negotiation(
        role=role,
        initiator=initiator,
        own_pid="urn:uuid:own",
        participant_id=own,
        counterparty_id=other,
        offer=offer,
        at=T0,
    )
    for i, (kind, sender) in enumerate(PATHS[state], start=1):
        n = machine.apply(
            n, kind, sender, at=T0 + timedelta(minutes=i), offer=offer, agreement=agreement
        )
    assert n.state is state
    return n


# --- INITIAL ---------------------------------------------------------------------------------


def test_consumer_initiator_sends_the_initial_request() -> None:
    assert next_action(negotiation(C, S.INITIAL), Facts()) == SendRequest(offer=OFFER)


def test_provider_initiator_sends_the_initial_offer() -> None:
    n = negotiation(P, S.INITIAL, initiator=P)
    assert next_action(n, Facts()) == SendOffer(offer=OFFER)


@pytest.mark.parametrize(("role", "initiator"), [(C, C), (P, P)])
def test_initiator_without_an_offer_waits(role: Role, initiator: Role) -> None:
    assert (
        next_action(negotiation(role, S.INITIAL, initiator=initiator, offer=None), Facts()) is None
    )


@pytest.mark.parametrize(("role", "initiator"), [(C, P), (P, C)])
def test_side_that_did_not_initiate_waits_in_initial(role: Role, initiator: Role) -> None:
    assert next_action(negotiation(role, S.INITIAL, initiator=initiator), ALLOWED) is None


# --- provider in REQUESTED / ACCEPTED ------------------------------------------------------------


@pytest.mark.parametrize("state", [S.REQUESTED, S.ACCEPTED])
def test_provider_agrees_when_policy_allows(state: S) -> None:
    action = next_action(negotiation(P, state), ALLOWED)
    assert isinstance(action, SendAgreement)
    assert action.agreement == MATCHING_AGREEMENT


def test_provider_terminates_when_policy_denies() -> None:
    facts = Facts(policy_allowed=False, policy_reasons=("purpose not allowed",))
    assert next_action(negotiation(P, S.REQUESTED), facts) == SendTermination(
        code=decide.CODE_POLICY_DENIED, reason=("purpose not allowed",)
    )


def test_policy_denial_without_reasons_still_carries_one() -> None:
    action = next_action(negotiation(P, S.REQUESTED), Facts(policy_allowed=False))
    assert action == SendTermination(code=decide.CODE_POLICY_DENIED, reason=("denied",))


def test_provider_waits_for_the_policy_decision() -> None:
    assert next_action(negotiation(P, S.REQUESTED), Facts()) is None


@pytest.mark.parametrize(
    "facts",
    [Facts(policy_allowed=True, now=T0), Facts(policy_allowed=True, agreement_id="urn:uuid:a")],
)
def test_provider_waits_for_agreement_id_and_time(facts: Facts) -> None:
    assert next_action(negotiation(P, S.REQUESTED), facts) is None


def test_provider_terminates_an_offer_without_target() -> None:
    offer = {k: v for k, v in OFFER.items() if k != "target"}
    action = next_action(negotiation(P, S.REQUESTED, offer=offer), ALLOWED)
    assert action == SendTermination(
        code=decide.CODE_INVALID_OFFER, reason=("offer has no target",)
    )


def test_provider_counter_offers_in_requested() -> None:
    counter: JsonObject = {**OFFER, "@id": "urn:uuid:offer-2"}
    facts = ALLOWED.model_copy(update={"counter_offer": counter})
    assert next_action(negotiation(P, S.REQUESTED), facts) == SendOffer(offer=counter)


def test_provider_ignores_counter_offer_in_accepted() -> None:
    # An offer while ACCEPTED is illegal (dsp.md §8), so the agreement goes out instead.
    facts = ALLOWED.model_copy(update={"counter_offer": OFFER})
    assert isinstance(next_action(negotiation(P, S.ACCEPTED), facts), SendAgreement)


def test_provider_finalizes_when_verified() -> None:
    assert next_action(negotiation(P, S.VERIFIED), Facts()) == SendFinalized()


# --- consumer in OFFERED / AGREED ----------------------------------------------------------------


def test_consumer_auto_accepts_an_offer() -> None:
    assert next_action(negotiation(C, S.OFFERED), Facts(auto_accept=True)) == SendAccepted()


def test_consumer_counter_requests_instead_of_accepting() -> None:
    counter: JsonObject = {**OFFER, "@id": "urn:uuid:offer-2"}
    facts = Facts(auto_accept=True, counter_offer=counter)
    assert next_action(negotiation(C, S.OFFERED), facts) == SendRequest(offer=counter)


def test_consumer_without_auto_accept_waits_for_the_operator() -> None:
    assert next_action(negotiation(C, S.OFFERED), Facts()) is None


def test_consumer_verifies_a_matching_agreement() -> None:
    assert next_action(negotiation(C, S.AGREED), Facts()) == SendVerification()


def test_consumer_terminates_a_mismatching_agreement() -> None:
    wrong: JsonObject = {**MATCHING_AGREEMENT, "target": "urn:uuid:ds-other"}
    action = next_action(negotiation(C, S.AGREED, agreement=wrong), Facts())
    assert isinstance(action, SendTermination)
    assert action.code == decide.CODE_AGREEMENT_MISMATCH
    (reason,) = action.reason
    assert reason.startswith("agreement does not match offer: target 'urn:uuid:ds-other'")


@pytest.mark.parametrize(
    ("role", "state"),
    [
        (C, S.REQUESTED),
        (C, S.ACCEPTED),
        (C, S.VERIFIED),
        (C, S.FINALIZED),
        (C, S.TERMINATED),
        (P, S.OFFERED),
        (P, S.AGREED),
        (P, S.FINALIZED),
        (P, S.TERMINATED),
    ],
)
def test_otherwise_waits(role: Role, state: S) -> None:
    everything = Facts(
        policy_allowed=True,
        agreement_id="urn:uuid:a",
        now=T0,
        auto_accept=True,
        counter_offer=OFFER,
    )
    assert next_action(negotiation(role, state), everything) is None


# --- build_agreement / agreement_matches_offer ---------------------------------------------------


def test_built_agreement_matches_its_offer() -> None:
    agreement = decide.build_agreement(
        OFFER,
        agreement_id="urn:uuid:agr-1",
        assigner=PROVIDER_ID,
        assignee=CONSUMER_ID,
        at=datetime(2025, 1, 1, 1, tzinfo=UTC) + timedelta(hours=-1),
    )
    assert agreement == MATCHING_AGREEMENT
    assert agreement_matches_offer(OFFER, agreement, CONSUMER_ID, PROVIDER_ID) == []


def test_matching_agreement_has_no_mismatches() -> None:
    assert agreement_matches_offer(OFFER, MATCHING_AGREEMENT, CONSUMER_ID, PROVIDER_ID) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"@type": "Offer"}, "@type is 'Offer', not 'Agreement'"),
        ({"target": None}, "agreement has no target"),
        ({"target": {"id": "urn:uuid:ds-1"}}, "agreement has no target"),
        ({"target": "urn:uuid:ds-2"}, "target 'urn:uuid:ds-2' is not the offered 'urn:uuid:ds-1'"),
        ({"assigner": "did:web:mallory"}, "assigner 'did:web:mallory' is not the provider"),
        ({"assignee": "did:web:mallory"}, "assignee 'did:web:mallory' is not the consumer"),
        ({"permission": [{"action": "read"}]}, "permission differs from the offer"),
        ({"prohibition": [{"action": "distribute"}]}, "prohibition differs from the offer"),
        ({"obligation": [{"action": "delete"}]}, "obligation differs from the offer"),
    ],
)
def test_each_mismatch_is_reported(change: JsonObject, expected: str) -> None:
    agreement = {**MATCHING_AGREEMENT, **change}
    reasons = agreement_matches_offer(OFFER, agreement, CONSUMER_ID, PROVIDER_ID)
    assert len(reasons) == 1
    assert reasons[0].startswith(expected)


def test_node_object_ids_and_single_rule_objects_are_equivalent() -> None:
    assert isinstance(PERMISSION, list)
    agreement: JsonObject = {
        **MATCHING_AGREEMENT,
        "target": {"@id": "urn:uuid:ds-1"},
        "assigner": {"@id": PROVIDER_ID},
        "permission": PERMISSION[0],  # compacted one-element array
    }
    assert agreement_matches_offer(OFFER, agreement, CONSUMER_ID, PROVIDER_ID) == []


def test_rule_order_is_ignored() -> None:
    rules: list[JsonValue] = [{"action": "use"}, {"action": "read"}]
    offer: JsonObject = {**OFFER, "permission": rules}
    agreement: JsonObject = {**MATCHING_AGREEMENT, "permission": list(reversed(rules))}
    assert agreement_matches_offer(offer, agreement, CONSUMER_ID, PROVIDER_ID) == []


def test_offer_without_target_accepts_any_agreement_target() -> None:
    offer = {k: v for k, v in OFFER.items() if k != "target"}
    assert agreement_matches_offer(offer, MATCHING_AGREEMENT, CONSUMER_ID, PROVIDER_ID) == []


def test_unusable_party_value_is_a_mismatch() -> None:
    agreement: JsonObject = {**MATCHING_AGREEMENT, "assignee": 42}
    reasons = agreement_matches_offer(OFFER, agreement, CONSUMER_ID, PROVIDER_ID)
    assert reasons == [f"assignee None is not the consumer {CONSUMER_ID!r}"]
