"""Whole-node backup at the edge (decision 0017): what a node holds besides its database.

An edge node runs the Temporal dev server under its data dir; its SQLite file is the write model
of every process in flight (decision 0001). A node backup therefore adds three parts to the
database archive, each stored encrypted with its own SHA-256 in the manifest:

    temporal.db   a consistent snapshot of the dev server's SQLite database, taken while it runs
                  (SQLite's online backup API inside a read transaction opened *before* the
                  Postgres snapshot: Postgres can only be a few milliseconds ahead, never behind,
                  and re-running an activity whose row already exists is what retries do anyway)
    secrets       the data key ring, the identity keys and the management key, encrypted with the
                  node's recovery key (never with a key inside the bundle itself)
    config.json   the effective configuration, secrets redacted

The recovery key (`backup.recovery_key_file`) is a key ring of its own that never rotates: a copy
kept outside the node once opens every later node backup, whatever the data keys became since.
Restoring a node (`connector restore --node`) opens the secrets with it first, and with the data
key ring found inside decrypts the database archive and the Temporal snapshot.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from connector.core.backup import BackupManifest
from connector.encryption.aead import DecryptionError, StreamEncryptor, decrypt_stream
from connector.encryption.keyring import DataKeys, KeyFileError, create_key_file
from connector.settings import Settings

__all__ = [
    "CONFIG_PART",
    "SECRETS_PART",
    "TEMPORAL_PART",
    "NodeSources",
    "SecretFile",
    "SqliteSnapshot",
    "check_secrets",
    "check_temporal_db",
    "encrypt_bytes",
    "node_sources",
    "open_secrets",
    "recovery_keys",
    "seal_secrets",
    "temporal_counts",
]

TEMPORAL_PART: Final = "temporal.db"
SECRETS_PART: Final = "secrets"
CONFIG_PART: Final = "config.json"
SECRETS_FORMAT: Final = "connector-node-secrets/1"

#: Names of the bundled files; restore puts each back where the settings expect it.
DATA_KEYS: Final = "data-keys.json"
MANAGEMENT_KEY: Final = "management-api-key"
IDENTITY_PREFIX: Final = "identity/"

_COUNTS_SQL: Final = "SELECT status, count(*) FROM executions_visibility GROUP BY status"


@dataclass(frozen=True)
class SecretFile:
    name: str
    path: Path


@dataclass(frozen=True)
class NodeSources:
    """Where a node's non-database state lives, from its settings."""

    temporal_db: Path
    data_ring: Path
    identity_dir: Path | None
    management_key: Path
    config: dict[str, Any]
    recovery_key_file: Path

    def secret_files(self) -> list[SecretFile]:
        """Listed at backup time: an identity key rotated since start is included."""
        files = [SecretFile(DATA_KEYS, self.data_ring)]
        if self.identity_dir is not None and self.identity_dir.is_dir():
            files += [
                SecretFile(IDENTITY_PREFIX + p.name, p)
                for p in sorted(self.identity_dir.iterdir())
                if p.is_file() and p.resolve() != self.data_ring and not p.name.startswith(".")
            ]
        files.append(SecretFile(MANAGEMENT_KEY, self.management_key))
        return files


def node_sources(settings: Settings) -> NodeSources | None:
    """The node's parts when a node backup is wanted (`backup.node`; unset: the dev server's
    SQLite file exists under the data dir), else None."""
    from connector.runtime.embedded import temporal_db_path

    data_dir = Path(settings.data_dir).resolve()
    db = temporal_db_path(data_dir)
    wanted = settings.backup.node if settings.backup.node is not None else db.exists()
    if not wanted:
        return None
    # Operator-managed PEM files (identity.key_path) stay the operator's: only the managed
    # identity ring under the data dir is the node's own.
    return NodeSources(
        temporal_db=db,
        data_ring=settings.encryption.resolved_key_file(data_dir),
        identity_dir=None if settings.identity.key_path is not None else data_dir / "keys",
        management_key=data_dir / MANAGEMENT_KEY,
        config=settings.redacted(),
        recovery_key_file=settings.backup.resolved_recovery_key_file(data_dir),
    )


def recovery_keys(path: Path, *, create: bool) -> DataKeys:
    """The recovery key ring at `path` (created 0600 when `create` and missing).

    Raises:
        KeyFileError: missing (without `create`), unreadable, malformed or open to others.
    """
    if create:
        create_key_file(path)
    return DataKeys.open(path, create=False)


# --- Temporal's SQLite database ------------------------------------------------------------


