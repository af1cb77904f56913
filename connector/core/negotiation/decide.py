"""What one side of a contract negotiation sends next (dsp.md §8; agreement shape dsp.md §11).

The Python form of EDC's negotiation processors: given the aggregate and the facts the workflow
collected, return the next outbound action, or None to wait for a message, an operator or a fact.
`awaiting` says which decision a person owes (operator holds, decision 0012); the workflow's
`decide` validator, its run loop and the unit tests share it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, timedelta
from enum import StrEnum
from typing import Any, Final

from pydantic import AwareDatetime, BaseModel, ConfigDict

from connector.core.negotiation.actions import (
    Action,
    SendAccepted,
    SendAgreement,
    SendFinalized,
    SendOffer,
    SendRequest,
    SendTermination,
    SendVerification,
)
from connector.core.negotiation.aggregate import JsonObject, Negotiation
from connector.core.negotiation.states import NegotiationState, Role

__all__ = [
    "CODE_AGREEMENT_MISMATCH",
    "CODE_INVALID_OFFER",
    "CODE_POLICY_DENIED",
    "DECISIONS",
    "WITH_OFFER",
    "AwaitKind",
    "Awaiting",
    "Decision",
    "Facts",
    "Holds",
    "ProviderMode",
    "agreement_matches_offer",
    "awaiting",
    "build_agreement",
    "complete_offer",
    "decision_problem",
    "id_of",
    "next_action",
    "rules_differ",
]

# `code` values of our own ContractNegotiationTerminationMessages (free strings in DSP).
CODE_POLICY_DENIED: Final = "policy_denied"
CODE_AGREEMENT_MISMATCH: Final = "agreement_mismatch"
CODE_INVALID_OFFER: Final = "invalid_offer"

_RULE_KINDS: Final = ("permission", "prohibition", "obligation")


class ProviderMode(StrEnum):
    """How the provider answers a consumer's ContractRequestMessage (decision 0012)."""

    AUTO = "auto"  # the contract policy decides at once: agreement or termination
    APPROVE = "approve"  # every request waits for a person
    RULES = "rules"  # the policy decides; what it refuses (or a changed policy) waits for a person


class Decision(StrEnum):
    """What an operator can decide about a held negotiation (`POST .../decision`)."""

    AGREE = "agree"  # provider: send the agreement (REQUESTED, ACCEPTED)
    OFFER = "offer"  # provider: send a (counter-)offer with the given policy (REQUESTED)
    FINALIZE = "finalize"  # provider: send FINALIZED (VERIFIED)
    ACCEPT = "accept"  # consumer: accept the provider's offer (OFFERED)
    REQUEST = "request"  # consumer: counter-request with the given policy (OFFERED)
    COUNTER = "counter"  # consumer: the same as `request` (the name the API had first)
    VERIFY = "verify"  # consumer: verify the agreement (AGREED)
    TERMINATE = "terminate"  # either side, any state before the end


class AwaitKind(StrEnum):
    """What a held negotiation waits for a person to decide (the search attribute's value)."""

    APPROVE_REQUEST = "approve-request"
    APPROVE_ACCEPTANCE = "approve-acceptance"
    FINALIZE = "finalize"
    ACCEPT_OFFER = "accept-offer"
    VERIFY_AGREEMENT = "verify-agreement"


_D = Decision
DECISIONS: Final[dict[AwaitKind, tuple[Decision, ...]]] = {
    AwaitKind.APPROVE_REQUEST: (_D.AGREE, _D.OFFER, _D.TERMINATE),
    AwaitKind.APPROVE_ACCEPTANCE: (_D.AGREE, _D.TERMINATE),
    AwaitKind.FINALIZE: (_D.FINALIZE, _D.TERMINATE),
    AwaitKind.ACCEPT_OFFER: (_D.ACCEPT, _D.REQUEST, _D.COUNTER, _D.TERMINATE),
    AwaitKind.VERIFY_AGREEMENT: (_D.VERIFY, _D.TERMINATE),
}
# Decisions that carry a policy (the new offer on the table).
WITH_OFFER: Final = frozenset({_D.OFFER, _D.REQUEST, _D.COUNTER})


