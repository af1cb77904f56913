"""Hypothesis properties: evaluation never raises; prohibitions only ever take permission away."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from connector.core.policy import PolicyContext, Scope, evaluate, parse_policy, to_json
from connector.core.policy.parse import validate_policy

SETTINGS = settings(
    deadline=None, max_examples=200, database=None, suppress_health_check=[HealthCheck.too_slow]
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["gold", "research", "EU", "EU-DE", "2024-01-01", "2025-06-01T12:00Z", "3"])
    | st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["@value", "@id", "@list", "@set", "@type", "x"]), inner, max_size=2
        )
    ),
    max_leaves=6,
)
left_operands = st.sampled_from(
    [
        "dateTime",
        "odrl:dateTime",
        "purpose",
        "spatial",
        "participantId",
        "assignee",
        "membership",
        "credential",
        "claim:tier",
        "claim:roles",
        "fact:region",
        "partner",
    ]
) | st.text(min_size=1, max_size=8)
operators = st.sampled_from(
    [
        *("eq", "neq", "gt", "gteq", "lt", "lteq", "isAnyOf", "isAllOf", "isNoneOf", "isPartOf"),
        *("hasPart", "isA", "term-lteq", "odrl:eq"),
    ]
) | st.text(min_size=1, max_size=6)

right_operands = json_values.filter(lambda v: v is not None and v != [])
atomic = st.fixed_dictionaries(
    {"leftOperand": left_operands, "operator": operators, "rightOperand": right_operands}
)
constraints = st.recursive(
    atomic,
    lambda inner: st.dictionaries(
        st.sampled_from(["and", "or", "xone", "andSequence"]),
        st.lists(inner, min_size=1, max_size=3),
        min_size=1,
        max_size=1,
    ),
    max_leaves=5,
)
actions = st.sampled_from(["use", "read", "distribute"])
rules = st.fixed_dictionaries(
    {"action": actions}, optional={"constraint": st.lists(constraints, max_size=3)}
)
permissions = st.fixed_dictionaries(
    {"action": actions},
    optional={
        "constraint": st.lists(constraints, max_size=3),
        "duty": st.lists(rules, max_size=2),
    },
)
policies = st.fixed_dictionaries(
    {"@id": st.just("urn:uuid:p"), "permission": st.lists(permissions, min_size=1, max_size=3)},
    optional={"obligation": st.lists(rules, min_size=1, max_size=2)},
)
# Hypothesis takes naive bounds and attaches `timezones`; one day of margin keeps offsets in range.
EARLIEST = datetime(1, 1, 2)  # noqa: DTZ001
LATEST = datetime(9999, 12, 30)  # noqa: DTZ001
offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)
contexts = st.builds(
    PolicyContext,
    scope=st.sampled_from(Scope),
    participant_id=st.sampled_from(["did:web:a", "gold"]) | st.text(max_size=8),
    now=st.datetimes(min_value=EARLIEST, max_value=LATEST, timezones=offsets),
    claims=st.dictionaries(
        st.sampled_from(["membership", "credential_types", "tier", "roles"]),
        json_values,
        max_size=4,
    ),
    purpose=st.none() | st.sampled_from(["research", "marketing"]) | st.text(max_size=6),
    spatial=st.none() | st.sampled_from(["EU", "EU-DE", "http://example.org/EU"]),
    extra=st.dictionaries(st.sampled_from(["region", "x"]), json_values, max_size=2),
)


def valid(doc: dict[str, Any]) -> bool:
    return validate_policy(doc) == []


@SETTINGS
@given(doc=policies, ctx=contexts, action=actions)
def test_evaluation_never_raises_and_is_json(
    doc: dict[str, Any], ctx: PolicyContext, action: str
) -> None:
    assume(valid(doc))
    decision = evaluate(parse_policy(doc), ctx, action)
    dumped = decision.model_dump(mode="json")
    assert json.loads(json.dumps(dumped)) == dumped
    assert decision.reasons
    assert decision.decided_by.startswith("/")


@SETTINGS
@given(doc=policies, prohibition=rules, ctx=contexts, action=actions)
def test_adding_a_prohibition_never_turns_deny_into_allow(
    doc: dict[str, Any], prohibition: dict[str, Any], ctx: PolicyContext, action: str
) -> None:
    with_prohibition = doc | {"prohibition": [*doc.get("prohibition", []), prohibition]}
    assume(valid(doc) and valid(with_prohibition))
    before = evaluate(parse_policy(doc), ctx, action)
    after = evaluate(parse_policy(with_prohibition), ctx, action)
    if not before.allowed:
        assert not after.allowed
    if after.allowed:
        assert before.allowed


@SETTINGS
@given(doc=policies)
def test_to_json_round_trips(doc: dict[str, Any]) -> None:
    assume(valid(doc))
    policy = parse_policy(doc)
    assert parse_policy(json.loads(json.dumps(to_json(policy)))) == policy


@SETTINGS
@given(
    doc=st.recursive(
        json_values, lambda inner: st.dictionaries(st.text(max_size=12), inner, max_size=4)
    )
)
def test_validation_never_raises_on_arbitrary_json(doc: Any) -> None:
    problems = validate_policy(doc)
    assert all(p.pointer == "" or p.pointer.startswith("/") for p in problems)
