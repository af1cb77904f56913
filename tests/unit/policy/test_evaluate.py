"""Policy evaluation: rule composition, logical constraints, duties, prohibitions, explanations."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from connector.core.policy import Decision, PolicyContext, Scope, evaluate, parse_policy

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
CALLER = "did:web:consumer.example"

RESEARCH = {"leftOperand": "purpose", "operator": "isAnyOf", "rightOperand": ["research"]}
GOLD = {"leftOperand": "membership", "operator": "eq", "rightOperand": "gold"}
SILVER = {"leftOperand": "membership", "operator": "eq", "rightOperand": "silver"}
FUTURE = {"leftOperand": "dateTime", "operator": "lteq", "rightOperand": "2030-01-01T00:00:00Z"}
PAST = {"leftOperand": "dateTime", "operator": "lteq", "rightOperand": "2020-01-01T00:00:00Z"}
UNKNOWN = {"leftOperand": "partner", "operator": "eq", "rightOperand": "gold"}


def ctx(**overrides: Any) -> PolicyContext:
    base: dict[str, Any] = {
        "scope": Scope.CATALOG,
        "participant_id": CALLER,
        "now": NOW,
        "purpose": "research",
        "claims": {"membership": ["gold"]},
    }
    return PolicyContext(**(base | overrides))


def decide(doc: dict[str, Any], action: str = "use", **facts: Any) -> Decision:
    return evaluate(parse_policy({"@id": "urn:uuid:p"} | doc), ctx(**facts), action)


def permit(*constraints: dict[str, Any], action: str = "use", **rule: Any) -> dict[str, Any]:
    return {"action": action, "constraint": list(constraints)} | rule


def test_permission_without_constraints_allows() -> None:
    d = decide({"permission": [{"action": "use"}]})
    assert d.allowed
    assert d.decided_by == "/permission/0"
    assert d.reasons == ["permission /permission/0 grants 'use' unconditionally"]
    assert d.trace == []


def test_policy_without_permissions_denies() -> None:
    d = decide({"prohibition": [permit(PAST)]})
    assert not d.allowed
    assert d.decided_by == "/permission"
    assert d.reasons == ["no permission covers action 'use'"]


def test_reason_names_path_operand_actual_and_expected_values() -> None:
    d = decide({"permission": [permit(FUTURE, RESEARCH)]}, purpose="marketing")
    assert not d.allowed
    assert d.decided_by == "/permission/0/constraint/1"
    assert d.reasons == [
        "constraint /permission/0/constraint/1: purpose 'marketing' is not any of ['research']"
    ]


def test_trace_records_every_evaluated_constraint() -> None:
    d = decide({"permission": [permit(FUTURE, RESEARCH)]}, purpose="marketing")
    assert [r.model_dump(mode="json") for r in d.trace] == [
        {
            "path": "/permission/0/constraint/0",
            "left_operand": "dateTime",
            "operator": "lteq",
            "right_operand": "2030-01-01T00:00:00Z",
            "actual": "2025-06-01T12:00:00+00:00",
            "satisfied": True,
            "error": None,
            "message": "dateTime 2025-06-01T12:00:00+00:00 is less than or equal to "
            "'2030-01-01T00:00:00Z'",
        },
        {
            "path": "/permission/0/constraint/1",
            "left_operand": "purpose",
            "operator": "isAnyOf",
            "right_operand": ["research"],
            "actual": "marketing",
            "satisfied": False,
            "error": None,
            "message": "purpose 'marketing' is not any of ['research']",
        },
    ]


def test_allow_reasons_list_the_satisfied_constraints() -> None:
    d = decide({"permission": [permit(RESEARCH)]})
    assert d.allowed
    assert d.reasons == [
        "permission /permission/0 grants 'use'",
        "constraint /permission/0/constraint/0: purpose 'research' is any of ['research']",
    ]


def test_decision_is_json_serialisable_and_round_trips() -> None:
    d = decide({"permission": [permit(FUTURE, {"or": [GOLD, UNKNOWN]})]}, scope=Scope.TRANSFER)
    dumped = d.model_dump(mode="json")
    assert json.loads(json.dumps(dumped)) == dumped
    assert Decision.model_validate(dumped) == d
    assert (dumped["scope"], dumped["policy_id"], dumped["action"]) == (
        "transfer",
        "urn:uuid:p",
        "use",
    )


# -- actions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule_action", "requested", "allowed"),
    [
        ("use", "use", True),
        ("use", "read", True),
        ("odrl:use", "http://www.w3.org/ns/odrl/2/read", True),
        ("read", "read", True),
        ("read", "odrl:read", True),
        ("read", "use", False),
        ("read", "distribute", False),
    ],
)
def test_action_matching(rule_action: str, requested: str, allowed: bool) -> None:
    assert decide({"permission": [{"action": rule_action}]}, requested).allowed is allowed


def test_uncovered_action_lists_the_permitted_ones() -> None:
    d = decide({"permission": [{"action": "read"}, {"action": "print"}]}, "use")
    assert d.reasons == ["no permission covers action 'use' (permitted actions: print, read)"]
    assert d.action == "use"


# -- logical constraints ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("constraint", "membership", "allowed", "decided_by"),
    [
        ({"and": [GOLD, RESEARCH]}, ["gold"], True, "/permission/0"),
        ({"and": [GOLD, RESEARCH]}, ["silver"], False, "/permission/0/constraint/0/and/0"),
        (
            {"andSequence": [RESEARCH, GOLD]},
            ["silver"],
            False,
            "/permission/0/constraint/0/andSequence/1",
        ),
        ({"or": [GOLD, SILVER]}, ["silver"], True, "/permission/0"),
        ({"or": [GOLD, SILVER]}, ["bronze"], False, "/permission/0/constraint/0"),
        ({"or": [GOLD, UNKNOWN]}, ["gold"], True, "/permission/0"),
        ({"or": [SILVER, UNKNOWN]}, ["gold"], False, "/permission/0/constraint/0"),
        ({"xone": [GOLD, SILVER]}, ["gold"], True, "/permission/0"),
        ({"xone": [GOLD, SILVER]}, ["gold", "silver"], False, "/permission/0/constraint/0"),
        ({"xone": [GOLD, SILVER]}, [], False, "/permission/0/constraint/0"),
        ({"xone": [GOLD, UNKNOWN]}, ["gold"], False, "/permission/0/constraint/0"),
        ({"or": [{"and": [GOLD, RESEARCH]}, SILVER]}, ["gold"], True, "/permission/0"),
        ({"or": [{"and": [GOLD, PAST]}, SILVER]}, ["gold"], False, "/permission/0/constraint/0"),
        ({"and": [GOLD, UNKNOWN]}, ["gold"], False, "/permission/0/constraint/0/and/1"),
    ],
)
def test_logical_constraints(
    constraint: dict[str, Any], membership: list[str], allowed: bool, decided_by: str
) -> None:
    d = decide({"permission": [permit(constraint)]}, claims={"membership": membership})
    assert d.allowed is allowed
    assert d.decided_by == decided_by


def test_logical_nodes_appear_in_the_trace_before_their_children() -> None:
    d = decide({"permission": [permit({"or": [SILVER, {"and": [GOLD, PAST]}]})]})
    assert [(r.path, r.operator, r.satisfied) for r in d.trace] == [
        ("/permission/0/constraint/0", "or", False),
        ("/permission/0/constraint/0/or/0", "eq", False),
        ("/permission/0/constraint/0/or/1", "and", False),
        ("/permission/0/constraint/0/or/1/and/0", "eq", True),
        ("/permission/0/constraint/0/or/1/and/1", "lteq", False),
    ]
    assert (
        d.reasons[0]
        == "constraint /permission/0/constraint/0: none of the 2 'or' constraints holds"
    )


def test_xone_with_two_hits_explains_itself() -> None:
    d = decide(
        {"permission": [permit({"xone": [GOLD, SILVER]})]},
        claims={"membership": ["gold", "silver"]},
    )
    assert d.reasons[0] == (
        "constraint /permission/0/constraint/0: 2 of 2 'xone' constraints hold; exactly one must"
    )


def test_undecidable_and_says_so() -> None:
    d = decide({"permission": [permit({"and": [GOLD, UNKNOWN]})]})
    [logical] = [r for r in d.trace if r.operator == "and"]
    assert logical.error is not None
    assert logical.error.startswith("'and' cannot be decided")


# -- unknown operands and operators ----------------------------------------------------------


def test_unknown_left_operand_denies_with_reason() -> None:
    d = decide({"permission": [permit(UNKNOWN)]})
    assert not d.allowed
    assert d.decided_by == "/permission/0/constraint/0"
    assert d.reasons == ["constraint /permission/0/constraint/0: unknown left operand 'partner'"]
    assert d.trace[0].error == "unknown left operand 'partner'"
    assert d.trace[0].actual is None


def test_unknown_operator_denies_with_reason() -> None:
    weird = {"leftOperand": "purpose", "operator": "term-lteq", "rightOperand": "research"}
    d = decide({"permission": [permit(weird)]})
    assert not d.allowed
    assert d.reasons == ["constraint /permission/0/constraint/0: unknown operator 'term-lteq'"]


def test_type_mismatch_denies_with_reason() -> None:
    mismatch = {"leftOperand": "dateTime", "operator": "gt", "rightOperand": 5}
    d = decide({"permission": [permit(mismatch)]})
    assert not d.allowed
    assert "type mismatch" in d.reasons[0]


# -- several permissions -----------------------------------------------------------------------


def test_first_satisfied_permission_decides() -> None:
    d = decide({"permission": [permit(PAST), permit(GOLD)]})
    assert d.allowed
    assert d.decided_by == "/permission/1"


def test_all_permissions_failing_reports_each() -> None:
    d = decide({"permission": [permit(PAST), permit(SILVER)]})
    assert not d.allowed
    assert d.decided_by == "/permission"
    assert [r.split(":")[0] for r in d.reasons] == [
        "constraint /permission/0/constraint/0",
        "constraint /permission/1/constraint/0",
    ]


# -- prohibitions ----------------------------------------------------------------------------


def test_prohibition_overrides_permission() -> None:
    d = decide({"permission": [{"action": "use"}], "prohibition": [permit(RESEARCH)]})
    assert not d.allowed
    assert d.decided_by == "/prohibition/0"
    assert d.reasons == [
        "prohibition /prohibition/0 forbids 'use'",
        "constraint /prohibition/0/constraint/0: purpose 'research' is any of ['research']",
    ]


def test_prohibition_whose_constraint_fails_does_not_apply() -> None:
    d = decide({"permission": [{"action": "use"}], "prohibition": [permit(SILVER)]})
    assert d.allowed


def test_prohibition_of_another_action_does_not_apply() -> None:
    d = decide({"permission": [{"action": "use"}], "prohibition": [{"action": "distribute"}]})
    assert d.allowed
    assert not decide(
        {"permission": [{"action": "use"}], "prohibition": [{"action": "distribute"}]}, "distribute"
    ).allowed


def test_undecidable_prohibition_applies() -> None:
    d = decide({"permission": [{"action": "use"}], "prohibition": [permit(UNKNOWN)]})
    assert not d.allowed
    assert d.decided_by == "/prohibition/0"
    assert d.reasons == [
        "prohibition /prohibition/0 forbids 'use': it cannot be ruled out",
        "constraint /prohibition/0/constraint/0: unknown left operand 'partner'",
    ]


# -- duties and obligations ------------------------------------------------------------------


def test_duty_without_constraints_is_accepted_and_reported() -> None:
    d = decide({"permission": [permit(GOLD, duty=[{"action": "delete"}])]})
    assert d.allowed
    assert d.reasons[-1] == (
        "duty /permission/0/duty/0: 'delete' is accepted on agreement"
        " (its fulfilment is not observable here)"
    )


def test_duty_with_failing_constraint_blocks_the_permission() -> None:
    d = decide({"permission": [permit(GOLD, duty=[{"action": "delete", "constraint": [PAST]}])]})
    assert not d.allowed
    assert d.decided_by == "/permission/0/duty/0/constraint/0"


def test_duty_with_satisfiable_constraint_allows() -> None:
    d = decide({"permission": [permit(duty=[{"action": "delete", "constraint": [FUTURE]}])]})
    assert d.allowed


def test_failing_obligation_denies() -> None:
    d = decide(
        {
            "permission": [{"action": "use"}],
            "obligation": [{"action": "delete", "constraint": [PAST]}],
        }
    )
    assert not d.allowed
    assert d.decided_by == "/obligation/0/constraint/0"


def test_satisfiable_obligation_is_reported_on_allow() -> None:
    d = decide({"permission": [{"action": "use"}], "obligation": [{"action": "compensate"}]})
    assert d.allowed
    assert d.reasons[-1].startswith("duty /obligation/0: 'compensate' is accepted on agreement")
