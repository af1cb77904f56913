"""Parse and validate ODRL policies in the compact DSP 2025-1 form (dsp.md §11, contract-schema).

Also accepts "odrl:"-prefixed keys and full ODRL IRIs for keys and for action / operator / left
operand values (0.8 and 2024-1 peers). Every problem carries the JSON pointer of the input."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Final, TypeVar, cast

from pydantic import BaseModel, ConfigDict, JsonValue

from connector.core.errors import BadRequestError
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
    odrl_term,
)

__all__ = ["Problem", "parse_policy", "validate_policy"]

_T = TypeVar("_T")

# Terms we read, per object kind. Keys are compared after `odrl_term` (and `uid` -> `@id`).
_POLICY_TERMS: Final = frozenset(
    {"@id", "@type", "profile", "target", "assigner", "assignee", "timestamp"}
    | {"permission", "prohibition", "obligation"}
)
_PERMISSION_TERMS: Final = frozenset({"action", "constraint", "duty"})
_RULE_TERMS: Final = frozenset({"action", "constraint"})
_ATOMIC_TERMS: Final = frozenset({"leftOperand", "operator", "rightOperand"})
_LOGICAL_TERMS: Final = frozenset(op.value for op in LogicalOperator)
# ODRL terms we recognise but do not model. Ignoring them never widens what a policy grants
# (`conflict`: we always let prohibitions win; `consequence`/`remedy`/`failure` only add
# duties after a violation). Any other unprefixed term is an error: a misspelt "constraint", or
# an ignored rule-level `target`/`assignee` or `inheritFrom`, would silently grant more.
_IGNORED_TERMS: Final = frozenset(
    {"@context", "@type", "@id", "uid", "conflict", "consequence", "remedy", "failure", "dataType"}
)
_POLICY_ONLY_TERMS: Final = frozenset({"target", "assigner", "assignee"})
_ALIASES: Final = {"uid": "@id", "dspace:timestamp": "timestamp"}
_POLICY_TYPES: Final = {t.value: t for t in PolicyType}
# The `timestamp` pattern of contract-schema.json (Agreement).
_XSD_DATETIME: Final = re.compile(
    r"-?([1-9][0-9]{3,}|0[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T(([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?|(24:00:00(\.0+)?))"
    r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))?"
)


class Problem(BaseModel):
    """One validation problem: the JSON pointer (RFC 6901) into the input and a message."""

    model_config = ConfigDict(frozen=True)

    pointer: str
    message: str


def validate_policy(obj: object) -> list[Problem]:
    """Every problem in `obj` as an ODRL policy (empty list = valid); for 422 answers."""
    parser = _Parser()
    parser.policy(obj)
    return parser.problems


def parse_policy(obj: object) -> Policy:
    """Parse a compact 2025-1 ODRL policy.

    Raises:
        BadRequestError: the policy is malformed; `pointer` locates the first problem.
    """
    parser = _Parser()
    policy = parser.policy(obj)
    if parser.problems or policy is None:
        problems = parser.problems or [Problem(pointer="", message="invalid policy")]
        raise BadRequestError(
            *(f"{p.pointer or '/'}: {p.message}" for p in problems), pointer=problems[0].pointer
        )
    return policy


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _is_json(value: object) -> bool:
    if value is None or isinstance(value, str | bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


class _Parser:
    """Walks the input once, collecting problems instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def _fail(self, pointer: str, message: str) -> None:
        self.problems.append(Problem(pointer=pointer, message=message))

    def _terms(
        self, obj: Mapping[str, object], ptr: str, known: frozenset[str], kind: str
    ) -> dict[str, tuple[str, object]]:
        """Map each known term to (pointer, value); report unknown and duplicated terms."""
        found: dict[str, tuple[str, object]] = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                self._fail(ptr, f"{kind} keys must be strings")
                continue
            term = _ALIASES.get(key, key)
            term = _ALIASES.get(odrl_term(term), odrl_term(term))
            pointer = f"{ptr}/{_escape(key)}"
            if term in known:
                if term in found:
                    self._fail(pointer, f"duplicate term '{term}' (also at {found[term][0]})")
                else:
                    found[term] = (pointer, value)
            elif term in _IGNORED_TERMS or ":" in term:
                # Foreign vocabularies ("dct:title", full IRIs) are JSON-LD extensions, not ODRL.
                continue
            elif term in _POLICY_ONLY_TERMS:
                # dsp.md §11: rules carry no target or parties; they belong to the policy.
                self._fail(pointer, f"'{key}' is only allowed on the policy, not on a {kind}")
            else:
                self._fail(pointer, f"unknown {kind} term '{key}'")
        return found

    def _object(self, value: object, ptr: str, what: str) -> Mapping[str, object] | None:
        if isinstance(value, dict):
            return cast(Mapping[str, object], value)
        self._fail(ptr, f"{what} must be a JSON object")
        return None

    def _items(
        self, value: object, ptr: str, what: str, parse: Callable[[object, str], _T | None]
    ) -> Iterator[_T | None]:
        # A lone object where an array is expected is what JSON-LD compaction produces for a
        # one-element set without `@container: @set` (0.8 peers); accept it as one item.
        if isinstance(value, dict):
            yield parse(value, ptr)
        elif not isinstance(value, list):
            self._fail(ptr, f"{what} must be an array")
        else:
            for i, item in enumerate(value):
                yield parse(item, f"{ptr}/{i}")

    def _list(
        self,
        terms: Mapping[str, tuple[str, object]],
        term: str,
        parse: Callable[[object, str], _T | None],
        *,
        non_empty: bool,
    ) -> tuple[_T, ...] | None:
        """Parse an optional array member; None when any element is invalid."""
        if term not in terms:
            return ()
        ptr, value = terms[term]
        if non_empty and value == []:
            self._fail(ptr, f"'{term}' must contain at least one element")
            return None
        items = list(self._items(value, ptr, f"'{term}'", parse))
        if any(item is None for item in items):
            return None
        return tuple(item for item in items if item is not None)

    def _ref(self, value: object, ptr: str, what: str) -> str | None:
        """A string or a node reference {"@id": "..."}; returns the id."""
        if isinstance(value, dict) and set(value) == {"@id"}:
            return self._ref(value["@id"], f"{ptr}/@id", what)
        if isinstance(value, str) and value:
            return value
        self._fail(ptr, f"{what} must be a non-empty string")
        return None

    def _term_value(self, value: object, ptr: str, what: str) -> str | None:
        ref = self._ref(value, ptr, what)
        return None if ref is None else odrl_term(ref)

    def _id_member(
        self, terms: Mapping[str, tuple[str, object]], term: str, required: bool, ptr: str
    ) -> str | None:
        if term not in terms:
            if required:
                self._fail(f"{ptr}/{_escape(term)}", f"missing '{term}'")
            return None
        return self._ref(terms[term][1], terms[term][0], f"'{term}'")

    # -- policy ----------------------------------------------------------------------------

    def policy(self, obj: object) -> Policy | None:
        root = self._object(obj, "", "policy")
        if root is None:
            return None
        terms = self._terms(root, "", _POLICY_TERMS, "policy")
        before = len(self.problems)

        uid = self._id_member(terms, "@id", True, "")
        policy_type = self._policy_type(terms)
        # contract-schema.json: an Agreement names its target and both parties.
        required = policy_type is PolicyType.AGREEMENT
        target = self._id_member(terms, "target", required, "")
        assigner = self._id_member(terms, "assigner", required, "")
        assignee = self._id_member(terms, "assignee", required, "")
        profile = self._profile(terms)
        timestamp = self._timestamp(terms)
        permissions = self._list(terms, "permission", self._permission, non_empty=True)
        prohibitions = self._list(terms, "prohibition", self._prohibition, non_empty=True)
        obligations = self._list(terms, "obligation", self._duty, non_empty=True)
        if "permission" not in terms and "prohibition" not in terms:
            self._fail("/permission", "a policy needs at least one permission or prohibition")
        if (
            len(self.problems) > before
            or uid is None
            or policy_type is None
            or permissions is None
            or prohibitions is None
            or obligations is None
        ):
            return None
        return Policy(
            uid=uid,
            policy_type=policy_type,
            profile=profile,
            target=target,
            assigner=assigner,
            assignee=assignee,
            timestamp=timestamp,
            permissions=permissions,
            prohibitions=prohibitions,
            obligations=obligations,
        )

    def _policy_type(self, terms: Mapping[str, tuple[str, object]]) -> PolicyType | None:
        if "@type" not in terms:
            return PolicyType.SET  # ODRL's default policy type
        ptr, raw = terms["@type"]
        name = odrl_term(raw) if isinstance(raw, str) else None
        if name in _POLICY_TYPES:
            return _POLICY_TYPES[name]
        self._fail(ptr, "@type must be one of 'Set', 'Offer', 'Agreement'")
        return None

    def _profile(self, terms: Mapping[str, tuple[str, object]]) -> tuple[str, ...]:
        if "profile" not in terms:
            return ()
        ptr, value = terms["profile"]
        if isinstance(value, str) and value:
            return (value,)
        if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
            return tuple(cast(list[str], value))
        self._fail(ptr, "'profile' must be a string or an array of strings")
        return ()

    def _timestamp(self, terms: Mapping[str, tuple[str, object]]) -> str | None:
        if "timestamp" not in terms:
            return None
        ptr, value = terms["timestamp"]
        if isinstance(value, dict) and "@value" in value:
            value = value["@value"]
        if isinstance(value, str) and _XSD_DATETIME.fullmatch(value):
            return value
        self._fail(ptr, "'timestamp' must be an XSD dateTime string")
        return None

    # -- rules -----------------------------------------------------------------------------

    def _action(self, terms: Mapping[str, tuple[str, object]], ptr: str) -> Action | None:
        if "action" not in terms:
            self._fail(f"{ptr}/action", "missing 'action'")
            return None
        aptr, value = terms["action"]
        if isinstance(value, list) and len(value) == 1:
            aptr, value = f"{aptr}/0", value[0]
        if isinstance(value, dict) and "refinement" in value:
            self._fail(f"{aptr}/refinement", "action refinements are not supported")
            return None
        if isinstance(value, dict) and set(value) == {"rdf:value"}:
            aptr, value = f"{aptr}/rdf:value", value["rdf:value"]
        name = self._term_value(value, aptr, "'action'")
        return None if name is None else Action(name=name)

    def _rule_parts(
        self, value: object, ptr: str, known: frozenset[str], kind: str
    ) -> tuple[dict[str, tuple[str, object]], Action | None, tuple[ConstraintNode, ...] | None]:
        obj = self._object(value, ptr, kind)
        if obj is None:
            return {}, None, None
        terms = self._terms(obj, ptr, known, kind)
        action = self._action(terms, ptr)
        constraints: tuple[ConstraintNode, ...] | None = self._list(
            terms, "constraint", self._constraint, non_empty=False
        )
        return terms, action, constraints

    def _permission(self, value: object, ptr: str) -> Permission | None:
        terms, action, constraints = self._rule_parts(value, ptr, _PERMISSION_TERMS, "permission")
        duties = self._list(terms, "duty", self._duty, non_empty=False)
        if action is None or constraints is None or duties is None:
            return None
        return Permission(action=action, constraints=constraints, duties=duties)

    def _prohibition(self, value: object, ptr: str) -> Prohibition | None:
        _, action, constraints = self._rule_parts(value, ptr, _RULE_TERMS, "prohibition")
        if action is None or constraints is None:
            return None
        return Prohibition(action=action, constraints=constraints)

    def _duty(self, value: object, ptr: str) -> Duty | None:
        _, action, constraints = self._rule_parts(value, ptr, _RULE_TERMS, "duty")
        if action is None or constraints is None:
            return None
        return Duty(action=action, constraints=constraints)

    # -- constraints -----------------------------------------------------------------------

    def _constraint(self, value: object, ptr: str) -> ConstraintNode | None:
        obj = self._object(value, ptr, "constraint")
        if obj is None:
            return None
        terms = self._terms(obj, ptr, _ATOMIC_TERMS | _LOGICAL_TERMS, "constraint")
        logical = [t for t in terms if t in _LOGICAL_TERMS]
        atomic = [t for t in terms if t in _ATOMIC_TERMS]
        if logical:
            for term in logical[1:] + atomic:
                self._fail(terms[term][0], f"'{term}' is not allowed next to '{logical[0]}'")
            return self._logical(LogicalOperator(logical[0]), terms[logical[0]], ptr)
        left = op = None
        for term in ("leftOperand", "operator", "rightOperand"):
            if term not in terms:
                self._fail(f"{ptr}/{term}", f"missing '{term}'")
        if "leftOperand" in terms:
            ptr_left, raw_left = terms["leftOperand"]
            left = self._term_value(raw_left, ptr_left, "'leftOperand'")
        if "operator" in terms:
            ptr_op, raw_op = terms["operator"]
            op = self._term_value(raw_op, ptr_op, "'operator'")
        right = self._right_operand(terms)
        if left is None or op is None or right is None:
            return None
        # Unknown operators and left operands are kept: evaluation denies them with a reason.
        return Constraint(left_operand=left, operator=op, right_operand=right)

    def _right_operand(self, terms: Mapping[str, tuple[str, object]]) -> JsonValue | None:
        if "rightOperand" not in terms:
            return None
        ptr, value = terms["rightOperand"]
        if value is None or value == [] or not _is_json(value):
            self._fail(ptr, "'rightOperand' must be a string, number, boolean, object or array")
            return None
        return cast(JsonValue, value)

    def _logical(
        self, op: LogicalOperator, member: tuple[str, object], ptr: str
    ) -> LogicalConstraint | None:
        mptr, value = member
        if value == [] or not isinstance(value, list | dict):
            self._fail(mptr, f"'{op.value}' must be a non-empty array of constraints")
            return None
        items = list(self._items(value, mptr, f"'{op.value}'", self._constraint))
        if any(item is None for item in items):
            return None
        return LogicalConstraint(
            operator=op, constraints=tuple(item for item in items if item is not None)
        )
