"""The operator webhook's signature header (decision 0013): HMAC-SHA256 over timestamp and body.

    X-Connector-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

The timestamp is inside the MAC, so a captured request cannot be replayed later with a fresh
one; a receiver refuses a `t` outside its tolerance (default 300 s) and drops a notice `id` it
has seen (retries of one notice carry the same `id` and a new `t`). Pure: the caller passes the
time in.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

__all__ = ["HEADER", "ID_HEADER", "TOLERANCE_SECONDS", "sign", "signature_header", "verify"]

HEADER: Final = "X-Connector-Signature"
# The notice's id, also in the body: receivers deduplicate on it.
ID_HEADER: Final = "X-Connector-Notice-Id"
TOLERANCE_SECONDS: Final = 300


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`."""
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: bytes, timestamp: int, body: bytes) -> str:
    """The header's value for `body` sent at `timestamp` (unix seconds)."""
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def verify(
    header: str | None,
    secret: bytes,
    body: bytes,
    *,
    now: int,
    tolerance: int = TOLERANCE_SECONDS,
) -> bool:
    """Whether `header` signs `body` under `secret` at a time within `tolerance` of `now`."""
    if not header:
        return False
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields.setdefault(key, []).append(value)
    stamps = fields.get("t", [])
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    timestamp = int(stamps[0])
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body)
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))
