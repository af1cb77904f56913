"""Parsing, validation (exact JSON pointers) and compact serialisation of ODRL policies."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from connector.core.errors import BadRequestError, ErrorCode
from connector.core.policy import (
    Action,
    Constraint,
    LogicalConstraint,
    LogicalOperator,
    PolicyType,
    parse_policy,
    to_json,
    validate_policy,
)

DATE_LIMIT = {"leftOperand": "dateTime", "operator": "lteq", "rightOperand": "2023-12-31T06:00Z"}
PURPOSE = {"leftOperand": "purpose", "operator": "isAnyOf", "rightOperand": ["research"]}


def offer(**members: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "@id": "urn:uuid:p",
        "@type": "Offer",
        "permission": [{"action": "use", "constraint": [DATE_LIMIT, PURPOSE]}],
    }
    return base | members


def test_parses_the_compact_form() -> None:
    policy = parse_policy(offer())
    assert policy.uid == "urn:uuid:p"
    assert policy.policy_type is PolicyType.OFFER
    [permission] = policy.permissions
    assert permission.action == Action(name="use")
    assert permission.constraints[1] == Constraint(
        left_operand="purpose", operator="isAnyOf", right_operand=["research"]
    )


def test_prefixed_terms_and_iris_parse_like_the_compact_form() -> None:
    odrl = "http://www.w3.org/ns/odrl/2/"
    prefixed = {
        "@id": "urn:uuid:p",
        "@type": "odrl:Offer",
        "odrl:permission": [
            {
                "odrl:action": {"@id": "odrl:use"},
                f"{odrl}constraint": [
                    {
                        "odrl:leftOperand": f"{odrl}dateTime",
                        "odrl:operator": {"@id": "odrl:lteq"},
                        "odrl:rightOperand": "2023-12-31T06:00Z",
                    },
                    {
                        "leftOperand": {"@id": "odrl:purpose"},
                        "operator": f"{odrl}isAnyOf",
                        "rightOperand": ["research"],
                    },
                ],
            }
        ],
    }
    assert parse_policy(prefixed) == parse_policy(offer())


def test_lone_objects_are_read_as_one_element_arrays() -> None:
    lone = {
        "@id": "urn:uuid:p",
        "@type": "Offer",
        "permission": {"action": ["use"], "constraint": DATE_LIMIT},
    }
    policy = parse_policy(lone)
    assert policy.permissions[0].constraints == (
        Constraint(left_operand="dateTime", operator="lteq", right_operand="2023-12-31T06:00Z"),
    )


def test_action_may_be_an_rdf_value_node() -> None:
    doc = offer(permission=[{"action": {"rdf:value": {"@id": "odrl:read"}}}])
    assert parse_policy(doc).permissions[0].action == Action(name="read")


def test_logical_constraints_nest() -> None:
    doc = offer(
        permission=[
            {
                "action": "use",
                "constraint": [{"or": [{"and": [DATE_LIMIT, PURPOSE]}, {"xone": [PURPOSE]}]}],
            }
        ]
    )
    [node] = parse_policy(doc).permissions[0].constraints
    assert isinstance(node, LogicalConstraint)
    assert node.operator is LogicalOperator.OR
    assert [c.operator for c in node.constraints] == ["and", "xone"]


def test_unknown_operator_and_left_operand_parse() -> None:
    doc = offer(
        permission=[
            {
                "action": "use",
                "constraint": [
                    {"leftOperand": "partner", "operator": "term-lteq", "rightOperand": "gold"}
                ],
            }
        ]
    )
    assert validate_policy(doc) == []
    assert parse_policy(doc).permissions[0].constraints[0] == Constraint(
        left_operand="partner", operator="term-lteq", right_operand="gold"
    )


def test_foreign_and_ignored_terms_are_skipped() -> None:
    doc = offer(**{"dct:title": "x", "@context": ["https://w3id.org/dspace/2025/1/context.jsonld"]})
    doc["permission"][0]["@type"] = "Permission"
    doc["permission"][0]["constraint"][0] = DATE_LIMIT | {
        "dataType": "xsd:dateTime",
        "@id": "urn:c",
    }
    doc["prohibition"] = [{"action": "print", "remedy": [{"action": "delete"}]}]
    assert validate_policy(doc) == []


def test_uid_and_dspace_timestamp_aliases() -> None:
    doc = {
        "uid": "urn:uuid:a",
        "@type": "Agreement",
        "target": {"@id": "urn:uuid:d"},
        "assigner": "urn:prov",
        "assignee": "urn:cons",
        "dspace:timestamp": {"@value": "2023-01-01T01:00:00Z", "@type": "xsd:dateTime"},
        "prohibition": [{"action": "distribute"}],
    }
    policy = parse_policy(doc)
    assert (policy.uid, policy.target, policy.timestamp) == (
        "urn:uuid:a",
        "urn:uuid:d",
        "2023-01-01T01:00:00Z",
    )


def test_missing_type_defaults_to_set() -> None:
    doc = offer()
    del doc["@type"]
    assert parse_policy(doc).policy_type is PolicyType.SET


def test_to_json_emits_the_compact_form_and_round_trips() -> None:
    doc = offer(
        profile=["https://a.example/profile", "https://b.example/profile"],
        permission=[
            {
                "action": "use",
                "constraint": [{"and": [DATE_LIMIT, PURPOSE]}],
                "duty": [{"action": "delete", "constraint": [DATE_LIMIT]}],
            }
        ],
        prohibition=[{"action": "distribute"}],
        obligation=[{"action": "compensate"}],
    )
    out = to_json(parse_policy(doc))
    assert out == doc
    assert parse_policy(json.loads(json.dumps(out))) == parse_policy(doc)


def test_to_json_omits_empty_arrays_and_unset_members() -> None:
    out = to_json(parse_policy({"@id": "urn:p", "permission": [{"action": "use"}]}))
    assert out == {"@id": "urn:p", "@type": "Set", "permission": [{"action": "use"}]}
    single = to_json(
        parse_policy({"@id": "urn:p", "profile": "urn:x", "permission": [{"action": "use"}]})
    )
    assert single["profile"] == "urn:x"


def _with(path: list[str | int], value: Any, *, delete: bool = False) -> dict[str, Any]:
    doc = copy.deepcopy(offer())
    node: Any = doc
    for step in path[:-1]:
        node = node[step]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


C1: list[str | int] = ["permission", 0, "constraint", 1]
INVALID: list[tuple[str, Any, str]] = [
    ("not an object", [], ""),
    ("missing @id", _with(["@id"], None, delete=True), "/@id"),
    ("@id not a string", _with(["@id"], 7), "/@id"),
    ("unknown @type", _with(["@type"], "Contract"), "/@type"),
    ("no rules", {"@id": "urn:p"}, "/permission"),
    ("empty permission", _with(["permission"], []), "/permission"),
    ("permission not an array", _with(["permission"], "use"), "/permission"),
    ("rule not an object", _with(["permission", 0], "use"), "/permission/0"),
    (
        "missing action",
        _with(["permission", 0, "action"], None, delete=True),
        "/permission/0/action",
    ),
    ("action a number", _with(["permission", 0, "action"], 3), "/permission/0/action"),
    ("action empty", _with(["permission", 0, "action"], ""), "/permission/0/action"),
    (
        "action refinement",
        _with(["permission", 0, "action"], {"rdf:value": {"@id": "use"}, "refinement": []}),
        "/permission/0/action/refinement",
    ),
    (
        "constraint not an array",
        _with(["permission", 0, "constraint"], "x"),
        "/permission/0/constraint",
    ),
    (
        "constraint a string",
        _with(["permission", 0, "constraint", 0], "x"),
        "/permission/0/constraint/0",
    ),
    (
        "missing operator",
        _with([*C1, "operator"], None, delete=True),
        "/permission/0/constraint/1/operator",
    ),
    (
        "missing leftOperand",
        _with([*C1, "leftOperand"], None, delete=True),
        "/permission/0/constraint/1/leftOperand",
    ),
    (
        "missing rightOperand",
        _with([*C1, "rightOperand"], None, delete=True),
        "/permission/0/constraint/1/rightOperand",
    ),
    ("operator a number", _with([*C1, "operator"], 1), "/permission/0/constraint/1/operator"),
    (
        "leftOperand a list",
        _with([*C1, "leftOperand"], ["a"]),
        "/permission/0/constraint/1/leftOperand",
    ),
    (
        "operator @id not a string",
        _with([*C1, "operator"], {"@id": 1}),
        "/permission/0/constraint/1/operator/@id",
    ),
    (
        "rightOperand null",
        _with([*C1, "rightOperand"], None),
        "/permission/0/constraint/1/rightOperand",
    ),
    (
        "rightOperand empty list",
        _with([*C1, "rightOperand"], []),
        "/permission/0/constraint/1/rightOperand",
    ),
    (
        "rightOperand not JSON",
        _with([*C1, "rightOperand"], {1, 2}),
        "/permission/0/constraint/1/rightOperand",
    ),
    (
        "rightOperand NaN",
        _with([*C1, "rightOperand"], float("nan")),
        "/permission/0/constraint/1/rightOperand",
    ),
    (
        "misspelt leftOperand",
        _with([*C1, "leftoperand"], "x"),
        "/permission/0/constraint/1/leftoperand",
    ),
    (
        "misspelt constraint",
        _with(["permission", 0, "constriant"], []),
        "/permission/0/constriant",
    ),
    (
        "logical next to atomic",
        _with([*C1, "and"], [DATE_LIMIT]),
        "/permission/0/constraint/1/leftOperand",
    ),
    (
        "empty logical",
        _with(["permission", 0, "constraint", 0], {"or": []}),
        "/permission/0/constraint/0/or",
    ),
    (
        "logical not a list",
        _with(["permission", 0, "constraint", 0], {"or": "x"}),
        "/permission/0/constraint/0/or",
    ),
    (
        "two logical operators",
        _with(["permission", 0, "constraint", 0], {"or": [DATE_LIMIT], "xone": [DATE_LIMIT]}),
        "/permission/0/constraint/0/xone",
    ),
    (
        "nested error",
        _with(
            ["permission", 0, "constraint", 0],
            {"or": [DATE_LIMIT, {"leftOperand": "a", "rightOperand": "b"}]},
        ),
        "/permission/0/constraint/0/or/1/operator",
    ),
    (
        "duty without action",
        _with(["permission", 0, "duty"], [{"constraint": []}]),
        "/permission/0/duty/0/action",
    ),
    ("prohibition without action", _with(["prohibition"], [{}]), "/prohibition/0/action"),
    (
        "obligation constraint",
        _with(
            ["obligation"],
            [{"action": "delete", "constraint": [{"operator": "eq", "rightOperand": 1}]}],
        ),
        "/obligation/0/constraint/0/leftOperand",
    ),
    ("bad timestamp", _with(["timestamp"], "yesterday"), "/timestamp"),
    ("bad profile", _with(["profile"], 5), "/profile"),
    ("bad target", _with(["target"], ""), "/target"),
    ("duplicate term", _with(["odrl:permission"], [{"action": "use"}]), "/odrl:permission"),
    (
        "escaped IRI key",
        _with(["http://www.w3.org/ns/odrl/2/prohibition"], []),
        "/http:~1~1www.w3.org~1ns~1odrl~12~1prohibition",
    ),
    ("unknown policy term", _with(["permissions"], []), "/permissions"),
    ("inheritFrom", _with(["inheritFrom"], "urn:parent"), "/inheritFrom"),
    ("rule target", _with(["permission", 0, "target"], "urn:d"), "/permission/0/target"),
    (
        "rule assignee",
        _with(["permission", 0, "odrl:assignee"], "urn:x"),
        "/permission/0/odrl:assignee",
    ),
    ("constraint unit", _with([*C1, "unit"], "EUR"), "/permission/0/constraint/1/unit"),
    ("non-string key", _with(["permission", 0, 1], "x"), "/permission/0"),
    (
        "agreement without assignee",
        {
            "@id": "urn:a",
            "@type": "Agreement",
            "target": "urn:d",
            "assigner": "urn:p",
            "permission": [{"action": "use"}],
        },
        "/assignee",
    ),
]


@pytest.mark.parametrize(("why", "doc", "pointer"), INVALID, ids=[case[0] for case in INVALID])
def test_invalid_policy_reports_the_exact_pointer(why: str, doc: Any, pointer: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        parse_policy(doc)
    assert caught.value.pointer == pointer, caught.value.reasons
    assert caught.value.code is ErrorCode.BAD_REQUEST
    assert pointer in [p.pointer for p in validate_policy(doc)]


def test_validate_collects_every_problem() -> None:
    doc = offer(
        permission=[
            {"constraint": [{"leftOperand": "a", "operator": 1, "rightOperand": "b"}]},
            {"action": "use", "constraint": [{"or": []}]},
        ]
    )
    assert [p.pointer for p in validate_policy(doc)] == [
        "/permission/0/action",
        "/permission/0/constraint/0/operator",
        "/permission/1/constraint/0/or",
    ]
    assert validate_policy(offer()) == []


def test_problems_are_json_and_errors_carry_all_reasons() -> None:
    doc = {"@type": "Offer", "permission": []}
    problems = validate_policy(doc)
    assert [p.model_dump(mode="json") for p in problems] == [
        {"pointer": "/@id", "message": "missing '@id'"},
        {"pointer": "/permission", "message": "'permission' must contain at least one element"},
    ]
    with pytest.raises(BadRequestError) as caught:
        parse_policy(doc)
    assert caught.value.reasons == [
        "/@id: missing '@id'",
        "/permission: 'permission' must contain at least one element",
    ]


def test_root_problem_reason_uses_slash() -> None:
    with pytest.raises(BadRequestError) as caught:
        parse_policy("policy")
    assert caught.value.reasons == ["/: policy must be a JSON object"]
    assert caught.value.pointer == ""
