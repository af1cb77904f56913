"""Pure input guards for untrusted JSON: size, nesting depth, duplicate keys (identity.md §6.3).

Everything here is iterative (no recursion), so hostile nesting cannot raise `RecursionError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Final

from connector.core.errors import BadRequestError, TooLargeError

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_JSON_DEPTH",
    "check_json_depth",
    "check_json_text_depth",
    "check_size",
    "parse_json",
]

DEFAULT_MAX_JSON_DEPTH: Final = 32
DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024


def check_size(body: bytes | str, max_bytes: int) -> None:
    """Reject a body larger than `max_bytes` (strings are measured UTF-8 encoded).

    Raises:
        TooLargeError: the body is over the limit.
    """
    size = len(body) if isinstance(body, bytes) else len(body.encode("utf-8"))
    if size > max_bytes:
        raise TooLargeError(f"body of {size} bytes exceeds the limit of {max_bytes} bytes")


def check_json_depth(obj: object, max_depth: int) -> None:
    """Reject a parsed JSON value nested deeper than `max_depth` containers.

    A scalar has depth 0, `[]` and `{}` depth 1, `{"a": [1]}` depth 2.

    Raises:
        BadRequestError: the value is nested deeper than allowed.
    """
    stack: list[tuple[object, int]] = [(obj, 0)]
    while stack:
        value, depth = stack.pop()
        children: Iterable[object]
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list | tuple):
            children = value
        else:
            continue
        depth += 1
        if depth > max_depth:
            raise BadRequestError(f"JSON nested deeper than {max_depth} levels")
        stack.extend((child, depth) for child in children)


def check_json_text_depth(text: bytes | str, max_depth: int) -> None:
    """Reject JSON text nested deeper than `max_depth` before parsing it (brackets in strings
    are ignored). Run this before `json.loads`, whose C scanner recurses.

    Raises:
        BadRequestError: the text is nested deeper than allowed.
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    depth = 0
    in_string = False
    escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > max_depth:
                raise BadRequestError(f"JSON nested deeper than {max_depth} levels")
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise BadRequestError(f"duplicate JSON key {key!r}")
        result[key] = value
    return result


def parse_json(
    body: bytes | str,
    *,
    max_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_depth: int = DEFAULT_MAX_JSON_DEPTH,
) -> object:
    """Parse untrusted JSON: size cap, depth cap (before parsing), duplicate keys rejected.

    Raises:
        TooLargeError: the body is over `max_bytes`.
        BadRequestError: nesting too deep, duplicate keys, or not valid JSON.
    """
    check_size(body, max_bytes)
    check_json_text_depth(body, max_depth)
    try:
        return json.loads(body, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, BadRequestError):
            raise
        raise BadRequestError(f"invalid JSON ({type(exc).__name__})") from None
