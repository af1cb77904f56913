"""Held verifiable credentials and our requests for them (DCP holder, decision 0023).

`held_credentials.payload` is the VC JWT sealed with the data key ring (purpose `credential`,
bound to the credential id), so neither the table nor a backup of it holds a credential in
clear; only `matching` opens payloads, to put them in a presentation. Listing never reads them.

`credential_requests` is the projection of the `dcp.credential_request` workflows: upserts are
version-guarded, so retried or reordered projections never move a request backwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import asyncpg

from connector.core.errors import NotFoundError
from connector.encryption.aead import DecryptionError, is_sealed, open_value, seal_value
from connector.encryption.keyring import DataKeys
from connector.runtime.logging import get_logger

__all__ = [
    "REQUESTS_TABLE",
    "TABLE",
    "CredentialRequestRow",
    "HeldCredential",
    "expiring_before",
    "get_request",
    "held_for_request",
    "list_held",
    "list_requests",
    "matching",
    "put",
    "upsert_request",
]

log = get_logger(__name__)

TABLE: Final = "held_credentials"
REQUESTS_TABLE: Final = "credential_requests"
_COLUMNS: Final = "id, types, issuer_did, issued_at, expires_at, status, holder_pid, created_at"


def _context(credential_id: str) -> bytes:
    return f"credential|{credential_id}".encode()


@dataclass(frozen=True, slots=True)
class HeldCredential:
    """A stored credential without its payload."""

    credential_id: str
    types: tuple[str, ...]
    issuer_did: str
    issued_at: datetime
    expires_at: datetime | None
    status: str = "ISSUED"
    holder_pid: str | None = None
    created_at: datetime | None = None

    @classmethod
    def of(cls, row: asyncpg.Record) -> HeldCredential:
        return cls(
            credential_id=row["id"],
            types=tuple(row["types"]),
            issuer_did=row["issuer_did"],
            issued_at=row["issued_at"],
            expires_at=row["expires_at"],
            status=row["status"],
            holder_pid=row["holder_pid"],
            created_at=row["created_at"],
        )


async def put(
    db: asyncpg.Pool | asyncpg.Connection, keys: DataKeys, credential: HeldCredential, jwt: str
) -> bool:
    """Store `credential` with its VC JWT sealed; True when new (the same id again is a no-op)."""
    sealed = seal_value(keys, "credential", jwt, _context(credential.credential_id))
    inserted = await db.fetchval(
        f"""INSERT INTO {TABLE}
                (id, types, issuer_did, issued_at, expires_at, status, holder_pid, payload)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (id) DO NOTHING
            RETURNING true""",  # noqa: S608
        credential.credential_id,
        list(credential.types),
        credential.issuer_did,
        credential.issued_at,
        credential.expires_at,
        credential.status,
        credential.holder_pid,
        sealed,
    )
    return bool(inserted)


async def list_held(db: asyncpg.Pool | asyncpg.Connection) -> list[HeldCredential]:
    """Every held credential, newest first, without payloads."""
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM {TABLE} ORDER BY created_at DESC, id")  # noqa: S608
    return [HeldCredential.of(r) for r in rows]


async def matching(
    db: asyncpg.Pool | asyncpg.Connection, keys: DataKeys, types: Sequence[str], now: datetime
) -> list[str]:
    """The VC JWTs of unexpired, not revoked credentials having one of `types`, oldest first.

    A payload that does not open (its data key was removed, or the row was tampered with) is
    left out and logged: a presentation without it is better than none.
    """
    if not types:
        return []
    rows = await db.fetch(
        f"""SELECT id, payload FROM {TABLE}
            WHERE types && $1::text[] AND status = 'ISSUED'
              AND (expires_at IS NULL OR expires_at > $2)
            ORDER BY issued_at, id""",  # noqa: S608
        list(types),
        now,
    )
    out: list[str] = []
    for row in rows:
        if not is_sealed(row["payload"]):
            log.error("held credential stored unsealed; left out", credential_id=row["id"])
            continue
        try:
            out.append(open_value(keys, "credential", row["payload"], _context(row["id"])))
        except DecryptionError as exc:
            log.error("held credential does not open", credential_id=row["id"], error=str(exc))
    return out


async def expiring_before(
    db: asyncpg.Pool | asyncpg.Connection, before: datetime
) -> list[HeldCredential]:
    """Credentials that expire before `before` and no running or successful request renews yet."""
    rows = await db.fetch(
        f"""SELECT {_COLUMNS} FROM {TABLE} AS c
            WHERE c.expires_at IS NOT NULL AND c.expires_at < $1 AND c.status = 'ISSUED'
              AND NOT EXISTS (
                  SELECT 1 FROM {REQUESTS_TABLE} AS r
                  WHERE r.renewal_of = c.id AND r.status IN ('REQUESTED', 'ISSUED'))
            ORDER BY c.expires_at, c.id""",  # noqa: S608
        before,
    )
    return [HeldCredential.of(r) for r in rows]


@dataclass(frozen=True, slots=True)
class CredentialRequestRow:
    """One credential request as projected (status REQUESTED, ISSUED, REJECTED or EXPIRED)."""

    holder_pid: str
    issuer_did: str
    credential_type: str
    status: str
    deadline_at: datetime
    version: int
    created_at: datetime
    updated_at: datetime
    issuer_pid: str | None = None
    renewal_of: str | None = None
    credential_ids: tuple[str, ...] = field(default_factory=tuple)
    error: str | None = None

    @classmethod
    def of(cls, row: asyncpg.Record) -> CredentialRequestRow:
        return cls(
            holder_pid=row["holder_pid"],
            issuer_did=row["issuer_did"],
            credential_type=row["credential_type"],
            status=row["status"],
            deadline_at=row["deadline_at"],
            version=row["version"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            issuer_pid=row["issuer_pid"],
            renewal_of=row["renewal_of"],
            credential_ids=tuple(row["credential_ids"]),
            error=row["error"],
        )


async def upsert_request(db: asyncpg.Pool | asyncpg.Connection, r: CredentialRequestRow) -> bool:
    """Project a request; True when the row changed (a newer version arrived)."""
    changed = await db.fetchval(
        f"""INSERT INTO {REQUESTS_TABLE} AS t
                (holder_pid, issuer_did, credential_type, issuer_pid, status, renewal_of,
                 credential_ids, error, deadline_at, version, created_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ON CONFLICT (holder_pid) DO UPDATE SET
                issuer_pid = EXCLUDED.issuer_pid, status = EXCLUDED.status,
                credential_ids = EXCLUDED.credential_ids, error = EXCLUDED.error,
                version = EXCLUDED.version, updated_at = EXCLUDED.updated_at
            WHERE t.version < EXCLUDED.version
            RETURNING true""",  # noqa: S608
        r.holder_pid,
        r.issuer_did,
        r.credential_type,
        r.issuer_pid,
        r.status,
        r.renewal_of,
        list(r.credential_ids),
        r.error,
        r.deadline_at,
        r.version,
        r.created_at,
        r.updated_at,
    )
    return bool(changed)


async def list_requests(
    db: asyncpg.Pool | asyncpg.Connection, *, renewals_only: bool = False, limit: int = 200
) -> list[CredentialRequestRow]:
    """Requests, newest first (renewals carry `renewal_of`)."""
    where = "WHERE renewal_of IS NOT NULL" if renewals_only else ""
    rows = await db.fetch(
        f"SELECT * FROM {REQUESTS_TABLE} {where} ORDER BY created_at DESC, holder_pid LIMIT $1",  # noqa: S608
        limit,
    )
    return [CredentialRequestRow.of(r) for r in rows]


async def get_request(
    db: asyncpg.Pool | asyncpg.Connection, holder_pid: str
) -> CredentialRequestRow:
    """Raises: NotFoundError: no such request."""
    row = await db.fetchrow(
        f"SELECT * FROM {REQUESTS_TABLE} WHERE holder_pid = $1",  # noqa: S608
        holder_pid,
    )
    if row is None:
        raise NotFoundError(f"no credential request {holder_pid}")
    return CredentialRequestRow.of(row)


async def held_for_request(db: asyncpg.Pool | asyncpg.Connection, holder_pid: str) -> list[str]:
    """Ids of the credentials an issuer wrote back for our request `holder_pid`."""
    rows = await db.fetch(
        f"SELECT id FROM {TABLE} WHERE holder_pid = $1 ORDER BY id",  # noqa: S608
        holder_pid,
    )
    return [r["id"] for r in rows]
