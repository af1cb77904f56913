"""Operator holds (decision 0012): `awaiting`, `decision_problem` and what `next_action` sends
once a person decided. The workflow's `decide` validator and run loop call the same functions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.core.negotiation import decide
from connector.core.negotiation.actions import (
    SendAccepted,
    SendAgreement,
    SendFinalized,
    SendOffer,
    SendRequest,
    SendTermination,
    SendVerification,
)
from connector.core.negotiation.aggregate import JsonObject
from connector.core.negotiation.decide import (
    AwaitKind,
    Decision,
    Facts,
    Holds,
    ProviderMode,
    awaiting,
    complete_offer,
    decision_problem,
    next_action,
)
from connector.core.negotiation.states import NegotiationState as S
from tests.unit.negotiation.test_negotiation_decide import (
    ALLOWED,
    MATCHING_AGREEMENT,
    OFFER,
    PROVIDER_ID,
    C,
    P,
    negotiation,
)

APPROVE = Holds(provider_mode=ProviderMode.APPROVE)
RULES = Holds(provider_mode=ProviderMode.RULES)
COUNTER: JsonObject = {**OFFER, "@id": "urn:uuid:offer-2", "permission": [{"action": "read"}]}


def facts(**changes: object) -> Facts:
    return ALLOWED.model_copy(update=changes)


# --- which states hold -----------------------------------------------------------------------


def test_auto_mode_holds_no_request() -> None:
    n = negotiation(P, S.REQUESTED)
    assert awaiting(n, facts()) is None
    assert isinstance(next_action(n, facts()), SendAgreement)


def test_approve_mode_holds_an_allowed_request_with_its_deadline() -> None:
    n = negotiation(P, S.REQUESTED)
    held = awaiting(n, facts(holds=APPROVE))
    assert held is not None
    assert held.kind is AwaitKind.APPROVE_REQUEST
    assert held.since == n.updated_at
    assert held.deadline == n.updated_at + APPROVE.timeout
    assert held.decisions == (Decision.AGREE, Decision.OFFER, Decision.TERMINATE)
    assert next_action(n, facts(holds=APPROVE)) is None


def test_approve_mode_holds_even_before_the_policy_is_known() -> None:
    n = negotiation(P, S.REQUESTED)
    held = awaiting(n, Facts(holds=APPROVE))
    assert held is not None
    assert held.kind is AwaitKind.APPROVE_REQUEST


def test_rules_mode_agrees_when_the_policy_allows() -> None:
    n = negotiation(P, S.REQUESTED)
    assert awaiting(n, facts(holds=RULES)) is None
    assert isinstance(next_action(n, facts(holds=RULES)), SendAgreement)


def test_rules_mode_holds_a_denied_request_with_the_policy_reasons() -> None:
    n = negotiation(P, S.REQUESTED)
    denied = facts(holds=RULES, policy_allowed=False, policy_reasons=("tier is not gold",))
    held = awaiting(n, denied)
    assert held is not None
    assert held.why == ("tier is not gold",)
    assert next_action(n, denied) is None


def test_rules_mode_can_terminate_a_denied_request_instead() -> None:
    n = negotiation(P, S.REQUESTED)
    holds = RULES.model_copy(update={"hold_denied": False})
    denied = facts(holds=holds, policy_allowed=False, policy_reasons=("no",))
    assert awaiting(n, denied) is None
    assert next_action(n, denied) == SendTermination(code=decide.CODE_POLICY_DENIED, reason=("no",))


def test_rules_mode_holds_a_changed_policy_even_if_allowed() -> None:
    n = negotiation(P, S.REQUESTED)
    assert awaiting(n, facts(holds=RULES, request_differs=True)) is not None


def test_rules_mode_waits_for_the_policy_decision_without_holding() -> None:
    n = negotiation(P, S.REQUESTED)
    assert awaiting(n, Facts(holds=RULES)) is None
    assert next_action(n, Facts(holds=RULES)) is None


def test_auto_mode_terminates_a_changed_policy() -> None:
    n = negotiation(P, S.REQUESTED)
    changed = facts(policy_allowed=False, request_differs=True, policy_reasons=("changed",))
    assert awaiting(n, changed) is None
    assert isinstance(next_action(n, changed), SendTermination)


@pytest.mark.parametrize(
    ("holds", "held"),
    [(Holds(), False), (RULES, False), (APPROVE, True)],
)
def test_accepted_is_held_in_approve_mode_only(holds: Holds, held: bool) -> None:
    n = negotiation(P, S.ACCEPTED)
    found = awaiting(n, facts(holds=holds))
    assert (found is not None) is held
    if found is not None:
        assert found.kind is AwaitKind.APPROVE_ACCEPTANCE
        assert next_action(n, facts(holds=holds)) is None
    else:
        assert isinstance(next_action(n, facts(holds=holds)), SendAgreement)


def test_accepted_agrees_without_a_policy_fact_for_our_own_offer() -> None:
    # Provider-initiated: the consumer accepted the offer we made; no request was judged.
    n = negotiation(P, S.ACCEPTED)
    agreed = next_action(n, Facts(agreement_id="urn:uuid:a", now=n.updated_at))
    assert isinstance(agreed, SendAgreement)


def test_verified_is_held_when_configured() -> None:
    n = negotiation(P, S.VERIFIED)
    holds = Holds(hold_verified=True)
    held = awaiting(n, Facts(holds=holds))
    assert held is not None
    assert held.kind is AwaitKind.FINALIZE
    assert held.decisions == (Decision.FINALIZE, Decision.TERMINATE)
    assert next_action(n, Facts(holds=holds)) is None
    assert next_action(n, Facts(holds=holds, decided=Decision.FINALIZE)) == SendFinalized()


def test_consumer_offer_is_held_without_auto_accept() -> None:
    n = negotiation(C, S.OFFERED)
    held = awaiting(n, Facts())
    assert held is not None
    assert held.kind is AwaitKind.ACCEPT_OFFER
    assert awaiting(n, Facts(auto_accept=True)) is None


def test_consumer_agreement_is_held_when_configured() -> None:
    n = negotiation(C, S.AGREED)
    holds = Holds(hold_agreement=True)
    held = awaiting(n, Facts(holds=holds))
    assert held is not None
    assert held.kind is AwaitKind.VERIFY_AGREEMENT
    assert next_action(n, Facts(holds=holds)) is None
    assert next_action(n, Facts(holds=holds, decided=Decision.VERIFY)) == SendVerification()


def test_consumer_mismatching_agreement_is_terminated_not_held() -> None:
    wrong: JsonObject = {**MATCHING_AGREEMENT, "target": "urn:uuid:other"}
    n = negotiation(C, S.AGREED, agreement=wrong)
    holds = Holds(hold_agreement=True)
    assert awaiting(n, Facts(holds=holds)) is None
    assert isinstance(next_action(n, Facts(holds=holds)), SendTermination)


@pytest.mark.parametrize(
    ("role", "state"),
    [(P, S.AGREED), (P, S.OFFERED), (C, S.REQUESTED), (C, S.ACCEPTED), (C, S.VERIFIED)],
)
def test_states_where_the_peer_acts_are_never_held(role: object, state: S) -> None:
    everything = Holds(provider_mode=ProviderMode.APPROVE, hold_verified=True, hold_agreement=True)
    assert awaiting(negotiation(role, state), Facts(holds=everything)) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("state", [S.FINALIZED, S.TERMINATED])
def test_ended_negotiations_are_never_held(state: S) -> None:
    assert awaiting(negotiation(P, state), Facts(holds=APPROVE)) is None


# --- what a decision does --------------------------------------------------------------------


def test_agree_sends_the_agreement_despite_a_denying_policy() -> None:
    n = negotiation(P, S.REQUESTED)
    denied = facts(holds=RULES, policy_allowed=False, decided=Decision.AGREE)
    assert awaiting(n, denied) is None
    action = next_action(n, denied)
    assert isinstance(action, SendAgreement)
    assert action.agreement["assigner"] == PROVIDER_ID


def test_offer_sends_the_counter_offer() -> None:
    n = negotiation(P, S.REQUESTED)
    decided = facts(holds=APPROVE, counter_offer=COUNTER)
    assert awaiting(n, decided) is None
    assert next_action(n, decided) == SendOffer(offer=COUNTER)


def test_consumer_accept_and_counter_request() -> None:
    n = negotiation(C, S.OFFERED)
    assert next_action(n, Facts(decided=Decision.ACCEPT)) == SendAccepted()
    assert next_action(n, Facts(counter_offer=COUNTER)) == SendRequest(offer=COUNTER)


def test_complete_offer_fills_id_type_target_and_assigner() -> None:
    n = negotiation(P, S.REQUESTED)
    done = complete_offer({"permission": [{"action": "use"}]}, n, offer_id="urn:uuid:x")
    assert done == {
        "@type": "Offer",
        "@id": "urn:uuid:x",
        "target": OFFER["target"],
        "assigner": PROVIDER_ID,
        "permission": [{"action": "use"}],
    }
    given = complete_offer({"@id": "mine", "target": "t", "assigner": "a"}, n, offer_id="x")
    assert (given["@id"], given["target"], given["assigner"]) == ("mine", "t", "a")


# --- which decisions are legal ---------------------------------------------------------------


def test_legal_decisions_on_a_held_request() -> None:
    n = negotiation(P, S.REQUESTED)
    held = facts(holds=APPROVE)
    assert decision_problem(n, held, Decision.AGREE, has_offer=False) is None
    assert decision_problem(n, held, Decision.OFFER, has_offer=True) is None
    assert decision_problem(n, held, Decision.TERMINATE, has_offer=False) is None


def test_offer_without_a_policy_is_a_bad_request() -> None:
    n = negotiation(P, S.REQUESTED)
    problem = decision_problem(n, facts(holds=APPROVE), Decision.OFFER, has_offer=False)
    assert problem is not None
    assert problem[0] is False
    assert "needs an offer" in problem[1]


@pytest.mark.parametrize("decision", [Decision.VERIFY, Decision.ACCEPT, Decision.FINALIZE])
def test_a_decision_the_hold_does_not_take_is_illegal(decision: Decision) -> None:
    n = negotiation(P, S.REQUESTED)
    problem = decision_problem(n, facts(holds=APPROVE), decision, has_offer=False)
    assert problem is not None
    assert problem[0] is True
    assert "approve-request allows agree, offer, terminate" in problem[1]


def test_nothing_but_terminate_when_nothing_is_held() -> None:
    n = negotiation(P, S.AGREED)
    problem = decision_problem(n, Facts(), Decision.AGREE, has_offer=False)
    assert problem is not None
    assert problem[0] is True
    assert "waits for no decision; only `terminate` is possible" in problem[1]
    assert decision_problem(n, Facts(), Decision.TERMINATE, has_offer=False) is None


def test_a_hold_already_decided_takes_no_second_decision() -> None:
    n = negotiation(P, S.REQUESTED)
    problem = decision_problem(
        n, facts(holds=APPROVE, decided=Decision.AGREE), Decision.AGREE, has_offer=False
    )
    assert problem is not None
    assert problem[0] is True


@pytest.mark.parametrize("state", [S.FINALIZED, S.TERMINATED])
def test_no_decision_after_the_end(state: S) -> None:
    n = negotiation(P, state)
    problem = decision_problem(n, Facts(), Decision.TERMINATE, has_offer=False)
    assert problem == (True, f"negotiation is {state.value}")


def test_consumer_request_and_counter_are_the_same_decision() -> None:
    n = negotiation(C, S.OFFERED)
    for decision in (Decision.REQUEST, Decision.COUNTER):
        assert decision_problem(n, Facts(), decision, has_offer=True) is None


def test_hold_timeout_is_configurable() -> None:
    n = negotiation(C, S.OFFERED)
    held = awaiting(n, Facts(holds=Holds(timeout=timedelta(seconds=5))))
    assert held is not None
    assert held.deadline - held.since == timedelta(seconds=5)


def test_complete_offer_without_a_known_target_leaves_it_out() -> None:
    n = negotiation(P, S.REQUESTED, offer={k: v for k, v in OFFER.items() if k != "target"})
    done = complete_offer({"permission": [{"action": "use"}]}, n, offer_id="urn:uuid:x")
    assert "target" not in done
