"""What one side of a contract negotiation sends next (dsp.md §8; agreement shape dsp.md §11).

The Python form of EDC's negotiation processors: given the aggregate and the facts the workflow
collected, return the next outbound action, or None to wait for a message, an operator or a fact.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, JsonValue

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
    "Facts",
    "agreement_matches_offer",
    "build_agreement",
    "next_action",
]

# `code` values of our own ContractNegotiationTerminationMessages (free strings in DSP).
CODE_POLICY_DENIED: Final = "policy_denied"
CODE_AGREEMENT_MISMATCH: Final = "agreement_mismatch"
CODE_INVALID_OFFER: Final = "invalid_offer"

_RULE_KINDS: Final = ("permission", "prohibition", "obligation")


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


def next_action(n: Negotiation, facts: Facts) -> Action | None:
    """The message this side should send next, or None to wait."""
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
        case (Role.CONSUMER, NegotiationState.OFFERED) if facts.auto_accept:
            return SendAccepted()
        case (Role.CONSUMER, NegotiationState.AGREED):
            mismatches = agreement_matches_offer(
                n.offer or {},
                n.agreement or {},
                consumer_id=n.consumer_id,
                provider_id=n.provider_id,
            )
            if mismatches:
                return SendTermination(
                    code=CODE_AGREEMENT_MISMATCH,
                    reason=(f"agreement does not match offer: {'; '.join(mismatches)}",),
                )
            return SendVerification()
        case _:
            return None


def _agree_or_terminate(n: Negotiation, facts: Facts) -> Action | None:
    if facts.policy_allowed is None:
        return None
    if not facts.policy_allowed:
        return SendTermination(code=CODE_POLICY_DENIED, reason=facts.policy_reasons or ("denied",))
    if facts.agreement_id is None or facts.now is None:
        return None
    if n.offer is None or _id_of(n.offer.get("target")) is None:
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
    agreed_target = _id_of(agreement.get("target"))
    offered_target = _id_of(offer.get("target"))
    if agreed_target is None:
        reasons.append("agreement has no target")
    elif offered_target is not None and agreed_target != offered_target:
        reasons.append(f"target {agreed_target!r} is not the offered {offered_target!r}")
    assigner = _id_of(agreement.get("assigner"))
    if assigner != provider_id:
        reasons.append(f"assigner {assigner!r} is not the provider {provider_id!r}")
    assignee = _id_of(agreement.get("assignee"))
    if assignee != consumer_id:
        reasons.append(f"assignee {assignee!r} is not the consumer {consumer_id!r}")
    for rule_kind in _RULE_KINDS:
        if _canonical_rules(offer.get(rule_kind)) != _canonical_rules(agreement.get(rule_kind)):
            reasons.append(f"{rule_kind} differs from the offer")
    return reasons


def _id_of(value: JsonValue) -> str | None:
    # JSON-LD lets an IRI-valued property be a string or a node object {"@id": ...}.
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("@id"), str):
        return str(value["@id"])
    return None


def _canonical_rules(value: JsonValue) -> list[str]:
    # JSON-LD compaction turns a one-element array into the element itself (dsp.md §13.1), and the
    # order of rules carries no meaning; compare sorted canonical JSON.
    if value is None:
        items: list[JsonValue] = []
    elif isinstance(value, list):
        items = value
    else:
        items = [value]
    return sorted(json.dumps(item, sort_keys=True) for item in items)
