"""The development issuer's state: one SQLite file in its data dir (decision 0024).

Tables: `participants` (who may receive credentials), `credentials` (every credential issued,
with its status-list index, its JWT and when it was revoked) and `requests` (Credential Issuance
Protocol requests and their status). Every operation opens its own connection and runs in one
transaction, so the CLI and a running `serve` can share the file (WAL journal) and a crash never
leaves half a write. Status indexes are drawn at random (herd privacy: neighbouring indexes say
nothing about when or to whom a credential was issued) and are unique per list.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from connector.core.errors import ConflictError, NotFoundError
from connector.core.issuer.messages import RequestStatus
from connector.core.issuer.statuslist import MIN_BITS

__all__ = ["CredentialRecord", "IssuerStore", "RequestRecord", "StatusListFullError"]

DB_FILE: Final = "issuer.db"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS participants (
    did TEXT PRIMARY KEY,
    added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS credentials (
    credential_id TEXT PRIMARY KEY,
    holder_did TEXT NOT NULL,
    credential_type TEXT NOT NULL,
    status_list_id TEXT NOT NULL,
    status_index INTEGER NOT NULL,
    issued_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT,
    request_id TEXT,
    payload TEXT NOT NULL,
    UNIQUE (status_list_id, status_index)
);
CREATE TABLE IF NOT EXISTS requests (
    issuer_pid TEXT PRIMARY KEY,
    holder_pid TEXT NOT NULL,
    holder_did TEXT NOT NULL,
    credential_types TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_holder ON requests (holder_did, holder_pid);
"""


class StatusListFullError(ConflictError):
    """Every index of the status list is taken."""


@dataclass(frozen=True, slots=True)
class CredentialRecord:
    credential_id: str
    holder_did: str
    credential_type: str
    status_list_id: str
    status_index: int
    issued_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    request_id: str | None
    payload: str


@dataclass(frozen=True, slots=True)
class RequestRecord:
    issuer_pid: str
    holder_pid: str
    holder_did: str
    credential_types: tuple[str, ...]
    status: RequestStatus
    reason: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime


def _credential(row: sqlite3.Row) -> CredentialRecord:
    revoked = row["revoked_at"]
    return CredentialRecord(
        credential_id=row["credential_id"],
        holder_did=row["holder_did"],
        credential_type=row["credential_type"],
        status_list_id=row["status_list_id"],
        status_index=row["status_index"],
        issued_at=datetime.fromisoformat(row["issued_at"]),
        expires_at=datetime.fromisoformat(row["expires_at"]),
        revoked_at=datetime.fromisoformat(revoked) if revoked else None,
        request_id=row["request_id"],
        payload=row["payload"],
    )


def _request(row: sqlite3.Row) -> RequestRecord:
    return RequestRecord(
        issuer_pid=row["issuer_pid"],
        holder_pid=row["holder_pid"],
        holder_did=row["holder_did"],
        credential_types=tuple(json.loads(row["credential_types"])),
        status=RequestStatus(row["status"]),
        reason=row["reason"],
        attempts=row["attempts"],
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
    )


