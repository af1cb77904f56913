"""The one codec of opaque page tokens (list cursors, the DSP catalog's continuationToken):
compact JSON in unpadded base64url, so a token is URL-safe and says nothing a client should
rely on. Each list decides what its token holds and checks it after `decode`."""

from __future__ import annotations

import base64
import json
from typing import Any

__all__ = ["decode", "encode"]


def encode(data: object) -> str:
    """The token carrying `data` (JSON-serialisable)."""
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode(token: str) -> Any:
    """What `encode` put into `token`; `ValueError` for anything that is not such a token."""
    try:
        return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError) as exc:  # binascii.Error and JSON errors are ValueErrors
        raise ValueError("not a page token") from exc
