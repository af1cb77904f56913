"""EC P-256 signing keys of our DID: generate, load, save, rotate (identity.md §2.3, §2.5).

Two ways to hold keys:

* **managed key directory** (`load_or_create_keyring`): on first start a key is generated and kept
  as `<dir>/<key id>.pem` (mode 0600, directory 0700) with `<dir>/keyring.json` naming the current
  key and the retired ones with their retirement time. `rotate_keyring` adds a new current key; the
  old one stays published until `retired_at + grace`, then `prune_keyring` deletes it.
* **external key file** (`keyring_from_files`): a PEM mounted from a secret store; rotation is the
  operator's job (list the old file under previous keys until the grace period is over).

Key ids are RFC 7638 JWK thumbprints; the DID verification method id is `<did>#<key id>`.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from joserfc.jwk import ECKey
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "KEYRING_FILE",
    "IdentityKeysConfig",
    "InsecureKeyFileError",
    "KeyEntry",
    "KeyRing",
    "generate_key",
    "key_id",
    "keyring_from_files",
    "load_or_create_keyring",
    "load_private_key",
    "prune_keyring",
    "rotate_keyring",
    "save_private_key",
]

logger = logging.getLogger(__name__)

KEYRING_FILE: Final = "keyring.json"
DEFAULT_GRACE: Final = timedelta(minutes=15)


class InsecureKeyFileError(PermissionError):
    """A private key file (or its directory) is readable or writable by group/others."""


class IdentityKeysConfig(BaseModel):
    """Key settings (embedded by the lead, e.g. `settings.identity.keys`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key_dir: Path = Field(
        default=Path("./var/keys"), description="Managed key directory (generated on first start)."
    )
    key_file: Path | None = Field(
        default=None, description="External PEM private key; disables the managed directory."
    )
    previous_key_files: tuple[Path, ...] = Field(
        default=(), description="Old external keys still published (operator-managed grace)."
    )
    rotation_grace_seconds: int = Field(
        default=int(DEFAULT_GRACE.total_seconds()),
        ge=0,
        description="How long a retired key stays in our DID document.",
    )


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One key pair. `retired_at` is None for the current key."""

    key: ECKey
    key_id: str
    retired_at: datetime | None = None

    def public_jwk(self) -> dict[str, str]:
        """The public JWK (never private members)."""
        jwk = self.key.as_dict(private=False)
        return {k: str(jwk[k]) for k in ("kty", "crv", "x", "y")}


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The current signing key plus retired keys still within their grace period."""

    current: KeyEntry
    previous: tuple[KeyEntry, ...] = ()
    grace: timedelta = DEFAULT_GRACE
    directory: Path | None = field(default=None, compare=False)

    def published(self, now: datetime) -> tuple[KeyEntry, ...]:
        """Keys to list in the DID document at `now`: current + retired ones still in grace."""
        kept = tuple(
            e for e in self.previous if e.retired_at is None or now < e.retired_at + self.grace
        )
        return (self.current, *kept)

    def find(self, kid: str) -> KeyEntry | None:
        for entry in (self.current, *self.previous):
            if entry.key_id == kid:
                return entry
        return None


def generate_key() -> ECKey:
    """A fresh EC P-256 private key."""
    return ECKey.generate_key("P-256", private=True)


def key_id(key: ECKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key."""
    return ECKey.import_key(key.as_dict(private=False)).thumbprint()


def _check_private_mode(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InsecureKeyFileError(
            f"{path} has mode {mode:o}; private keys must not be accessible to group/others "
            f"(chmod {'700' if path.is_dir() else '600'} {path})"
        )


def _ensure_private_dir(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    _check_private_mode(directory)


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` atomically with mode 0600 (temp file + rename; never world-readable)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def save_private_key(path: Path, key: ECKey) -> None:
    """Store `key` as PKCS#8 PEM with mode 0600; the parent directory gets mode 0700."""
    _ensure_private_dir(path.parent)
    _write_private(path, key.as_pem(private=True))


def load_private_key(path: Path, *, check_permissions: bool = True) -> ECKey:
    """Load an EC P-256 private key from a PEM file.

    Raises:
        InsecureKeyFileError: the file is group/world accessible (when `check_permissions`).
        ValueError: not an EC P-256 private key.
    """
    if check_permissions:
        _check_private_mode(path)
    key = ECKey.import_key(path.read_bytes())
    if not key.is_private or key.curve_name != "P-256":
        raise ValueError(f"{path} is not an EC P-256 private key")
    return key


def keyring_from_files(
    key_file: Path,
    previous_key_files: Sequence[Path] = (),
    *,
    grace: timedelta = DEFAULT_GRACE,
) -> KeyRing:
    """A key ring from operator-managed PEM files (previous keys are published until removed)."""
    current = load_private_key(key_file)
    previous = tuple(
        KeyEntry(key=k, key_id=key_id(k)) for k in (load_private_key(p) for p in previous_key_files)
    )
    return KeyRing(current=KeyEntry(current, key_id(current)), previous=previous, grace=grace)


def _read_state(directory: Path) -> dict[str, object] | None:
    path = directory / KEYRING_FILE
    if not path.exists():
        return None
    state = json.loads(path.read_text("utf-8"))
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a JSON object")
    return state


def _write_state(directory: Path, ring: KeyRing) -> None:
    state = {
        "current": ring.current.key_id,
        "previous": [
            {"kid": e.key_id, "retired_at": e.retired_at.isoformat() if e.retired_at else None}
            for e in ring.previous
        ],
    }
    _write_private(directory / KEYRING_FILE, json.dumps(state, indent=2).encode("utf-8"))


def _load_entry(directory: Path, kid: str, retired_at: datetime | None) -> KeyEntry:
    key = load_private_key(directory / f"{kid}.pem")
    if key_id(key) != kid:
        raise ValueError(f"{directory / kid}.pem does not hold key {kid}")
    return KeyEntry(key=key, key_id=kid, retired_at=retired_at)


def _load_ring(directory: Path, state: dict[str, object], grace: timedelta) -> KeyRing:
    current = state.get("current")
    raw_previous = state.get("previous", [])
    if not isinstance(current, str) or not isinstance(raw_previous, list):
        raise ValueError(f"{directory / KEYRING_FILE} is malformed")
    previous: list[KeyEntry] = []
    for item in raw_previous:
        if not isinstance(item, dict) or not isinstance(item.get("kid"), str):
            raise ValueError(f"{directory / KEYRING_FILE} is malformed")
        retired = item.get("retired_at")
        retired_at = datetime.fromisoformat(retired) if isinstance(retired, str) else None
        previous.append(_load_entry(directory, item["kid"], retired_at))
    return KeyRing(
        current=_load_entry(directory, current, None),
        previous=tuple(previous),
        grace=grace,
        directory=directory,
    )


def load_or_create_keyring(directory: Path, *, grace: timedelta = DEFAULT_GRACE) -> KeyRing:
    """Load the managed key ring, generating and persisting a first key if there is none.

    Raises:
        InsecureKeyFileError: the directory or a key file is group/world accessible.
    """
    _ensure_private_dir(directory)
    state = _read_state(directory)
    if state is not None:
        return _load_ring(directory, state, grace)
    key = generate_key()
    entry = KeyEntry(key=key, key_id=key_id(key))
    save_private_key(directory / f"{entry.key_id}.pem", key)
    ring = KeyRing(current=entry, grace=grace, directory=directory)
    _write_state(directory, ring)
    logger.info("generated identity key", extra={"kid": entry.key_id})
    return ring


def rotate_keyring(directory: Path, *, now: datetime, grace: timedelta = DEFAULT_GRACE) -> KeyRing:
    """Generate a new current key; the old one is retired at `now` and stays published for
    `grace` (tokens it signed live at most 5 minutes; counterparties may cache our document)."""
    ring = load_or_create_keyring(directory, grace=grace)
    key = generate_key()
    entry = KeyEntry(key=key, key_id=key_id(key))
    save_private_key(directory / f"{entry.key_id}.pem", key)
    retired = KeyEntry(key=ring.current.key, key_id=ring.current.key_id, retired_at=now)
    rotated = KeyRing(
        current=entry, previous=(retired, *ring.previous), grace=grace, directory=directory
    )
    _write_state(directory, rotated)
    logger.info("rotated identity key", extra={"kid": entry.key_id, "retired_kid": retired.key_id})
    return rotated


def prune_keyring(directory: Path, *, now: datetime, grace: timedelta = DEFAULT_GRACE) -> KeyRing:
    """Forget (and delete) retired keys whose grace period is over."""
    ring = load_or_create_keyring(directory, grace=grace)
    keep = ring.published(now)[1:]
    pruned = KeyRing(current=ring.current, previous=keep, grace=grace, directory=directory)
    _write_state(directory, pruned)
    kept_ids = {e.key_id for e in keep}
    for entry in ring.previous:
        if entry.key_id not in kept_ids:
            (directory / f"{entry.key_id}.pem").unlink(missing_ok=True)
    return pruned