class Holds(BaseModel):
    """Which decisions this side leaves to a person (settings and the offer definition)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider_mode: ProviderMode = ProviderMode.AUTO
    # `rules`: a request the contract policy refuses is held (True) or terminated (False).
    hold_denied: bool = True
    # Provider: hold in VERIFIED (finalize or terminate).
    hold_verified: bool = False
    # Consumer: hold a matching agreement before verifying it.
    hold_agreement: bool = False
    # How long a person has to decide; past it the negotiation is TERMINATED.
    timeout: timedelta = timedelta(days=7)


class Awaiting(BaseModel):
    """A decision a person owes: which, since when, until when, and the legal answers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: AwaitKind
    since: AwareDatetime
    deadline: AwareDatetime
    decisions: tuple[Decision, ...]
    # Why it is held (the policy's reasons, a changed policy), for the operator.
    why: tuple[str, ...] = ()


class Facts(BaseModel):
    """What the workflow knows beyond the aggregate. A None field means "not collected yet":
    `next_action` then returns None rather than guessing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Provider: policy decision on the consumer's request / acceptance.
    policy_allowed: bool | None = None
    policy_reasons: tuple[str, ...] = ()
    # Provider: `@id` and `timestamp` of the agreement it is about to send (deterministic in a
    # workflow: a re-sent agreement must be the same message).
    agreement_id: str | None = None
    now: AwareDatetime | None = None
    # Consumer: accept the provider's offer as it stands.
    auto_accept: bool = False
    # Either side: answer the peer's offer (consumer) or request (provider) with this one instead.
    counter_offer: JsonObject | None = None
    # Provider: the request on the table asks for other rules than the published offer's.
    request_differs: bool = False
    # What this side leaves to a person, and what the person decided in the current state
    # (None: nothing yet; `agree`, `verify`, `finalize`, `accept`; the policy-carrying ones
    # arrive as `counter_offer`, a termination ends the negotiation before decide is asked).
    holds: Holds = Holds()
    decided: Decision | None = None


def _held(n: Negotiation, facts: Facts) -> tuple[AwaitKind, tuple[str, ...]] | None:
    """The hold this state is in before any decision (None: no person is asked)."""
    mode = facts.holds.provider_mode
    match (n.role, n.state):
        case (Role.PROVIDER, NegotiationState.REQUESTED):
            if mode is ProviderMode.APPROVE:
                return AwaitKind.APPROVE_REQUEST, facts.policy_reasons
            refused = facts.request_differs or (
                facts.policy_allowed is False and facts.holds.hold_denied
            )
            if mode is ProviderMode.RULES and facts.policy_allowed is not None and refused:
                return AwaitKind.APPROVE_REQUEST, facts.policy_reasons
            return None
        case (Role.PROVIDER, NegotiationState.ACCEPTED) if mode is ProviderMode.APPROVE:
            return AwaitKind.APPROVE_ACCEPTANCE, ()
        case (Role.PROVIDER, NegotiationState.VERIFIED) if facts.holds.hold_verified:
            return AwaitKind.FINALIZE, ()
        case (Role.CONSUMER, NegotiationState.OFFERED) if not facts.auto_accept:
            return AwaitKind.ACCEPT_OFFER, ()
        case (Role.CONSUMER, NegotiationState.AGREED) if facts.holds.hold_agreement:
            if _mismatches(n):
                return None  # refused without asking anyone
            return AwaitKind.VERIFY_AGREEMENT, ()
        case _:
            return None


def awaiting(n: Negotiation, facts: Facts) -> Awaiting | None:
    """The decision a person owes now, or None (none held, or already decided)."""
    if n.is_terminal or facts.decided is not None or facts.counter_offer is not None:
        return None
    held = _held(n, facts)
    if held is None:
        return None
    kind, why = held
    return Awaiting(
        kind=kind,
        since=n.updated_at,
        deadline=n.updated_at + facts.holds.timeout,
        decisions=DECISIONS[kind],
        why=why,
    )


def decision_problem(
    n: Negotiation, facts: Facts, decision: Decision, *, has_offer: bool
) -> tuple[bool, str] | None:
    """Why `decision` cannot be taken now: (illegal?, text); None when it can.

    `illegal` True means the negotiation is not waiting for that decision (HTTP 409); False
    means the request itself is incomplete (HTTP 400).
    """
    if n.is_terminal:
        return True, f"negotiation is {n.state.value}"
    if decision is Decision.TERMINATE:
        return None  # an operator may end a running negotiation at any time
    held = awaiting(n, facts)
    if held is None:
        return True, (
            f"the {n.role.value} in {n.state.value} waits for no decision; "
            "only `terminate` is possible"
        )
    if decision not in held.decisions:
        allowed = ", ".join(d.value for d in held.decisions)
        return True, f"{held.kind.value} allows {allowed}, not {decision.value}"
    if decision in WITH_OFFER and not has_offer:
        return False, f"`{decision.value}` needs an offer (the policy to send)"
    return None


def next_action(n: Negotiation, facts: Facts) -> Action | None:
    """The message this side should send next, or None to wait."""
    if awaiting(n, facts) is not None:
        return None
    match (n.role, n.state):
        case (Role.CONSUMER, NegotiationState.INITIAL) if n.initiator is Role.CONSUMER:
            return SendRequest(offer=n.offer) if n.offer is not None else None
        case (Role.PROVIDER, NegotiationState.INITIAL) if n.initiator is Role.PROVIDER:
            return SendOffer(offer=n.offer) if n.offer is not None else None
        case (Role.PROVIDER, NegotiationState.REQUESTED) if facts.counter_offer is not None:
            return SendOffer(offer=facts.counter_offer)
        case (Role.PROVIDER, NegotiationState.REQUESTED | NegotiationState.ACCEPTED):
            return _agree_or_terminate(n, facts)
        case (Role.PROVIDER, NegotiationState.VERIFIED):
            return SendFinalized()
        case (Role.CONSUMER, NegotiationState.OFFERED) if facts.counter_offer is not None:
            return SendRequest(offer=facts.counter_offer)
        case (Role.CONSUMER, NegotiationState.OFFERED) if (
            facts.auto_accept or facts.decided is Decision.ACCEPT
        ):
            return SendAccepted()
        case (Role.CONSUMER, NegotiationState.AGREED):
            mismatches = _mismatches(n)
            if mismatches:
                return SendTermination(
                    code=CODE_AGREEMENT_MISMATCH,
                    reason=(f"agreement does not match offer: {'; '.join(mismatches)}",),
                )
            return SendVerification()
        case _:
            return None


def _mismatches(n: Negotiation) -> list[str]:
    return agreement_matches_offer(
        n.offer or {}, n.agreement or {}, consumer_id=n.consumer_id, provider_id=n.provider_id
    )


def _agree_or_terminate(n: Negotiation, facts: Facts) -> Action | None:
    # A person's `agree` overrides the policy (that is what holding a request is for); a
    # consumer accepting our own offer needs no policy decision either.
    approved = facts.decided is Decision.AGREE or (
        n.state is NegotiationState.ACCEPTED
        and (facts.holds.provider_mode is not ProviderMode.AUTO or facts.policy_allowed is None)
    )
    if not approved:
        if facts.policy_allowed is None:
            return None
        if not facts.policy_allowed:
            return SendTermination(
                code=CODE_POLICY_DENIED, reason=facts.policy_reasons or ("denied",)
            )
    if facts.agreement_id is None or facts.now is None:
        return None
    if n.offer is None or id_of(n.offer.get("target")) is None:
        # dsp.md §14: a request may omit offer.target; the API fills it from the catalog offer.
        # If it is still missing we cannot bind the agreement to a dataset.
        return SendTermination(code=CODE_INVALID_OFFER, reason=("offer has no target",))
    return SendAgreement(
        agreement=build_agreement(
            n.offer,
            agreement_id=facts.agreement_id,
            assigner=n.provider_id,
            assignee=n.consumer_id,
            at=facts.now,
        )
    )


def complete_offer(offer: JsonObject, n: Negotiation, *, offer_id: str) -> JsonObject:
    """A person's (counter-)offer as it goes on the wire: an ODRL Offer with an `@id`, the
    negotiation's target and the provider as assigner, unless the person gave them."""
    complete: JsonObject = {"@type": "Offer", **offer}
    complete.setdefault("@id", offer_id)
    target = (n.offer or {}).get("target")
    if target is not None:
        complete.setdefault("target", target)
    complete.setdefault("assigner", n.provider_id)
    return complete


