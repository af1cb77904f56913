"""Policy decision records (STYLE.md §11): the outcome plus the trace an operator reads.

JSON-serialisable via `model_dump(mode="json")`, for "why can't partner X see dataset Y"."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, JsonValue

from connector.core.policy.scopes import Scope

__all__ = ["ConstraintResult", "Decision"]


class ConstraintResult(BaseModel):
    """One evaluated constraint. Logical constraints have `left_operand` None.

    `satisfied` is False when the constraint is undecidable; `error` then says why."""

    model_config = ConfigDict(frozen=True)

    path: str
    left_operand: str | None
    operator: str
    right_operand: JsonValue
    actual: JsonValue
    satisfied: bool
    error: str | None = None
    message: str


class Decision(BaseModel):
    """`decided_by` is the JSON pointer of the deciding rule or constraint in `to_json(policy)`."""

    model_config = ConfigDict(frozen=True)

    allowed: bool
    decided_by: str
    reasons: list[str]
    trace: list[ConstraintResult]
    policy_id: str
    action: str
    scope: Scope
