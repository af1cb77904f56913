"""The data key ring: symmetric keys for the Temporal payload codec, backups and sealed EDRs.

One JSON file (`encryption.key_file`; default `<data dir>/keys/data-keys.json`), mode 0600 (or
0400) in a 0700 directory, refused when group or others can read it:

    {
      "version": 1,
      "current": "dk-3f9c2a1b7e4d6a08",
      "keys": [
        {"kid": "dk-3f9c2a1b7e4d6a08", "created_at": "2025-06-01T10:00:00+00:00",
         "secret": "<base64url of 32 random bytes>"},
        {"kid": "dk-...", "created_at": "...", "secret": "..."}
      ]
    }

`current` encrypts everything new; every listed key still decrypts. Rotation (`rotate`, the CLI's
`connector encryption rotate`) appends a new key and makes it current; old keys stay until the
operator removes them (after the Temporal retention and the oldest backup they protect).

A key is never used directly: each purpose gets its own subkey, HKDF-SHA256 over the key with
`info = "connector/<purpose>/v1"`, so a ciphertext of one purpose never opens as another.

Processes share the file (`connector up` creates it before any child starts; in Kubernetes it is
mounted from a Secret). A running process re-reads it when it meets an unknown key id (another
process rotated) and, for encryption, picks up a new current key within `RELOAD_SECONDS`.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import stat
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "DEFAULT_KEY_FILE",
    "KEY_BYTES",
    "DataKey",
    "DataKeys",
    "InsecureKeyFileError",
    "KeyFileError",
    "Purpose",
    "UnknownKeyError",
    "create_key_file",
    "rotate",
]

logger = logging.getLogger(__name__)

#: Relative to the data dir when `encryption.key_file` is not set.
DEFAULT_KEY_FILE: Final = Path("keys") / "data-keys.json"
KEY_BYTES: Final = 32
FORMAT_VERSION: Final = 1
RELOAD_SECONDS: Final = 10.0
#: An unknown key id re-reads the file at most this often (a flood of foreign ids costs nothing).
MISS_RELOAD_SECONDS: Final = 1.0

Purpose = Literal["temporal-payload", "backup", "edr", "node-secrets", "credential"]


class KeyFileError(Exception):
    """The key file is missing, unreadable or malformed; the message says which and how to fix."""


class InsecureKeyFileError(KeyFileError):
    """The key file (or its managed directory) is accessible to group or others."""


class UnknownKeyError(KeyFileError):
    """A ciphertext names a key id the ring does not hold (removed too early, or foreign)."""


@dataclass(frozen=True, slots=True)
class DataKey:
    kid: str
    created_at: datetime
    secret: bytes

    def derive(self, purpose: Purpose) -> bytes:
        """The 32-byte subkey of `purpose` (HKDF-SHA256)."""
        return HKDF(
            algorithm=hashes.SHA256(),
            length=KEY_BYTES,
            salt=None,
            info=f"connector/{purpose}/v1".encode(),
        ).derive(self.secret)


@dataclass(frozen=True, slots=True)
class _Ring:
    current: str
    keys: dict[str, DataKey]
    mtime_ns: int


def new_key_id() -> str:
    return "dk-" + secrets.token_hex(8)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_mode(path: Path, *, directory: bool) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InsecureKeyFileError(
            f"{path} has mode {mode:o}; the data key ring must not be accessible to group or "
            f"others (chmod {'700' if directory else '600'} {path})"
        )


def _parse(path: Path, raw: bytes, mtime_ns: int) -> _Ring:
    try:
        data = json.loads(raw)
        current = data["current"]
        keys: dict[str, DataKey] = {}
        for item in data["keys"]:
            secret = _unb64(item["secret"])
            if len(secret) != KEY_BYTES:
                raise ValueError(f"key {item['kid']} is not {KEY_BYTES} bytes")
            keys[item["kid"]] = DataKey(
                kid=str(item["kid"]),
                created_at=datetime.fromisoformat(item["created_at"]),
                secret=secret,
            )
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(f"{path} is not a data key ring: {exc}") from None
    if not isinstance(current, str) or current not in keys:
        raise KeyFileError(f"{path}: the current key {current!r} is not in the ring")
    return _Ring(current=current, keys=keys, mtime_ns=mtime_ns)


def _serialise(ring: _Ring) -> bytes:
    return json.dumps(
        {
            "version": FORMAT_VERSION,
            "current": ring.current,
            "keys": [
                {"kid": k.kid, "created_at": k.created_at.isoformat(), "secret": _b64(k.secret)}
                for k in ring.keys.values()
            ],
        },
        indent=2,
    ).encode()


def _write_private(path: Path, data: bytes, *, exclusive: bool) -> None:
    """Write with mode 0600, never visible half-written: temp file + rename (or O_EXCL create)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    target = path if exclusive else path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(target, flags, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if not exclusive:
        os.replace(target, path)


def _read_key_file(path: Path) -> _Ring:
    """Read and check the ring (mode, shape). Raises KeyFileError / InsecureKeyFileError."""
    try:
        _check_mode(path, directory=False)
        info = path.stat()
        raw = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"data key ring {path} does not exist") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read data key ring {path}: {exc.strerror or exc}") from None
    return _parse(path, raw, info.st_mtime_ns)


