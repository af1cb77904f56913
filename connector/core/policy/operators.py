"""ODRL constraint operators (ODRL 2.2 Vocabulary §"Constraint Operators"; contract-schema.json).

A left value is a scalar `l` or a tuple `L` (a set, e.g. a list-valued claim); `R` is the right
operand as a set.

- eq / neq: `l == r` (a list right operand is a type error: use isAnyOf); `r ∈ L`, or set
  equality when the right operand is a list.
- gt gteq lt lteq: order of numbers or dateTimes (naive dateTimes are UTC); lists are an error.
- isAnyOf: `l ∈ R`; `L ∩ R ≠ ∅`.   isNoneOf: the negation (true for an empty/missing claim).
- isAllOf: `R ⊆ {l}`; `R ⊆ L`.
- isPartOf: `l` equals some `r` or, for strings, lies under it (`DE-BY` under `DE`, `…/EU/DE`
  under `…/EU`; separators `- / : #`); `L ≠ ∅` and every element is part of `R`.
- hasPart: every `r` is part of `l` / of some element of `L`.
- isA: like eq with a single right value; `r ∈ L` (e.g. a credential type).

A scalar right operand is read as a one-element list where a list is expected. A value that
cannot be compared (a dateTime with a number, order on plain strings) yields an undecided
verdict with a reason — never an exception. Within set operations an element of another type
simply does not match, unless nothing at all is comparable.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final, TypeVar

from pydantic import JsonValue

__all__ = ["Operator", "Scalar", "Value", "Verdict", "apply", "render"]

Scalar = str | int | float | bool | datetime
Value = Scalar | tuple[Scalar, ...]

_T = TypeVar("_T", datetime, float)
_DATE_PREFIX: Final = re.compile(r"-?\d{4}-\d{2}-\d{2}")
_NUMBER: Final = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_SEPARATORS: Final = "-/:#"


class Operator(StrEnum):
    EQ = "eq"
    NEQ = "neq"
    GT = "gt"
    GTEQ = "gteq"
    LT = "lt"
    LTEQ = "lteq"
    IS_ANY_OF = "isAnyOf"
    IS_ALL_OF = "isAllOf"
    IS_NONE_OF = "isNoneOf"
    IS_PART_OF = "isPartOf"
    HAS_PART = "hasPart"
    IS_A = "isA"


@dataclass(frozen=True)
class Verdict:
    """`satisfied` is None when the constraint cannot be decided (the evaluator then denies)."""

    satisfied: bool | None
    message: str


class _Incomparable(Exception):
    """Internal: the operands cannot be compared. Never escapes `apply`."""


def render(value: Value | JsonValue) -> str:
    """Human-readable form used in decision reasons."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def apply(op: Operator, label: str, left: Value, right: JsonValue) -> Verdict:
    """Decide `left op right`; `label` names the left operand in the message."""
    try:
        right_value = _unwrap(right)
        ok = _SEMANTICS[op](left, right_value)
    except _Incomparable as exc:
        return Verdict(None, f"{label} {render(left)} cannot be tested with '{op}': {exc}")
    scalar_pos, scalar_neg, list_pos, list_neg = _PHRASES[op]
    if isinstance(left, tuple):
        phrase = list_pos if ok else list_neg
    else:
        phrase = scalar_pos if ok else scalar_neg
    return Verdict(ok, f"{label} {render(left)} {phrase} {render(right_value)}")


# -- right operand ---------------------------------------------------------------------------


def _unwrap(raw: JsonValue) -> Value:
    """JSON right operand -> value; unwraps JSON-LD `@value`, `@id`, `@list`/`@set` objects."""
    if isinstance(raw, list):
        items = tuple(_scalar(v) for v in raw)
        if not items:
            raise _Incomparable("the right operand is an empty list")
        return items
    if isinstance(raw, dict):
        for key in ("@list", "@set"):
            if key in raw:
                return _unwrap(raw[key])
    return _scalar(raw)


def _scalar(raw: JsonValue) -> Scalar:
    if isinstance(raw, str | bool | int | float):
        return raw
    if isinstance(raw, dict):
        if "@value" in raw:
            return _scalar(raw["@value"])
        ident = raw.get("@id")
        if isinstance(ident, str):
            return ident
        raise _Incomparable(f"unsupported right operand object {render(raw)}")
    raise _Incomparable(f"unsupported right operand {render(raw)}")


def _scalars(value: Value) -> tuple[Scalar, ...]:
    return value if isinstance(value, tuple) else (value,)


# -- comparison of two scalars ---------------------------------------------------------------


def _kind(value: Scalar) -> str:
    if isinstance(value, datetime):
        return f"dateTime {value.isoformat()}"
    if isinstance(value, bool):
        return f"boolean {render(value)}"
    if isinstance(value, int | float):
        return f"number {value}"
    return f"string {value!r}"


def _mismatch(left: Scalar, right: Scalar) -> _Incomparable:
    return _Incomparable(f"type mismatch: cannot compare {_kind(left)} with {_kind(right)}")


def _as_datetime(value: Scalar) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _DATE_PREFIX.match(value):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        # Policies are written in UTC by convention; a naive value must not compare as local time.
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _as_number(value: str | float) -> float | None:
    if isinstance(value, int | float):
        return value
    if _NUMBER.fullmatch(value):
        return float(value)
    return None


def _as_bool(value: Scalar) -> bool | None:
    if isinstance(value, bool):
        return value
    return {"true": True, "false": False}.get(value) if isinstance(value, str) else None


