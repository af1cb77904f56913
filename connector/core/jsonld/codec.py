"""Decode DSP bodies into the wire models and encode them back (DSP 2025-1 "Schemas & Contexts").

2025-1 bodies are compacted against the vendored 2025-1 context, so they are treated as plain
JSON (STYLE.md §11 fast path); the ODRL profile context is the only extra context allowed and is
`@import`ed by the main one, so its terms are already ours. 0.8 bodies are rewritten by `v08`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from connector.core.dsp.common import (
    DSP_CONTEXT_0_8,
    DSP_CONTEXT_2025_1,
    ODRL_PROFILE_CONTEXT_2025_1,
    DspModel,
    dsp_type_of,
)
from connector.core.dsp.validation import json_pointer, schema_name_for, schema_problems
from connector.core.dsp.version import DspVersion
from connector.core.errors import BadRequestError
from connector.core.jsonld import v08

__all__ = ["ALLOWED_CONTEXTS", "check_context", "decode", "encode"]

M = TypeVar("M", bound=BaseModel)

# Contexts a body may list, per version. Anything else is rejected and never fetched.
ALLOWED_CONTEXTS: Final[Mapping[DspVersion, frozenset[str]]] = {
    DspVersion.V2025_1: frozenset({DSP_CONTEXT_2025_1, ODRL_PROFILE_CONTEXT_2025_1}),
    DspVersion.V0_8: frozenset({DSP_CONTEXT_0_8}),
}

_MISSING: Final = object()


def check_context(context: object, version: DspVersion) -> list[str]:
    """Return `@context` as a list of vendored URLs that includes the version's main context.

    A lone string is accepted as a one-element list (pyld compacts `[url]` to `url`).

    Raises:
        BadRequestError: missing, inline, remote/unknown, or lacking the main context.
    """
    if context is _MISSING:
        raise BadRequestError("missing @context", pointer="/@context")
    items = [context] if isinstance(context, str) else context
    if not isinstance(items, list):
        raise BadRequestError(
            "unknown @context: inline contexts are not accepted", pointer="/@context"
        )
    allowed = ALLOWED_CONTEXTS[version]
    for i, item in enumerate(items):
        if not isinstance(item, str) or item not in allowed:
            pointer = "/@context" if isinstance(context, str) else f"/@context/{i}"
            raise BadRequestError(f"unknown @context {item!r} for DSP {version}", pointer=pointer)
    if version.context_url not in items:
        raise BadRequestError(
            f"unknown @context: DSP {version} requires {version.context_url}", pointer="/@context"
        )
    return list(items)


def decode(body: object, model: type[M], version: DspVersion, *, check_schema: bool = True) -> M:
    """Parse a DSP body of the given version into `model`.

    2025-1 bodies are also checked against the official schema unless `check_schema` is False
    (e.g. for lenient parsing of a peer's response).

    Raises:
        BadRequestError: with a reason and a JSON pointer (`pointer=`) to the first problem.
    """
    if not isinstance(body, dict):
        raise BadRequestError("body must be a JSON object", pointer="")
    expected = dsp_type_of(model)
    data: dict[str, Any] = dict(body)
    paths: v08.Paths = {}
    context: list[str] = []
    if expected is not None:
        context = check_context(data.pop("@context", _MISSING), version)
        nested = _nested_context(data, ())
        if nested is not None:
            # A scoped context could redefine protected terms for anyone re-reading the body.
            raise BadRequestError(
                "unknown @context: nested contexts are not accepted", pointer=nested
            )
        if version is DspVersion.V0_8:
            data, paths = v08.from_v08(data, expected)
        _check_type(data.get("@type"), expected)
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        raise _bad_request(exc, data, paths) from None
    schema = _schema_for(expected or model.__name__, version)
    if check_schema and version is DspVersion.V2025_1 and schema is not None:
        checked = {**body, "@context": context} if expected is not None else body
        problems = schema_problems(checked, schema, version)
        if problems:
            pointer, message = problems[0]
            raise BadRequestError(f"{pointer or '/'}: {message}", pointer=pointer)
    return parsed


def encode(model: DspModel, version: DspVersion = DspVersion.V2025_1) -> dict[str, Any]:
    """The exact wire body of `model` for `version`.

    2025-1: `@context` is always an array; 0.8: prefixed terms and types, string `@context`.
    Bodies without `@type` (VersionResponse) are plain JSON in every version.
    """
    wire = model.to_wire()
    type_name = dsp_type_of(type(model))
    if type_name is None:
        return wire
    if version is DspVersion.V2025_1:
        return {"@context": [DSP_CONTEXT_2025_1], **wire}
    return {"@context": DSP_CONTEXT_0_8, **v08.to_v08(wire, type_name)}


def _nested_context(node: object, path: tuple[str | int, ...]) -> str | None:
    if isinstance(node, dict):
        if "@context" in node:
            return json_pointer((*path, "@context"))
        children: list[tuple[str | int, object]] = list(node.items())
    elif isinstance(node, list):
        children = list(enumerate(node))
    else:
        return None
    for key, child in children:
        found = _nested_context(child, (*path, key))
        if found is not None:
            return found
    return None


def _schema_for(type_name: str, version: DspVersion) -> str | None:
    try:
        return schema_name_for(type_name, version)
    except KeyError:
        return None


def _check_type(actual: object, expected: str) -> None:
    if actual is None:
        raise BadRequestError(f"missing @type, expected {expected}", pointer="/@type")
    if actual != expected:
        raise BadRequestError(f"wrong @type {actual!r}, expected {expected!r}", pointer="/@type")


def _bad_request(exc: ValidationError, data: object, paths: v08.Paths) -> BadRequestError:
    error = exc.errors()[0]
    path = _input_path(error["loc"], data, missing=error["type"] == "missing")
    pointer = json_pointer(_original_path(path, paths))
    return BadRequestError(f"{pointer or '/'}: {error['msg']}", pointer=pointer)


def _input_path(loc: Sequence[str | int], data: object, *, missing: bool) -> list[str | int]:
    """Drop pydantic's union/validator tags from `loc`, keeping only steps present in the input."""
    path: list[str | int] = []
    node: Any = data
    for i, step in enumerate(loc):
        present = (isinstance(node, dict) and isinstance(step, str) and step in node) or (
            isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)
        )
        if present:
            node = node[step]
        elif not (missing and i == len(loc) - 1 and isinstance(step, str)):
            continue
        path.append(step)
    return path


def _original_path(path: list[str | int], paths: v08.Paths) -> tuple[str | int, ...]:
    """Map a path in the normalised body back into the body the peer sent (0.8)."""
    for cut in range(len(path), 0, -1):
        original = paths.get(tuple(path[:cut]))
        if original is not None:
            return (*original, *path[cut:])
    return tuple(path)
