"""ODRL 2.2 subset used by DSP 2025-1 (dsp.md §11, negotiation/contract-schema.json).

Immutable pydantic models; terms are stored in their compact 2025-1 form ("use", "eq",
"dateTime"). Parsing lives in `parse.py`, serialisation in `serialize.py`."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict, JsonValue

__all__ = [
    "ODRL_NS",
    "USE",
    "Action",
    "Constraint",
    "ConstraintNode",
    "Duty",
    "LogicalConstraint",
    "LogicalOperator",
    "Permission",
    "Policy",
    "PolicyType",
    "Prohibition",
    "odrl_term",
]

ODRL_NS: Final = "http://www.w3.org/ns/odrl/2/"
_ODRL_PREFIX: Final = "odrl:"
USE: Final = "use"


def odrl_term(value: str) -> str:
    """Compact an ODRL term: "odrl:eq" and "http://www.w3.org/ns/odrl/2/eq" both become "eq"."""
    for prefix in (ODRL_NS, _ODRL_PREFIX):
        if value.startswith(prefix) and len(value) > len(prefix):
            return value[len(prefix) :]
    return value


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PolicyType(StrEnum):
    SET = "Set"
    OFFER = "Offer"
    AGREEMENT = "Agreement"


class LogicalOperator(StrEnum):
    AND = "and"
    OR = "or"
    XONE = "xone"
    # Evaluated as `and`: a decision is taken at one instant, so there is no sequence to honour.
    AND_SEQUENCE = "andSequence"


class Action(_Frozen):
    """An ODRL action by compact name ("use", "read", or a foreign IRI kept verbatim)."""

    name: str

    def covers(self, requested: str) -> bool:
        """True if a rule with this action applies to `requested` ("use" covers every action)."""
        return odrl_term(self.name) in (USE, odrl_term(requested))


class Constraint(_Frozen):
    """Atomic constraint. Operator and left operand are kept even when unknown (deny at runtime)."""

    left_operand: str
    operator: str
    right_operand: JsonValue


class LogicalConstraint(_Frozen):
    operator: LogicalOperator
    constraints: tuple[ConstraintNode, ...]


ConstraintNode = Constraint | LogicalConstraint


class Duty(_Frozen):
    """A duty of a permission, or a policy-level obligation."""

    action: Action
    constraints: tuple[ConstraintNode, ...] = ()


class Prohibition(_Frozen):
    action: Action
    constraints: tuple[ConstraintNode, ...] = ()


class Permission(_Frozen):
    action: Action
    constraints: tuple[ConstraintNode, ...] = ()
    duties: tuple[Duty, ...] = ()


class Policy(_Frozen):
    """An ODRL Set, Offer or Agreement. `target`/`assigner`/`assignee` are ids, as on the wire."""

    uid: str
    policy_type: PolicyType = PolicyType.SET
    profile: tuple[str, ...] = ()
    target: str | None = None
    assigner: str | None = None
    assignee: str | None = None
    timestamp: str | None = None
    permissions: tuple[Permission, ...] = ()
    prohibitions: tuple[Prohibition, ...] = ()
    obligations: tuple[Duty, ...] = ()


LogicalConstraint.model_rebuild()
