"""The DSP example policies (tests/fixtures/policy, copied from the spec) parse and evaluate."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connector.core.errors import BadRequestError
from connector.core.policy import (
    LEFT_OPERANDS,
    PolicyContext,
    PolicyType,
    Scope,
    evaluate,
    parse_policy,
    to_json,
    validate_policy,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "policy"
BEFORE = datetime(2023, 6, 1, tzinfo=UTC)
AFTER = datetime(2024, 1, 1, tzinfo=UTC)


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return doc


def ctx(now: datetime = BEFORE, **overrides: Any) -> PolicyContext:
    base: dict[str, Any] = {"scope": Scope.NEGOTIATION, "participant_id": "urn:c", "now": now}
    return PolicyContext(**(base | overrides))


MESSAGE_POLICIES = [
    ("contract-offer-message.json", "offer", PolicyType.OFFER),
    ("contract-request-message.json", "offer", PolicyType.OFFER),
    ("contract-agreement-message.json", "agreement", PolicyType.AGREEMENT),
    ("contract-agreement-message-full.json", "agreement", PolicyType.AGREEMENT),
]


@pytest.mark.parametrize(("name", "member", "kind"), MESSAGE_POLICIES)
def test_message_policies_parse_and_round_trip(name: str, member: str, kind: PolicyType) -> None:
    doc = load(name)[member]
    assert validate_policy(doc) == []
    policy = parse_policy(doc)
    assert policy.policy_type is kind
    assert to_json(policy) == doc


@pytest.mark.parametrize(("name", "member", "kind"), MESSAGE_POLICIES)
def test_date_limited_policies_allow_before_and_deny_after(
    name: str, member: str, kind: PolicyType
) -> None:
    policy = parse_policy(load(name)[member])
    assert evaluate(policy, ctx(BEFORE)).allowed
    late = evaluate(policy, ctx(AFTER))
    assert not late.allowed
    assert (
        "constraint /permission/0/constraint/0: dateTime 2024-01-01T00:00:00+00:00 is not "
        in (late.reasons[0])
    )


def test_single_rule_agreement_names_the_date_constraint() -> None:
    policy = parse_policy(load("contract-agreement-message.json")["agreement"])
    assert policy.assignee == "http://example.com/Consumer"
    assert evaluate(policy, ctx(AFTER)).decided_by == "/permission/0/constraint/0"


def test_full_agreement_with_a_partner_operand() -> None:
    policy = parse_policy(load("contract-agreement-message-full.json")["agreement"])
    late = evaluate(policy, ctx(AFTER))
    assert not late.allowed
    assert "constraint /permission/3/constraint/0: unknown left operand 'partner'" in late.reasons
    # A dataspace that defines "partner" can plug it in; the `or` of rule 2 then grants.
    table = {**LEFT_OPERANDS, "partner": lambda _ctx: "silver"}
    decision = evaluate(policy, ctx(AFTER), functions=table)
    assert decision.allowed
    assert decision.decided_by == "/permission/2"


def dataset_policies() -> list[tuple[str, dict[str, Any]]]:
    catalog = load("catalog.json")
    found = [("catalog.json", p) for ds in catalog["dataset"] for p in ds["hasPolicy"]]
    found += [("dataset.json", p) for p in load("dataset.json")["hasPolicy"]]
    return found


@pytest.mark.parametrize(("name", "doc"), dataset_policies())
def test_catalog_offers_gate_on_spatial(name: str, doc: dict[str, Any]) -> None:
    policy = parse_policy(doc)
    assert to_json(policy) == doc
    region = doc["permission"][0]["constraint"][0]["rightOperand"]
    assert evaluate(policy, ctx(scope=Scope.CATALOG, spatial=region)).allowed
    assert not evaluate(policy, ctx(scope=Scope.CATALOG, spatial="http://example.org/US")).allowed
    missing = evaluate(policy, ctx(scope=Scope.CATALOG))
    assert not missing.allowed
    assert missing.reasons == ["constraint /permission/0/constraint/0: no spatial region is known"]


def test_2024_1_example_with_its_operand_typo_is_rejected_precisely() -> None:
    # The 2024-1 example writes "odrl:operand" for "odrl:operator"; we point at it.
    doc = load("2024-1-contract-agreement-message.json")["dspace:agreement"]
    with pytest.raises(BadRequestError) as caught:
        parse_policy(doc)
    assert caught.value.pointer == "/odrl:permission/0/odrl:constraint/0/odrl:operand"


def test_2024_1_example_with_the_typo_fixed_parses_like_2025_1() -> None:
    doc = load("2024-1-contract-agreement-message.json")["dspace:agreement"]
    rule = doc["odrl:permission"][0]["odrl:constraint"][0]
    rule["odrl:operator"] = rule.pop("odrl:operand")
    policy = parse_policy(doc)
    assert policy.timestamp == "2023-01-01T01:00:00Z"
    assert evaluate(policy, ctx(BEFORE)).allowed
    assert not evaluate(policy, ctx(AFTER)).allowed
