"""Emit policies in the DSP 2025-1 compact JSON form (dsp.md §11, contract-schema.json).

Empty arrays are omitted (the schema sets minItems 1; dsp.md §13.2)."""

from __future__ import annotations

from pydantic import JsonValue

from connector.core.policy.model import (
    Constraint,
    ConstraintNode,
    Duty,
    Permission,
    Policy,
    Prohibition,
)

__all__ = ["to_json"]

JsonObject = dict[str, JsonValue]


def to_json(policy: Policy) -> JsonObject:
    """The policy as a compact 2025-1 JSON object (no `@context`; the enclosing message has it)."""
    out: JsonObject = {"@id": policy.uid, "@type": policy.policy_type.value}
    if policy.profile:
        out["profile"] = policy.profile[0] if len(policy.profile) == 1 else list(policy.profile)
    for key, value in (
        ("target", policy.target),
        ("assigner", policy.assigner),
        ("assignee", policy.assignee),
        ("timestamp", policy.timestamp),
    ):
        if value is not None:
            out[key] = value
    _put(out, "permission", [_permission(p) for p in policy.permissions])
    _put(out, "prohibition", [_rule(p) for p in policy.prohibitions])
    _put(out, "obligation", [_rule(d) for d in policy.obligations])
    return out


def _put(out: JsonObject, key: str, items: list[JsonValue]) -> None:
    if items:
        out[key] = items


def _rule(rule: Permission | Prohibition | Duty) -> JsonObject:
    out: JsonObject = {"action": rule.action.name}
    _put(out, "constraint", [constraint_to_json(c) for c in rule.constraints])
    return out


def _permission(permission: Permission) -> JsonValue:
    out = _rule(permission)
    _put(out, "duty", [_rule(d) for d in permission.duties])
    return out


def constraint_to_json(node: ConstraintNode) -> JsonObject:
    """One atomic or logical constraint in compact form."""
    if isinstance(node, Constraint):
        return {
            "leftOperand": node.left_operand,
            "operator": node.operator,
            "rightOperand": node.right_operand,
        }
    return {node.operator.value: [constraint_to_json(c) for c in node.constraints]}