def _equal(left: Scalar, right: Scalar) -> bool:
    if isinstance(left, datetime) or isinstance(right, datetime):
        ldt, rdt = _as_datetime(left), _as_datetime(right)
        if ldt is None or rdt is None:
            raise _mismatch(left, right)
        return ldt == rdt
    if isinstance(left, bool) or isinstance(right, bool):
        lb, rb = _as_bool(left), _as_bool(right)
        if lb is None or rb is None:
            raise _mismatch(left, right)
        return lb == rb
    if isinstance(left, int | float) or isinstance(right, int | float):
        ln, rn = _as_number(left), _as_number(right)
        if ln is None or rn is None:
            raise _mismatch(left, right)
        return ln == rn
    return left == right


def _holds(op: Operator, left: _T, right: _T) -> bool:
    if op is Operator.GT:
        return left > right
    if op is Operator.GTEQ:
        return left >= right
    if op is Operator.LT:
        return left < right
    return left <= right


def _ordered(op: Operator, left: Value, right: Value) -> bool:
    if isinstance(left, tuple) or isinstance(right, tuple):
        raise _Incomparable(f"'{op}' needs single values, not lists")
    if isinstance(left, bool) or isinstance(right, bool):
        raise _Incomparable("booleans have no order")
    ldt, rdt = _as_datetime(left), _as_datetime(right)
    if ldt is not None and rdt is not None:
        return _holds(op, ldt, rdt)
    if not isinstance(left, datetime) and not isinstance(right, datetime):
        ln, rn = _as_number(left), _as_number(right)
        if ln is not None and rn is not None:
            return _holds(op, ln, rn)
    raise _mismatch(left, right)


def _part(left: Scalar, right: Scalar) -> bool:
    """`left` equals `right` or, for strings, lies under it in a code / IRI hierarchy."""
    if isinstance(left, str) and isinstance(right, str) and right and left.startswith(right):
        rest = left[len(right) :]
        return not rest or right[-1:] in _SEPARATORS or rest[0] in _SEPARATORS
    return _equal(left, right)


# -- set semantics ---------------------------------------------------------------------------


def _matches(
    items: tuple[Scalar, ...], pool: tuple[Scalar, ...], rel: Callable[[Scalar, Scalar], bool]
) -> list[bool]:
    """For each item: does it relate to some pool element? Incomparable pairs do not match,
    unless no pair at all is comparable (then the whole test is a type error)."""
    out: list[bool] = []
    comparable = False
    first_error: _Incomparable | None = None
    for item in items:
        hit = False
        for candidate in pool:
            try:
                hit = rel(item, candidate)
            except _Incomparable as exc:
                first_error = first_error or exc
                continue
            comparable = True
            if hit:
                break
        out.append(hit)
    if first_error is not None and not comparable:
        raise first_error
    return out


def _eq(left: Value, right: Value) -> bool:
    if isinstance(left, tuple):
        if isinstance(right, tuple):
            return all(_matches(right, left, _equal)) and all(_matches(left, right, _equal))
        return any(_matches((right,), left, _equal))
    if isinstance(right, tuple):
        raise _Incomparable("'eq' needs a single right operand; use 'isAnyOf' for a list")
    return _equal(left, right)


def _is_a(left: Value, right: Value) -> bool:
    if isinstance(right, tuple):
        raise _Incomparable("'isA' needs a single right operand")
    return _eq(left, right)


def _any_of(left: Value, right: Value) -> bool:
    return any(_matches(_scalars(left), _scalars(right), _equal))


def _all_of(left: Value, right: Value) -> bool:
    return all(_matches(_scalars(right), _scalars(left), _equal))


def _part_of(left: Value, right: Value) -> bool:
    items = _scalars(left)
    # An empty claim is not "part of" anything: vacuous truth would admit callers without claims.
    return bool(items) and all(_matches(items, _scalars(right), _part))


def _has_part(left: Value, right: Value) -> bool:
    return all(_matches(_scalars(right), _scalars(left), _part))


_SEMANTICS: Final[dict[Operator, Callable[[Value, Value], bool]]] = {
    Operator.EQ: _eq,
    Operator.NEQ: lambda left, right: not _eq(left, right),
    Operator.GT: lambda left, right: _ordered(Operator.GT, left, right),
    Operator.GTEQ: lambda left, right: _ordered(Operator.GTEQ, left, right),
    Operator.LT: lambda left, right: _ordered(Operator.LT, left, right),
    Operator.LTEQ: lambda left, right: _ordered(Operator.LTEQ, left, right),
    Operator.IS_ANY_OF: _any_of,
    Operator.IS_ALL_OF: _all_of,
    Operator.IS_NONE_OF: lambda left, right: not _any_of(left, right),
    Operator.IS_PART_OF: _part_of,
    Operator.HAS_PART: _has_part,
    Operator.IS_A: _is_a,
}

# (scalar left holds, scalar left fails, list left holds, list left fails)
_PHRASES: Final[dict[Operator, tuple[str, str, str, str]]] = {
    Operator.EQ: ("is", "is not", "includes", "does not include"),
    Operator.NEQ: ("is not", "is", "does not include", "includes"),
    Operator.GT: ("is greater than", "is not greater than") * 2,
    Operator.GTEQ: ("is greater than or equal to", "is not greater than or equal to") * 2,
    Operator.LT: ("is less than", "is not less than") * 2,
    Operator.LTEQ: ("is less than or equal to", "is not less than or equal to") * 2,
    Operator.IS_ANY_OF: ("is any of", "is not any of", "includes any of", "includes none of"),
    Operator.IS_ALL_OF: ("is all of", "is not all of", "includes all of", "lacks some of"),
    Operator.IS_NONE_OF: ("is none of", "is one of", "includes none of", "includes some of"),
    Operator.IS_PART_OF: ("is part of", "is not part of", "is part of", "is not part of"),
    Operator.HAS_PART: ("has part", "does not have part", "has parts", "lacks parts"),
    Operator.IS_A: ("is a", "is not a", "includes", "does not include"),
}
