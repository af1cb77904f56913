"""Pure ODRL policy engine for DSP 2025-1 (dsp.md §11, STYLE.md §11): parse, evaluate, explain.

`parse_policy` / `validate_policy` read the compact 2025-1 form, `evaluate` decides with a trace,
`to_json` writes the compact form back."""

from __future__ import annotations

from connector.core.policy.context import CREDENTIAL_TYPES_CLAIM, MEMBERSHIP_CLAIM, PolicyContext
from connector.core.policy.decision import ConstraintResult, Decision
from connector.core.policy.evaluate import evaluate
from connector.core.policy.functions import CONNECTOR_POLICY_NS, LEFT_OPERANDS, LeftOperandFn
from connector.core.policy.model import (
    Action,
    Constraint,
    ConstraintNode,
    Duty,
    LogicalConstraint,
    LogicalOperator,
    Permission,
    Policy,
    PolicyType,
    Prohibition,
)
from connector.core.policy.operators import Operator
from connector.core.policy.parse import Problem, parse_policy, validate_policy
from connector.core.policy.scopes import Scope
from connector.core.policy.serialize import to_json

__all__ = [
    "CONNECTOR_POLICY_NS",
    "CREDENTIAL_TYPES_CLAIM",
    "LEFT_OPERANDS",
    "MEMBERSHIP_CLAIM",
    "Action",
    "Constraint",
    "ConstraintNode",
    "ConstraintResult",
    "Decision",
    "Duty",
    "LeftOperandFn",
    "LogicalConstraint",
    "LogicalOperator",
    "Operator",
    "Permission",
    "Policy",
    "PolicyContext",
    "PolicyType",
    "Problem",
    "Prohibition",
    "Scope",
    "evaluate",
    "parse_policy",
    "to_json",
    "validate_policy",
]
