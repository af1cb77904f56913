"""Management API keys: hashed storage, constant-time verification, edge key file
(identity.md §4.2, §6.7).

Keys are high-entropy random strings (>= 32 bytes from `secrets`), so a single fast SHA-256 is
enough: slow password hashes (bcrypt, argon2) exist to make guessing *low-entropy* secrets
expensive, and brute-forcing a 256-bit random key is infeasible at any hash speed. A fast hash also
keeps every request cheap.

Verification hashes the presented key once and compares it with `hmac.compare_digest` against
**every** configured digest without early exit, so the time does not depend on which (or whether
a) key matched or on shared prefixes. No case folding.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "EDGE_KEY_FILE",
    "MIN_KEY_LENGTH",
    "ApiKeyVerifier",
    "ensure_edge_api_key",
    "generate_api_key",
    "hash_api_key",
    "load_api_keys",
]

logger = logging.getLogger(__name__)

EDGE_KEY_FILE: Final = "management-api-key"
MIN_KEY_LENGTH: Final = 32
_HASHED_RE: Final = re.compile(r"^sha256:([0-9a-f]{64})$")


def generate_api_key() -> str:
    """A new random key (32 bytes, URL-safe base64: 43 characters)."""
    return secrets.token_urlsafe(32)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def hash_api_key(key: str) -> str:
    """The storable form `sha256:<hex>` of a key."""
    return f"sha256:{_digest(key).hex()}"


@dataclass(frozen=True, slots=True)
class ApiKeyVerifier:
    """Configured key digests with names (`key-1`, ... unless given)."""

    digests: tuple[bytes, ...]
    names: tuple[str, ...]

    def verify(self, presented: str | None) -> str | None:
        """Name of the matching key, or None. Constant time in the configured set."""
        if not presented:
            return None
        candidate = _digest(presented)
        matched = -1
        for index, digest in enumerate(self.digests):
            # No early exit: every digest is compared on every call.
            hit = hmac.compare_digest(candidate, digest)
            matched = index if hit else matched
        return self.names[matched] if matched >= 0 else None


def load_api_keys(
    values: Sequence[str],
    *,
    names: Sequence[str] | None = None,
    min_length: int = MIN_KEY_LENGTH,
) -> ApiKeyVerifier:
    """Build a verifier from settings: each value is `sha256:<64 hex>` or a plain key.

    Raises:
        ValueError: a plain key shorter than `min_length`, or a malformed digest.
    """
    digests: list[bytes] = []
    for value in values:
        if value.startswith("sha256:"):
            match = _HASHED_RE.match(value.lower())
            if match is None:
                raise ValueError("hashed API key must be 'sha256:' followed by 64 hex digits")
            digests.append(bytes.fromhex(match.group(1)))
        else:
            if len(value) < min_length:
                raise ValueError(f"API keys must be at least {min_length} characters")
            digests.append(_digest(value))
    key_names = (
        tuple(names) if names is not None else tuple(f"key-{i + 1}" for i in range(len(digests)))
    )
    if len(key_names) != len(digests):
        raise ValueError("one name per API key")
    return ApiKeyVerifier(digests=tuple(digests), names=key_names)


def ensure_edge_api_key(data_dir: Path) -> tuple[str, bool]:
    """Edge mode: read `<data_dir>/management-api-key`, creating it (mode 0600) if missing.

    Returns `(key, created)`. The key is never logged; only the file path is.

    Raises:
        PermissionError: an existing key file is accessible to group/others.
    """
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = data_dir / EDGE_KEY_FILE
    try:
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600
        )
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise PermissionError(f"{path} has mode {mode:o}; chmod 600 {path}") from None
        key = path.read_text("utf-8").strip()
        if len(key) < MIN_KEY_LENGTH:
            raise ValueError(f"{path} does not hold a valid API key") from None
        return key, False
    key = generate_api_key()
    try:
        os.write(fd, (key + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    logger.warning("generated a management API key", extra={"path": str(path)})
    return key, True