class SqliteSnapshot:
    """A read transaction on the live database, opened first and copied later: the copy holds
    exactly what was committed when `pin()` returned, whatever the server writes meanwhile."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None

    def pin(self) -> None:
        # Read-only URI: the backup never writes the server's file (in WAL mode a reader does
        # not block the server's single writer either).
        conn = sqlite3.connect(
            f"file:{self._path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
        )
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        self._conn = conn

    def copy_to(self, target: Path) -> dict[str, int]:
        """Write the pinned snapshot to `target` (0600, one self-contained file); returns the
        counts verification compares."""
        if self._conn is None:
            raise RuntimeError("pin() first")
        target.unlink(missing_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        dest = sqlite3.connect(target)
        try:
            self._conn.backup(dest)
            # The copy carries the server's WAL mode in its header; a rollback journal keeps it
            # one file (the server switches back to WAL when it opens it).
            dest.execute("PRAGMA journal_mode=DELETE")
            counts = temporal_counts(dest)
        finally:
            dest.close()
        return counts

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("COMMIT")
            self._conn.close()
            self._conn = None


def temporal_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Workflow executions by status in a Temporal SQLite database (1 = running)."""
    counts = {"executions": 0, "running": 0, "closed": 0}
    for status, n in conn.execute(_COUNTS_SQL):
        counts["executions"] += n
        counts["running" if status == 1 else "closed"] += n
    return counts


def check_temporal_db(path: Path) -> tuple[list[str], dict[str, int]]:
    """`PRAGMA integrity_check` and the execution counts of a restored copy."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        counts = temporal_counts(conn)
    finally:
        conn.close()
    problems = [] if result == ["ok"] else [f"temporal.db integrity_check: {'; '.join(result)}"]
    return problems, counts


# --- secrets -------------------------------------------------------------------------------


def _read_private(path: Path) -> bytes:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path} has mode {mode:o}; chmod 600 {path}")
    return path.read_bytes()


def seal_secrets(sources: NodeSources, recovery: DataKeys) -> tuple[bytes, str, str, int]:
    """The encrypted secrets bundle, its recovery key id, the plain bundle's SHA-256 and how
    many files it holds."""
    files: dict[str, str] = {}
    for item in sources.secret_files():
        if item.path.exists():
            files[item.name] = base64.b64encode(_read_private(item.path)).decode("ascii")
    plain = json.dumps({"format": SECRETS_FORMAT, "files": files}, sort_keys=True).encode()
    sealer = StreamEncryptor(recovery, "node-secrets")
    sealed = sealer.header + sealer.update(plain) + sealer.finalize()
    return sealed, sealer.kid, hashlib.sha256(plain).hexdigest(), len(files)


def open_secrets(recovery: DataKeys, sealed: Path) -> dict[str, bytes]:
    """The bundled files by name. Raises DecryptionError (wrong recovery key, corruption)."""
    with sealed.open("rb") as fh:
        plain = b"".join(decrypt_stream(recovery, "node-secrets", fh))
    try:
        data = json.loads(plain)
        if data.get("format") != SECRETS_FORMAT:
            raise ValueError(f"unknown format {data.get('format')!r}")
        return {name: base64.b64decode(value) for name, value in data["files"].items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise DecryptionError(f"the secrets bundle is malformed: {exc}") from None


def check_secrets(files: dict[str, bytes], manifest: BackupManifest, scratch: Path) -> list[str]:
    """The bundle holds a data key ring that decrypts every other part of this backup."""
    ring = files.get(DATA_KEYS)
    if ring is None:
        return [f"{SECRETS_PART}: no data key ring inside"]
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(ring)
    try:
        keys = DataKeys.open(scratch, create=False)
    except KeyFileError as exc:
        return [f"{SECRETS_PART}: the data key ring inside does not load ({exc})"]
    needed = {p.encryption_key_id for n, p in manifest.parts.items() if n != SECRETS_PART}
    if manifest.encryption_key_id:
        needed.add(manifest.encryption_key_id)
    held = {k.kid for k in keys.kids()}
    missing = sorted(needed - held)
    if missing:
        return [f"{SECRETS_PART}: the data key ring inside lacks {', '.join(missing)}"]
    want = manifest.parts[SECRETS_PART].details.get("files")
    if want is not None and want != len(files):
        return [f"{SECRETS_PART}: {len(files)} files inside, the manifest says {want}"]
    return []


def encrypt_bytes(keys: DataKeys, plain: bytes) -> tuple[bytes, str]:
    sealer = StreamEncryptor(keys, "backup")
    return sealer.header + sealer.update(plain) + sealer.finalize(), sealer.kid