def build_agreement(
    offer: JsonObject, *, agreement_id: str, assigner: str, assignee: str, at: AwareDatetime
) -> JsonObject:
    """The ODRL Agreement for `offer` (dsp.md §11): its target and rules, both parties, a time."""
    agreement: JsonObject = {
        "@id": agreement_id,
        "@type": "Agreement",
        "target": offer.get("target"),
        "assigner": assigner,
        "assignee": assignee,
        # XSD dateTime; the TCK pattern-checks it, so emit plain UTC with a `Z`.
        "timestamp": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    for rule_kind in _RULE_KINDS:
        if rule_kind in offer:
            agreement[rule_kind] = offer[rule_kind]
    return agreement


def agreement_matches_offer(
    offer: JsonObject, agreement: JsonObject, consumer_id: str, provider_id: str
) -> list[str]:
    """Reasons why `agreement` does not grant what `offer` asked for; empty if it does.

    Checks `@type`, `target` (against the offer's, when it has one), `assigner` = provider,
    `assignee` = consumer, and that permissions, prohibitions and obligations are equal (order of
    rules ignored).
    """
    reasons: list[str] = []
    if agreement.get("@type") != "Agreement":
        reasons.append(f"@type is {agreement.get('@type')!r}, not 'Agreement'")
    agreed_target = id_of(agreement.get("target"))
    offered_target = id_of(offer.get("target"))
    if agreed_target is None:
        reasons.append("agreement has no target")
    elif offered_target is not None and agreed_target != offered_target:
        reasons.append(f"target {agreed_target!r} is not the offered {offered_target!r}")
    assigner = id_of(agreement.get("assigner"))
    if assigner != provider_id:
        reasons.append(f"assigner {assigner!r} is not the provider {provider_id!r}")
    assignee = id_of(agreement.get("assignee"))
    if assignee != consumer_id:
        reasons.append(f"assignee {assignee!r} is not the consumer {consumer_id!r}")
    reasons.extend(f"{kind} differs from the offer" for kind in rules_differ(offer, agreement))
    return reasons


def rules_differ(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The rule kinds (permission, prohibition, obligation) in which policies `a` and `b` differ."""
    return [k for k in _RULE_KINDS if _canonical_rules(a.get(k)) != _canonical_rules(b.get(k))]


def id_of(value: object) -> str | None:
    """The IRI of a JSON-LD property: a string, or a node object's `@id` (None: neither)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("@id"), str):
        return str(value["@id"])
    return None


def _canonical_rules(value: object) -> list[str]:
    # JSON-LD compaction turns a one-element array into the element itself (dsp.md §13.1), and the
    # order of rules carries no meaning; compare sorted canonical JSON.
    if value is None:
        items: list[object] = []
    elif isinstance(value, list):
        items = value
    else:
        items = [value]
    return sorted(json.dumps(item, sort_keys=True) for item in items)
