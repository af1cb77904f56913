"""Evaluate an ODRL policy for an action (ODRL 2.2 Information Model: Rule, Duty; STYLE.md §11).

Allowed iff no applicable prohibition holds, every policy obligation can be met, and at least
one applicable permission has all its constraints satisfied and all its duties can be met."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import JsonValue

from connector.core.policy.context import PolicyContext
from connector.core.policy.decision import ConstraintResult, Decision
from connector.core.policy.functions import (
    LeftOperandFn,
    Unknown,
    canonical_left_operand,
    resolve,
)
from connector.core.policy.model import (
    USE,
    Constraint,
    ConstraintNode,
    Duty,
    LogicalConstraint,
    LogicalOperator,
    Policy,
    odrl_term,
)
from connector.core.policy.operators import Operator, Value, apply

__all__ = ["evaluate"]

_OPERATORS = {op.value: op for op in Operator}


def evaluate(
    policy: Policy,
    ctx: PolicyContext,
    action: str = USE,
    *,
    functions: Mapping[str, LeftOperandFn] | None = None,
) -> Decision:
    """Decide whether `ctx` may perform `action` under `policy`; never raises on policy content.

    A rule applies when its action equals `action` or is "use" (ODRL: use includes every
    action); a permission for "read" does not grant "use". A constraint that cannot be decided
    (unknown left operand or operator, type mismatch, missing fact) fails a permission and makes a
    prohibition apply: both fail closed. A duty's constraints are evaluated like a permission's;
    the duty action itself (e.g. "delete") cannot be observed here, so it counts as met on
    acceptance and is listed in the reasons. `andSequence` is evaluated as `and`.
    `functions` replaces the left-operand table (extend with `{**LEFT_OPERANDS, ...}`).
    """
    requested = odrl_term(action)
    ev = _Evaluator(ctx, functions)
    allowed, decided_by, reasons = ev.decide(policy, requested)
    return Decision(
        allowed=allowed,
        decided_by=decided_by,
        reasons=reasons,
        trace=ev.trace,
        policy_id=policy.uid,
        action=requested,
        scope=ctx.scope,
    )


@dataclass
class _Outcome:
    """Three-valued result: True, False, or None (undecidable)."""

    truth: bool | None
    culprit: str
    failures: list[str] = field(default_factory=list)
    holds: list[str] = field(default_factory=list)


def _json(value: Value) -> JsonValue:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_json(v) for v in value]
    return value


def _conjunction(outcomes: Sequence[_Outcome], path: str) -> _Outcome:
    """All must hold: False beats undecidable, which beats True."""
    failures = [f for o in outcomes for f in o.failures]
    for wanted in (False, None):
        for outcome in outcomes:
            if outcome.truth is wanted:
                return _Outcome(wanted, outcome.culprit, failures)
    return _Outcome(True, path, holds=[h for o in outcomes for h in o.holds])


class _Evaluator:
    def __init__(self, ctx: PolicyContext, table: Mapping[str, LeftOperandFn] | None) -> None:
        self.ctx = ctx
        self.table = table
        self.trace: list[ConstraintResult] = []

    def decide(self, policy: Policy, action: str) -> tuple[bool, str, list[str]]:
        permissions = [
            (f"/permission/{i}", p)
            for i, p in enumerate(policy.permissions)
            if p.action.covers(action)
        ]
        granted: list[tuple[str, _Outcome, list[str]]] = []
        refused: list[_Outcome] = []
        for path, permission in permissions:
            outcome = self.constraints(permission.constraints, path)
            duties = [self.duty(d, f"{path}/duty/{j}") for j, d in enumerate(permission.duties)]
            combined = _conjunction([outcome, *(o for o, _ in duties)], path)
            if combined.truth is True:
                granted.append((path, outcome, [note for _, note in duties]))
            else:
                refused.append(combined)
        obligations = [self.duty(d, f"/obligation/{k}") for k, d in enumerate(policy.obligations)]
        forbidding = self.prohibitions(policy, action)

        if forbidding:
            return False, forbidding[0][0], [r for _, reasons in forbidding for r in reasons]
        unmet = [o for o, _ in obligations if o.truth is not True]
        if unmet:
            return False, unmet[0].culprit, [f for o in unmet for f in o.failures]
        if not permissions:
            reason = f"no permission covers action '{action}'"
            if policy.permissions:
                names = sorted({p.action.name for p in policy.permissions})
                reason += f" (permitted actions: {', '.join(names)})"
            return False, "/permission", [reason]
        if granted:
            path, outcome, notes = granted[0]
            grant = f"permission {path} grants '{action}'"
            if not outcome.holds:
                grant += " unconditionally"
            obligation_notes = [note for _, note in obligations]
            return True, path, [grant, *outcome.holds, *notes, *obligation_notes]
        decided_by = refused[0].culprit if len(refused) == 1 else "/permission"
        return False, decided_by, [f for o in refused for f in o.failures]

    def prohibitions(self, policy: Policy, action: str) -> list[tuple[str, list[str]]]:
        forbidding: list[tuple[str, list[str]]] = []
        for k, prohibition in enumerate(policy.prohibitions):
            if not prohibition.action.covers(action):
                continue
            path = f"/prohibition/{k}"
            outcome = self.constraints(prohibition.constraints, path)
            if outcome.truth is True:
                forbidding.append(
                    (path, [f"prohibition {path} forbids '{action}'", *outcome.holds])
                )
            elif outcome.truth is None:
                # Fail closed: a prohibition we cannot rule out is treated as applying.
                head = f"prohibition {path} forbids '{action}': it cannot be ruled out"
                forbidding.append((path, [head, *outcome.failures]))
        return forbidding

    def duty(self, duty: Duty, path: str) -> tuple[_Outcome, str]:
        outcome = self.constraints(duty.constraints, path)
        note = (
            f"duty {path}: '{duty.action.name}' is accepted on agreement"
            " (its fulfilment is not observable here)"
        )
        return outcome, note

    def constraints(self, nodes: Sequence[ConstraintNode], base: str) -> _Outcome:
        outcomes = [self.node(n, f"{base}/constraint/{i}") for i, n in enumerate(nodes)]
        return _conjunction(outcomes, base)

    def node(self, node: ConstraintNode, path: str) -> _Outcome:
        if isinstance(node, Constraint):
            return self.atomic(node, path)
        return self.logical(node, path)

    def atomic(self, c: Constraint, path: str) -> _Outcome:
        fact = resolve(c.left_operand, self.ctx, self.table)
        op = _OPERATORS.get(odrl_term(c.operator))
        truth: bool | None = None
        error: str | None = None
        if isinstance(fact, Unknown):
            error = message = fact.reason
        elif op is None:
            error = message = f"unknown operator '{c.operator}'"
        else:
            verdict = apply(op, canonical_left_operand(c.left_operand), fact, c.right_operand)
            truth, message = verdict.satisfied, verdict.message
            error = message if truth is None else None
        self.trace.append(
            ConstraintResult(
                path=path,
                left_operand=c.left_operand,
                operator=c.operator,
                right_operand=c.right_operand,
                actual=None if isinstance(fact, Unknown) else _json(fact),
                satisfied=truth is True,
                error=error,
                message=message,
            )
        )
        reason = f"constraint {path}: {message}"
        if truth is True:
            return _Outcome(True, path, holds=[reason])
        return _Outcome(truth, path, failures=[reason])

    def logical(self, lc: LogicalConstraint, path: str) -> _Outcome:
        name = lc.operator.value
        slot = len(self.trace)
        children = [self.node(c, f"{path}/{name}/{i}") for i, c in enumerate(lc.constraints)]
        if lc.operator in (LogicalOperator.AND, LogicalOperator.AND_SEQUENCE):
            outcome = _conjunction(children, path)
            n, hits = len(children), sum(o.truth is True for o in children)
            message = f"{hits} of {n} '{name}' constraints hold"
            if outcome.truth is None:
                message = f"'{name}' cannot be decided: {message}, the others are undecidable"
        else:
            outcome, message = _alternatives(lc.operator, children, path)
        reason = f"constraint {path}: {message}"
        if outcome.truth is True:
            outcome.holds.insert(0, reason)
        elif outcome.culprit == path:
            outcome.failures.insert(0, reason)
        self.trace.insert(
            slot,
            ConstraintResult(
                path=path,
                left_operand=None,
                operator=name,
                right_operand=None,
                actual=None,
                satisfied=outcome.truth is True,
                error=message if outcome.truth is None else None,
                message=message,
            ),
        )
        return outcome


def _alternatives(
    op: LogicalOperator, children: Sequence[_Outcome], path: str
) -> tuple[_Outcome, str]:
    """`or`: at least one holds; `xone`: exactly one holds (undecidable children count as maybe)."""
    n = len(children)
    hits = sum(o.truth is True for o in children)
    maybe = sum(o.truth is None for o in children)
    failures = [f for o in children for f in o.failures]
    holds = [h for o in children for h in o.holds]
    if op is LogicalOperator.XONE and hits > 1:
        return _Outcome(
            False, path, failures=holds
        ), f"{hits} of {n} 'xone' constraints hold; exactly one must"
    if hits and (op is LogicalOperator.OR or not maybe):
        return _Outcome(True, path, holds=holds), f"{hits} of {n} '{op.value}' constraints hold"
    if maybe:
        message = f"'{op.value}' cannot be decided: {maybe} of {n} constraints are undecidable"
        return _Outcome(None, path, failures), message
    return _Outcome(False, path, failures), f"none of the {n} '{op.value}' constraints holds"