class IssuerStore:
    """The issuer's SQLite file (`<data dir>/issuer.db`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        conn = sqlite3.connect(path, timeout=10)
        try:
            conn.executescript(_SCHEMA)  # one transaction of its own; IF NOT EXISTS throughout
        finally:
            conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    # participants

    def add_participant(self, did: str, now: datetime) -> bool:
        """Register `did`; False if it was registered already."""
        with self._tx() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO participants (did, added_at) VALUES (?, ?)",
                (did, now.isoformat()),
            )
            return cursor.rowcount == 1

    def remove_participant(self, did: str) -> bool:
        """Forget `did` (its credentials stay valid until revoked); False if it was unknown."""
        with self._tx() as conn:
            return conn.execute("DELETE FROM participants WHERE did = ?", (did,)).rowcount == 1

    def participants(self) -> list[tuple[str, datetime]]:
        with self._tx() as conn:
            rows = conn.execute("SELECT did, added_at FROM participants ORDER BY added_at, did")
            return [(r["did"], datetime.fromisoformat(r["added_at"])) for r in rows]

    def is_participant(self, did: str) -> bool:
        return self.participant_since(did) is not None

    def participant_since(self, did: str) -> datetime | None:
        """When `did` was registered, or None if it is not a participant."""
        with self._tx() as conn:
            row = conn.execute("SELECT added_at FROM participants WHERE did = ?", (did,)).fetchone()
            return datetime.fromisoformat(row["added_at"]) if row is not None else None

    # credentials

    def add_credential(
        self,
        *,
        credential_id: str,
        holder_did: str,
        credential_type: str,
        status_list_id: str,
        issued_at: datetime,
        expires_at: datetime,
        request_id: str | None,
        sign: Callable[[int], str],
    ) -> CredentialRecord:
        """Draw a free status index, sign the credential with it (`sign(index)` -> JWT) and
        record both in one transaction.

        Raises:
            StatusListFullError: the list has no free index left.
        """
        with self._tx() as conn:
            used = conn.execute(
                "SELECT count(*) FROM credentials WHERE status_list_id = ?", (status_list_id,)
            ).fetchone()[0]
            if used >= MIN_BITS:
                raise StatusListFullError(f"status list {status_list_id} is full")
            while True:
                index = secrets.randbelow(MIN_BITS)
                taken = conn.execute(
                    "SELECT 1 FROM credentials WHERE status_list_id = ? AND status_index = ?",
                    (status_list_id, index),
                ).fetchone()
                if taken is None:
                    break
            payload = sign(index)
            conn.execute(
                "INSERT INTO credentials (credential_id, holder_did, credential_type,"
                " status_list_id, status_index, issued_at, expires_at, request_id, payload)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    credential_id,
                    holder_did,
                    credential_type,
                    status_list_id,
                    index,
                    issued_at.isoformat(),
                    expires_at.isoformat(),
                    request_id,
                    payload,
                ),
            )
            row = conn.execute(
                "SELECT * FROM credentials WHERE credential_id = ?", (credential_id,)
            ).fetchone()
            return _credential(row)

    def revoke(self, credential_id: str, now: datetime) -> CredentialRecord:
        """Mark the credential revoked (a second revocation keeps the first time).

        Raises:
            NotFoundError: no credential has this id.
        """
        with self._tx() as conn:
            conn.execute(
                "UPDATE credentials SET revoked_at = ? WHERE credential_id = ?"
                " AND revoked_at IS NULL",
                (now.isoformat(), credential_id),
            )
            row = conn.execute(
                "SELECT * FROM credentials WHERE credential_id = ?", (credential_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no credential {credential_id}")
            return _credential(row)

    def credentials(self, *, request_id: str | None = None) -> list[CredentialRecord]:
        with self._tx() as conn:
            if request_id is None:
                rows = conn.execute("SELECT * FROM credentials ORDER BY issued_at, credential_id")
            else:
                rows = conn.execute(
                    "SELECT * FROM credentials WHERE request_id = ? ORDER BY credential_id",
                    (request_id,),
                )
            return [_credential(r) for r in rows]

    def revoked_indexes(self, status_list_id: str) -> list[int]:
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT status_index FROM credentials WHERE status_list_id = ?"
                " AND revoked_at IS NOT NULL",
                (status_list_id,),
            )
            return [int(r[0]) for r in rows]

    # Credential Issuance Protocol requests

    def add_request(
        self,
        *,
        issuer_pid: str,
        holder_pid: str,
        holder_did: str,
        credential_types: tuple[str, ...],
        status: RequestStatus,
        reason: str | None,
        now: datetime,
    ) -> RequestRecord:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO requests (issuer_pid, holder_pid, holder_did, credential_types,"
                " status, reason, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    issuer_pid,
                    holder_pid,
                    holder_did,
                    json.dumps(list(credential_types)),
                    status.value,
                    reason,
                    now.isoformat(),
                    now.isoformat(),
                ),
            )
        return self.request(issuer_pid)

    def request(self, issuer_pid: str) -> RequestRecord:
        """Raises NotFoundError for an unknown id."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT * FROM requests WHERE issuer_pid = ?", (issuer_pid,)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"no request {issuer_pid}")
        return _request(row)

    def find_request(self, pid: str, holder_did: str) -> RequestRecord | None:
        """The holder's request with issuer pid or (its newest with) holder pid `pid`."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT * FROM requests WHERE holder_did = ? AND (issuer_pid = ? OR holder_pid = ?)"
                " ORDER BY issuer_pid = ? DESC, created_at DESC LIMIT 1",
                (holder_did, pid, pid, pid),
            ).fetchone()
        return _request(row) if row is not None else None

    def requests(self, *, status: RequestStatus | None = None) -> list[RequestRecord]:
        with self._tx() as conn:
            if status is None:
                rows = conn.execute("SELECT * FROM requests ORDER BY created_at, issuer_pid")
            else:
                rows = conn.execute(
                    "SELECT * FROM requests WHERE status = ? ORDER BY created_at, issuer_pid",
                    (status.value,),
                )
            return [_request(r) for r in rows]

    def update_request(
        self,
        issuer_pid: str,
        *,
        now: datetime,
        status: RequestStatus | None = None,
        reason: str | None = None,
        attempted: bool = False,
    ) -> None:
        with self._tx() as conn:
            conn.execute(
                "UPDATE requests SET status = coalesce(?, status), reason = ?,"
                " attempts = attempts + ?, updated_at = ? WHERE issuer_pid = ?",
                (
                    status.value if status else None,
                    reason,
                    1 if attempted else 0,
                    now.isoformat(),
                    issuer_pid,
                ),
            )
