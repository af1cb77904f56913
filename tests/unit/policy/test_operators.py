"""ODRL operators: table-driven, scalar and list-valued left operands, type mismatches."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import JsonValue

from connector.core.policy.operators import Operator, Value, apply, render

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

# (operator, left, right, expected): expected None = undecidable (the evaluator denies).
CASES: list[tuple[str, Value, JsonValue, bool | None]] = [
    # eq / neq
    ("eq", "research", "research", True),
    ("eq", "research", "marketing", False),
    ("eq", 5, "5", True),
    ("eq", 5, 6, False),
    ("eq", 2.5, 2.5, True),
    ("eq", True, "true", True),
    ("eq", True, False, False),
    ("eq", NOW, "2025-06-01T12:00:00Z", True),
    ("eq", NOW, "2025-06-01T14:00:00+02:00", True),
    ("eq", NOW, "2025-06-01", False),
    ("eq", ("gold", "silver"), "gold", True),
    ("eq", ("gold", "silver"), "bronze", False),
    ("eq", ("gold", "silver"), ["silver", "gold"], True),
    ("eq", ("gold", "silver"), ["gold"], False),
    ("eq", (), "gold", False),
    ("eq", "x", ["x"], None),
    ("eq", NOW, 42, None),
    ("eq", "gold", 42, None),
    ("eq", True, "yes", None),
    ("neq", "a", "b", True),
    ("neq", "a", "a", False),
    ("neq", ("gold",), "silver", True),
    ("neq", ("gold",), "gold", False),
    ("neq", NOW, 42, None),
    # ordering
    ("gt", NOW, "2025-01-01T00:00:00Z", True),
    ("gt", NOW, "2026-01-01", False),
    ("gt", 3, 2, True),
    ("gt", 3, "2", True),
    ("gt", 2, 3, False),
    ("gt", "b", "a", None),
    ("gt", NOW, 42, None),
    ("gt", True, False, None),
    ("gt", ("a",), "a", None),
    ("gt", 3, [1, 2], None),
    ("gteq", 3, 3, True),
    ("gteq", 2, 3, False),
    ("gteq", NOW, "2025-06-01T12:00:00Z", True),
    ("lt", 2, 3.5, True),
    ("lt", 3, 2, False),
    ("lt", "2024-01-01", "2025-01-01", True),
    ("lt", "10", "9", False),
    ("lteq", 3, 3, True),
    ("lteq", 4, 3, False),
    ("lteq", NOW, "2023-12-31T06:00Z", False),
    ("lteq", NOW, "not a date", None),
    ("lteq", NOW, "2025-13-45", None),
    ("lt", 3, "three", None),
    # isAnyOf / isNoneOf
    ("isAnyOf", "research", ["research", "science"], True),
    ("isAnyOf", "marketing", ["research"], False),
    ("isAnyOf", "research", "research", True),
    ("isAnyOf", ("gold", "silver"), ["silver", "x"], True),
    ("isAnyOf", ("gold",), ["x"], False),
    ("isAnyOf", (), ["x"], False),
    ("isAnyOf", ("a", 1), [1], True),
    ("isAnyOf", NOW, [1, 2], None),
    ("isAnyOf", "a", [], None),
    ("isNoneOf", "marketing", ["research"], True),
    ("isNoneOf", "research", ["research", "x"], False),
    ("isNoneOf", (), ["x"], True),
    ("isNoneOf", ("a", "b"), ["b"], False),
    ("isNoneOf", NOW, ["a"], None),
    # isAllOf
    ("isAllOf", ("a", "b", "c"), ["a", "b"], True),
    ("isAllOf", ("a",), ["a", "b"], False),
    ("isAllOf", "a", ["a"], True),
    ("isAllOf", "a", ["a", "b"], False),
    # isPartOf / hasPart
    ("isPartOf", "DE-BY", ["DE"], True),
    ("isPartOf", "DE", "DE", True),
    ("isPartOf", "http://example.org/EU/DE", "http://example.org/EU", True),
    ("isPartOf", "http://example.org/EU/DE", "http://example.org/EU/", True),
    ("isPartOf", "urn:region:EU:DE", "urn:region:EU", True),
    ("isPartOf", "DEU", "DE", False),
    ("isPartOf", "FR", ["DE", "AT"], False),
    ("isPartOf", "DE", "", False),
    ("isPartOf", ("a", "b"), ["a", "b", "c"], True),
    ("isPartOf", ("a", "z"), ["a", "b"], False),
    ("isPartOf", (), ["a"], False),
    ("isPartOf", 3, [3, 4], True),
    ("isPartOf", NOW, ["EU"], None),
    ("hasPart", "EU", "EU-DE", True),
    ("hasPart", "EU", ["EU-DE", "EU-FR"], True),
    ("hasPart", "EU", "FR", False),
    ("hasPart", ("a", "b"), ["a"], True),
    ("hasPart", ("a",), ["b"], False),
    # isA
    ("isA", ("MembershipCredential", "X"), "MembershipCredential", True),
    ("isA", ("MembershipCredential",), "OtherCredential", False),
    ("isA", "a", "a", True),
    ("isA", "a", "b", False),
    ("isA", "a", ["a"], None),
    # JSON-LD right operand forms
    ("lteq", NOW, {"@value": "2025-12-31T06:00Z", "@type": "xsd:dateTime"}, True),
    ("eq", "http://example.org/EU", {"@id": "http://example.org/EU"}, True),
    ("isAnyOf", "b", {"@list": ["a", "b"]}, True),
    ("eq", "a", {"foo": 1}, None),
    ("isAnyOf", "a", [["a"]], None),
    ("eq", "a", None, None),
]


@pytest.mark.parametrize(("op", "left", "right", "expected"), CASES)
def test_operator_table(op: str, left: Value, right: JsonValue, expected: bool | None) -> None:
    verdict = apply(Operator(op), "x", left, right)
    assert verdict.satisfied is expected, verdict.message
    assert verdict.message.startswith("x ")


def test_every_operator_has_an_allow_and_a_deny_case() -> None:
    for op in Operator:
        outcomes = {expected for name, _, _, expected in CASES if name == op.value}
        assert {True, False} <= outcomes, op


def test_message_names_operand_actual_value_and_right_operand() -> None:
    verdict = apply(Operator.IS_ANY_OF, "purpose", "marketing", ["research"])
    assert verdict.message == "purpose 'marketing' is not any of ['research']"


def test_list_left_messages_speak_of_inclusion() -> None:
    verdict = apply(Operator.EQ, "membership", ("gold",), "silver")
    assert verdict.message == "membership ['gold'] does not include 'silver'"


def test_type_mismatch_names_both_types() -> None:
    verdict = apply(Operator.GT, "dateTime", NOW, 42)
    assert verdict.satisfied is None
    assert "type mismatch" in verdict.message
    assert "dateTime 2025-06-01T12:00:00+00:00" in verdict.message
    assert "number 42" in verdict.message


def test_render_covers_every_value_kind() -> None:
    assert render(NOW) == "2025-06-01T12:00:00+00:00"
    assert render(["a", 1, True, None]) == "['a', 1, true, null]"
    assert render(("a",)) == "['a']"
    assert render(False) == "false"
    assert render({"k": 1}) == "{'k': 1}"