def create_key_file(path: Path) -> bool:
    """Create a ring with one fresh key unless the file exists; True when created.

    Race-safe: several processes starting at once create exactly one ring (O_EXCL); the losers
    read the winner's."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    kid = new_key_id()
    ring = _Ring(
        current=kid,
        keys={kid: DataKey(kid, datetime.now(UTC), secrets.token_bytes(KEY_BYTES))},
        mtime_ns=0,
    )
    try:
        _write_private(path, _serialise(ring), exclusive=True)
    except FileExistsError:
        return False
    logger.info("generated data key ring", extra={"path": str(path), "kid": kid})
    return True


def rotate(path: Path) -> str:
    """Add a new key and make it current; every older key stays. Returns the new key id."""
    ring = _read_key_file(path)
    kid = new_key_id()
    keys = dict(ring.keys)
    keys[kid] = DataKey(kid, datetime.now(UTC), secrets.token_bytes(KEY_BYTES))
    _write_private(path, _serialise(_Ring(current=kid, keys=keys, mtime_ns=0)), exclusive=False)
    logger.info("rotated data key", extra={"kid": kid, "retired_kid": ring.current})
    return kid


class DataKeys:
    """A loaded ring that follows its file: the current key for encryption, any key to decrypt."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ring = _read_key_file(path)
        self._derived: dict[tuple[str, Purpose], bytes] = {}
        self._checked = time.monotonic()
        self._missed = 0.0
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, *, create: bool) -> DataKeys:
        """Load the ring at `path`; with `create`, generate it first when it does not exist (the
        managed default location). A managed directory must be 0700."""
        if create:
            create_key_file(path)
            _check_mode(path.parent, directory=True)
        return cls(path)

    @property
    def current_kid(self) -> str:
        self._maybe_reload()
        return self._ring.current

    def kids(self) -> list[DataKey]:
        """Every key of the ring (oldest first as listed in the file)."""
        return list(self._ring.keys.values())

    def current(self, purpose: Purpose) -> tuple[str, bytes]:
        """(key id, subkey) of the current key for `purpose`."""
        self._maybe_reload()
        kid = self._ring.current
        return kid, self._subkey(kid, purpose)

    def get(self, kid: str, purpose: Purpose) -> bytes:
        """The subkey of key `kid` for `purpose`; re-reads the file once for an unknown id.

        Raises:
            UnknownKeyError: the ring does not hold `kid`.
        """
        if kid not in self._ring.keys:
            now = time.monotonic()
            if now - self._missed >= MISS_RELOAD_SECONDS:
                self._missed = now
                self._reload()
            if kid not in self._ring.keys:
                raise UnknownKeyError(
                    f"data key {kid!r} is not in {self.path} (removed too early, or the data "
                    "was encrypted by another connector)"
                )
        return self._subkey(kid, purpose)

    def _subkey(self, kid: str, purpose: Purpose) -> bytes:
        cached = self._derived.get((kid, purpose))
        if cached is None:
            cached = self._ring.keys[kid].derive(purpose)
            self._derived[(kid, purpose)] = cached
        return cached

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < RELOAD_SECONDS:
            return
        self._checked = now
        try:
            changed = self.path.stat().st_mtime_ns != self._ring.mtime_ns
        except OSError:
            return  # keep the keys we have; a vanished file is reported on the next restart
        if changed:
            self._reload()

    def _reload(self) -> None:
        with self._lock:
            try:
                ring = _read_key_file(self.path)
            except KeyFileError as exc:
                logger.warning("data key ring not reloaded", extra={"error": str(exc)})
                return
            # Keys only ever accumulate in memory: a key removed from the file still decrypts
            # here until this process restarts (never lose the ability to read what we wrote).
            merged = {**self._ring.keys, **ring.keys}
            self._ring = _Ring(current=ring.current, keys=merged, mtime_ns=ring.mtime_ns)
