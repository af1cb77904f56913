"""The data plane's own tables: data flows and their access/refresh tokens (hashed).

Tokens are stored as sha256(token) only; revocation deletes rows (and the caller deletes the
Redis cache entries the returned hashes name), so a revoked token is unknown at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeAlias

import asyncpg

FLOWS_TABLE: Final = "dataplane_flows"
TOKENS_TABLE: Final = "dataplane_tokens"

_FLOW_COLUMNS: Final = (
    "flow_id, agreement_id, consumer_id, transfer_type, push, finite, source, destination, "
    "state, attempt, bytes_moved, error, heartbeat_at, created_at, updated_at"
)


@dataclass(frozen=True, slots=True)
class Flow:
    flow_id: str
    agreement_id: str
    consumer_id: str
    transfer_type: str
    push: bool
    finite: bool
    source: dict[str, Any]
    destination: dict[str, Any] | None
    state: str
    attempt: int
    bytes_moved: int
    error: str | None
    heartbeat_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Flow:
        return cls(
            flow_id=row["flow_id"],
            agreement_id=row["agreement_id"],
            consumer_id=row["consumer_id"],
            transfer_type=row["transfer_type"],
            push=row["push"],
            finite=row["finite"],
            source=json.loads(row["source"]),
            destination=json.loads(row["destination"]) if row["destination"] else None,
            state=row["state"],
            attempt=row["attempt"],
            bytes_moved=row["bytes_moved"],
            error=row["error"],
            heartbeat_at=row["heartbeat_at"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


@dataclass(frozen=True, slots=True)
class TokenRow:
    flow_id: str
    kind: str
    expires_at: datetime
    flow_state: str


Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool


async def create_flow(
    conn: Conn,
    *,
    flow_id: str,
    agreement_id: str,
    consumer_id: str,
    transfer_type: str,
    push: bool,
    finite: bool,
    source: dict[str, Any],
    destination: dict[str, Any] | None,
) -> tuple[Flow, bool]:
    """Insert a STARTED flow; (flow, created). An existing flow is returned unchanged."""
    row = await conn.fetchrow(
        f"""INSERT INTO {FLOWS_TABLE} (flow_id, agreement_id, consumer_id, transfer_type, push,
                finite, source, destination, state, heartbeat_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, 'STARTED', now())
            ON CONFLICT (flow_id) DO NOTHING RETURNING {_FLOW_COLUMNS}""",  # noqa: S608
        flow_id,
        agreement_id,
        consumer_id,
        transfer_type,
        push,
        finite,
        json.dumps(source),
        json.dumps(destination) if destination is not None else None,
    )
    if row is not None:
        return Flow.from_row(row), True
    existing = await get_flow(conn, flow_id)
    if existing is None:  # pragma: no cover - deleted between the two statements
        raise LookupError(flow_id)
    return existing, False


async def get_flow(conn: Conn, flow_id: str) -> Flow | None:
    row = await conn.fetchrow(
        f"SELECT {_FLOW_COLUMNS} FROM {FLOWS_TABLE} WHERE flow_id = $1",  # noqa: S608
        flow_id,
    )
    return Flow.from_row(row) if row is not None else None


async def set_state(
    conn: Conn, flow_id: str, state: str, *, error: str | None = None, only_from: tuple[str, ...]
) -> bool:
    """Move a flow to `state` if it is in one of `only_from`; whether it moved."""
    result: str = await conn.execute(
        f"""UPDATE {FLOWS_TABLE} SET state = $2, error = $3, updated_at = now()
            WHERE flow_id = $1 AND state = ANY($4::text[])""",  # noqa: S608
        flow_id,
        state,
        error,
        list(only_from),
    )
    return result.endswith(" 1")


async def restart(conn: Conn, flow_id: str) -> Flow | None:
    """A new attempt of a push: STARTED again, counters reset."""
    row = await conn.fetchrow(
        f"""UPDATE {FLOWS_TABLE} SET state = 'STARTED', attempt = attempt + 1, bytes_moved = 0,
                error = NULL, heartbeat_at = now(), updated_at = now()
            WHERE flow_id = $1 RETURNING {_FLOW_COLUMNS}""",  # noqa: S608
        flow_id,
    )
    return Flow.from_row(row) if row is not None else None


async def progress(conn: Conn, flow_id: str, bytes_moved: int) -> None:
    await conn.execute(
        f"""UPDATE {FLOWS_TABLE} SET bytes_moved = $2, heartbeat_at = now()
            WHERE flow_id = $1""",  # noqa: S608
        flow_id,
        bytes_moved,
    )


async def insert_token(
    conn: Conn, token_hash: str, flow_id: str, kind: str, expires_at: datetime
) -> None:
    await conn.execute(
        f"""INSERT INTO {TOKENS_TABLE} (token_hash, flow_id, kind, expires_at)
            VALUES ($1, $2, $3, $4)""",  # noqa: S608
        token_hash,
        flow_id,
        kind,
        expires_at,
    )


async def lookup_token(conn: Conn, token_hash: str) -> TokenRow | None:
    row = await conn.fetchrow(
        f"""SELECT t.flow_id, t.kind, t.expires_at, f.state FROM {TOKENS_TABLE} t
            JOIN {FLOWS_TABLE} f ON f.flow_id = t.flow_id WHERE t.token_hash = $1""",  # noqa: S608
        token_hash,
    )
    if row is None:
        return None
    return TokenRow(row["flow_id"], row["kind"], row["expires_at"], row["state"])


async def shorten(conn: Conn, flow_id: str, kind: str, expires_at: datetime) -> list[str]:
    """Cap the lifetime of a flow's tokens of `kind` (the grace window); their hashes."""
    rows = await conn.fetch(
        f"""UPDATE {TOKENS_TABLE} SET expires_at = LEAST(expires_at, $3)
            WHERE flow_id = $1 AND kind = $2 RETURNING token_hash""",  # noqa: S608
        flow_id,
        kind,
        expires_at,
    )
    return [r["token_hash"] for r in rows]


async def delete_token(conn: Conn, token_hash: str) -> None:
    await conn.execute(f"DELETE FROM {TOKENS_TABLE} WHERE token_hash = $1", token_hash)  # noqa: S608


async def revoke(
    conn: Conn, flow_id: str, kinds: tuple[str, ...] = ("access", "refresh")
) -> list[str]:
    """Delete a flow's tokens; returns their hashes (to evict from the cache)."""
    rows = await conn.fetch(
        f"""DELETE FROM {TOKENS_TABLE} WHERE flow_id = $1 AND kind = ANY($2::text[])
            RETURNING token_hash""",  # noqa: S608
        flow_id,
        list(kinds),
    )
    return [r["token_hash"] for r in rows]
