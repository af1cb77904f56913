"""Left-operand functions (STYLE.md §11): map an ODRL left operand to a fact about the caller.

Names are looked up after compacting `odrl:` / ODRL IRIs and stripping `CONNECTOR_POLICY_NS`:

| left operand | fact |
|---|---|
| `dateTime` | `ctx.now` (right operand: ISO-8601 / XSD dateTime; naive = UTC) |
| `purpose`, `spatial` | `ctx.purpose`, `ctx.spatial`; undecidable when not supplied |
| `participantId`, `assignee` | `ctx.participant_id` (the verified caller) |
| `membership` | claim `membership` |
| `credential`, `credentialType` | claim `credential_types` (types of presented credentials) |
| `<Type>Credential` | claim of that name: a DCP credential's standing (`active`, `revoked`, ...) |
| `<Type>Credential.<field>` | claim of that name: `credentialSubject.<field>` of active ones |
| `claim:<name>` | claim `<name>`, any claim; e.g. `claim:tier` |
| `fact:<name>` | `ctx.extra[<name>]`; undecidable when absent |

A missing claim is the empty set (so `membership eq "gold"` fails and `isNoneOf` holds); a claim
holding an object cannot be compared. Unknown left operands are undecidable, hence deny.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from pydantic import JsonValue

from connector.core.policy.context import CREDENTIAL_TYPES_CLAIM, MEMBERSHIP_CLAIM, PolicyContext
from connector.core.policy.model import odrl_term
from connector.core.policy.operators import Scalar, Value

__all__ = [
    "CONNECTOR_POLICY_NS",
    "LEFT_OPERANDS",
    "LeftOperandFn",
    "Unknown",
    "canonical_left_operand",
    "is_credential_operand",
    "resolve",
]

# Namespace of this connector's own left operands, for policies written with full IRIs.
CONNECTOR_POLICY_NS: Final = "https://w3id.org/lightweight-dataspace-connector/policy/"
CLAIM_PREFIX: Final = "claim:"
CREDENTIAL_SUFFIX: Final = "Credential"
FACT_PREFIX: Final = "fact:"


@dataclass(frozen=True)
class Unknown:
    """The fact cannot be established; `reason` says why (the constraint is undecidable)."""

    reason: str


LeftOperandFn = Callable[[PolicyContext], Value | Unknown]


def canonical_left_operand(name: str) -> str:
    """Compact a left operand: "odrl:x", ODRL_NS + "x" and CONNECTOR_POLICY_NS + "x" become "x"."""
    name = odrl_term(name)
    if name.startswith(CONNECTOR_POLICY_NS) and len(name) > len(CONNECTOR_POLICY_NS):
        return name[len(CONNECTOR_POLICY_NS) :]
    return name


def is_credential_operand(name: str) -> bool:
    """`<Type>Credential` or `<Type>Credential.<field>` (a compacted left operand)."""
    type_, sep, field = name.partition(".")
    return (
        len(type_) > len(CREDENTIAL_SUFFIX)
        and type_.endswith(CREDENTIAL_SUFFIX)
        and type_.isalnum()
        and (not sep or field.replace("_", "").isalnum())
    )


def resolve(
    left_operand: str, ctx: PolicyContext, table: Mapping[str, LeftOperandFn] | None = None
) -> Value | Unknown:
    """The caller's fact for `left_operand`, or `Unknown` with a reason."""
    name = canonical_left_operand(left_operand)
    fn = (LEFT_OPERANDS if table is None else table).get(name)
    if fn is not None:
        return fn(ctx)
    if name.startswith(CLAIM_PREFIX) and len(name) > len(CLAIM_PREFIX):
        return _claim(name[len(CLAIM_PREFIX) :], ctx)
    if is_credential_operand(name):
        return _claim(name, ctx)
    if name.startswith(FACT_PREFIX) and len(name) > len(FACT_PREFIX):
        return _fact(name[len(FACT_PREFIX) :], ctx)
    return Unknown(f"unknown left operand '{left_operand}'")


def _value(raw: JsonValue, what: str) -> Value | Unknown:
    if raw is None:
        return ()
    if isinstance(raw, str | bool | int | float):
        return raw
    if isinstance(raw, list):
        items: list[Scalar] = []
        for item in raw:
            if isinstance(item, str | bool | int | float):
                items.append(item)
            elif item is not None:
                return Unknown(f"{what} holds a nested value that cannot be compared")
        return tuple(items)
    return Unknown(f"{what} is an object and cannot be compared")


def _claim(name: str, ctx: PolicyContext) -> Value | Unknown:
    # Claims are sets of values: absent means "none", so negative tests (isNoneOf) hold.
    return _value(ctx.claims.get(name), f"claim '{name}'")


def _fact(name: str, ctx: PolicyContext) -> Value | Unknown:
    if name not in ctx.extra:
        return Unknown(f"fact '{name}' is not known in this context")
    return _value(ctx.extra[name], f"fact '{name}'")


def _date_time(ctx: PolicyContext) -> Value | Unknown:
    return ctx.now


def _purpose(ctx: PolicyContext) -> Value | Unknown:
    return Unknown("no purpose was declared") if ctx.purpose is None else ctx.purpose


def _spatial(ctx: PolicyContext) -> Value | Unknown:
    return Unknown("no spatial region is known") if ctx.spatial is None else ctx.spatial


def _participant(ctx: PolicyContext) -> Value | Unknown:
    return ctx.participant_id


def _membership(ctx: PolicyContext) -> Value | Unknown:
    return _claim(MEMBERSHIP_CLAIM, ctx)


def _credentials(ctx: PolicyContext) -> Value | Unknown:
    return _claim(CREDENTIAL_TYPES_CLAIM, ctx)


LEFT_OPERANDS: Final[Mapping[str, LeftOperandFn]] = MappingProxyType(
    {
        "dateTime": _date_time,
        "purpose": _purpose,
        "spatial": _spatial,
        "participantId": _participant,
        "assignee": _participant,
        "membership": _membership,
        "credential": _credentials,
        "credentialType": _credentials,
    }
)
