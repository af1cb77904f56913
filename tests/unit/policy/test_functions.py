"""Left-operand functions: each built-in operand allows and denies; unknown operands deny."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import JsonValue

from connector.core.policy import (
    CONNECTOR_POLICY_NS,
    LEFT_OPERANDS,
    PolicyContext,
    Scope,
    evaluate,
    parse_policy,
)
from connector.core.policy.functions import Unknown, canonical_left_operand, resolve

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
CALLER = "did:web:consumer.example"


def ctx(**overrides: Any) -> PolicyContext:
    base: dict[str, Any] = {"scope": Scope.NEGOTIATION, "participant_id": CALLER, "now": NOW}
    return PolicyContext(**(base | overrides))


def allowed(left: str, op: str, right: JsonValue, context: PolicyContext) -> bool:
    policy = parse_policy(
        {
            "@id": "urn:uuid:p",
            "permission": [
                {
                    "action": "use",
                    "constraint": [{"leftOperand": left, "operator": op, "rightOperand": right}],
                }
            ],
        }
    )
    return evaluate(policy, context).allowed


CASES: list[tuple[str, str, JsonValue, dict[str, Any], bool]] = [
    # dateTime, in every accepted spelling
    ("dateTime", "lteq", "2025-12-31T06:00Z", {}, True),
    ("dateTime", "lteq", "2023-12-31T06:00Z", {}, False),
    ("dateTime", "gteq", "2025-01-01", {}, True),
    ("odrl:dateTime", "lt", "2025-06-01T12:00:01Z", {}, True),
    ("http://www.w3.org/ns/odrl/2/dateTime", "gt", "2025-06-01T12:00:01Z", {}, False),
    # purpose
    ("purpose", "eq", "research", {"purpose": "research"}, True),
    ("purpose", "eq", "research", {"purpose": "marketing"}, False),
    ("purpose", "isAnyOf", ["research", "science"], {"purpose": "science"}, True),
    ("purpose", "eq", "research", {}, False),
    # spatial
    ("spatial", "eq", "http://example.org/EU", {"spatial": "http://example.org/EU"}, True),
    ("spatial", "eq", "http://example.org/EU", {"spatial": "http://example.org/US"}, False),
    ("spatial", "isPartOf", ["EU"], {"spatial": "EU-DE"}, True),
    ("spatial", "isPartOf", ["EU"], {}, False),
    # participant id
    ("participantId", "eq", CALLER, {}, True),
    ("participantId", "eq", "did:web:other.example", {}, False),
    ("assignee", "isAnyOf", [CALLER, "did:web:x"], {}, True),
    ("assignee", "isNoneOf", [CALLER], {}, False),
    (CONNECTOR_POLICY_NS + "participantId", "eq", CALLER, {}, True),
    # membership claim
    ("membership", "eq", "gold", {"claims": {"membership": "gold"}}, True),
    ("membership", "eq", "gold", {"claims": {"membership": ["dataspace-x", "gold"]}}, True),
    ("membership", "eq", "gold", {"claims": {"membership": "silver"}}, False),
    ("membership", "eq", "gold", {}, False),
    ("membership", "isNoneOf", ["banned"], {}, True),
    # credential types
    (
        "credential",
        "isA",
        "MembershipCredential",
        {"claims": {"credential_types": ["VerifiableCredential", "MembershipCredential"]}},
        True,
    ),
    ("credentialType", "isAllOf", ["A", "B"], {"claims": {"credential_types": ["A"]}}, False),
    # generic claims and extra facts
    ("claim:tier", "gteq", 3, {"claims": {"tier": 4}}, True),
    ("claim:tier", "gteq", 3, {"claims": {"tier": 2}}, False),
    ("claim:tier", "gteq", 3, {}, False),
    ("claim:org", "eq", "acme", {"claims": {"org": {"name": "acme"}}}, False),
    ("claim:roles", "eq", "admin", {"claims": {"roles": [{"r": "admin"}]}}, False),
    ("claim:roles", "isAnyOf", ["admin"], {"claims": {"roles": ["admin", None]}}, True),
    ("fact:region", "eq", "eu-west", {"extra": {"region": "eu-west"}}, True),
    ("fact:region", "eq", "eu-west", {"extra": {"region": "us-east"}}, False),
    ("fact:region", "eq", "eu-west", {}, False),
    # unknown
    ("partner", "eq", "gold", {}, False),
    ("claim:", "eq", "x", {}, False),
]


@pytest.mark.parametrize(("left", "op", "right", "facts", "expected"), CASES)
def test_left_operand_table(
    left: str, op: str, right: JsonValue, facts: dict[str, Any], expected: bool
) -> None:
    assert allowed(left, op, right, ctx(**facts)) is expected


@pytest.mark.parametrize(
    ("left", "facts", "reason"),
    [
        ("purpose", {}, "no purpose was declared"),
        ("spatial", {}, "no spatial region is known"),
        ("fact:region", {}, "fact 'region' is not known in this context"),
        ("claim:org", {"claims": {"org": {"a": 1}}}, "claim 'org' is an object"),
        ("claim:org", {"claims": {"org": [[1]]}}, "claim 'org' holds a nested value"),
        ("partner", {}, "unknown left operand 'partner'"),
    ],
)
def test_undecidable_facts_say_why(left: str, facts: dict[str, Any], reason: str) -> None:
    fact = resolve(left, ctx(**facts))
    assert isinstance(fact, Unknown)
    assert fact.reason.startswith(reason)


def test_missing_claim_is_the_empty_set() -> None:
    assert resolve("membership", ctx()) == ()
    assert resolve("claim:anything", ctx(claims={"anything": None})) == ()


def test_canonical_names() -> None:
    assert canonical_left_operand("odrl:purpose") == "purpose"
    assert canonical_left_operand("http://www.w3.org/ns/odrl/2/spatial") == "spatial"
    assert canonical_left_operand(CONNECTOR_POLICY_NS + "claim:tier") == "claim:tier"
    assert canonical_left_operand(CONNECTOR_POLICY_NS) == CONNECTOR_POLICY_NS


def test_custom_table_extends_the_defaults() -> None:
    policy = parse_policy(
        {
            "@id": "urn:uuid:p",
            "permission": [
                {
                    "action": "use",
                    "constraint": [
                        {"leftOperand": "partner", "operator": "eq", "rightOperand": "gold"},
                        {"leftOperand": "dateTime", "operator": "gt", "rightOperand": "2020-01-01"},
                    ],
                }
            ],
        }
    )
    table = {**LEFT_OPERANDS, "partner": lambda _ctx: "gold"}
    assert evaluate(policy, ctx(), functions=table).allowed
    assert not evaluate(policy, ctx()).allowed


def test_context_requires_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone"):
        ctx(now=datetime(2025, 1, 1))  # noqa: DTZ001 - the point of the test


def test_context_is_frozen() -> None:
    context = ctx()
    with pytest.raises(ValueError, match="frozen"):
        context.purpose = "x"  # type: ignore[misc]  # assignment to a frozen model
