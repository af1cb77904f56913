"""Transfer process projections and timelines (Postgres, plain SQL), plus the consumer's
refreshed EDRs.

Every projection write is a version-guarded upsert: retries, duplicates and out-of-order writers
(the API answering a message and the workflow projecting the same version) can never move a row
back.

Secrets of a DataAddress (the EDR's `authorization` and `refreshToken`, a push destination's
credentials) are stored sealed (`connector.encryption.values`, AES-256-GCM with the data key
ring, bound to the transfer id): in the projected record and in `transfer_edrs`. `get_edr` opens
them; records read with `get`/`list_page` keep them sealed (views redact them anyway; the EDR
route opens them with `open_address`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg

from connector.core.transfer.record import TransferRecord
from connector.encryption.keyring import DataKeys
from connector.encryption.values import open_address, seal_address
from connector.stores import process_pages
from connector.stores.process_pages import Page, ProcessQuery

TABLE: Final = "transfers"
EVENTS_TABLE: Final = "transfer_events"
EDRS_TABLE: Final = "transfer_edrs"

_UPSERT: Final = """
INSERT INTO transfers (
    own_pid, role, state, consumer_pid, provider_pid, agreement_id, format, counterparty_id,
    counterparty_address, dsp_version, asset_id, push, code, reason, record, version,
    created_at, updated_at, awaiting)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb, $15::jsonb, $16,
        $17, $18, $19)
ON CONFLICT (own_pid) DO UPDATE SET awaiting = EXCLUDED.awaiting,
    state = EXCLUDED.state, consumer_pid = EXCLUDED.consumer_pid,
    provider_pid = EXCLUDED.provider_pid, agreement_id = EXCLUDED.agreement_id,
    counterparty_address = EXCLUDED.counterparty_address, asset_id = EXCLUDED.asset_id,
    code = EXCLUDED.code, reason = EXCLUDED.reason, record = EXCLUDED.record,
    version = EXCLUDED.version, updated_at = EXCLUDED.updated_at
WHERE transfers.version < EXCLUDED.version
RETURNING (xmax = 0) AS inserted
"""

_EVENT: Final = """
INSERT INTO transfer_events (own_pid, version, at, direction, kind, from_state, to_state, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (own_pid, version) DO NOTHING
"""


@dataclass(frozen=True)
class UpsertResult:
    changed: bool
    inserted: bool


def sealed_json(record: TransferRecord, keys: DataKeys) -> str:
    """The record as stored: its DataAddress with secret property values sealed."""
    if record.transfer.data_address is None:
        return record.model_dump_json()
    data = record.model_dump(mode="json")
    data["transfer"]["data_address"] = seal_address(
        keys, data["transfer"]["data_address"], record.own_pid
    )
    return json.dumps(data)


async def upsert_view(
    conn: asyncpg.Connection, record: TransferRecord, keys: DataKeys
) -> UpsertResult:
    """Project one transfer; returns whether the row changed (a newer version arrived)."""
    t = record.transfer
    async with conn.transaction():
        row = await conn.fetchrow(
            _UPSERT,
            record.own_pid,
            t.role.value,
            t.state.value,
            t.consumer_pid,
            t.provider_pid,
            t.agreement_id,
            t.format,
            t.counterparty_id,
            t.counterparty_address,
            record.dsp_version,
            record.asset_id,
            record.push,
            t.code,
            json.dumps(list(t.reason)) if t.reason else None,
            sealed_json(record, keys),
            t.version,
            t.created_at,
            t.updated_at,
            record.awaiting.kind if record.awaiting is not None else None,
        )
        if row is None:
            return UpsertResult(changed=False, inserted=False)
        start = t.version - len(t.timeline) + 1
        await conn.executemany(
            _EVENT,
            [
                (
                    record.own_pid,
                    start + i,
                    e.at,
                    e.direction.value,
                    e.kind.value,
                    e.from_state.value,
                    e.to_state.value,
                    e.detail,
                )
                for i, e in enumerate(t.timeline)
            ],
        )
        return UpsertResult(changed=True, inserted=bool(row["inserted"]))


async def get(conn: asyncpg.Connection | asyncpg.Pool, own_pid: str) -> TransferRecord | None:
    raw = await conn.fetchval("SELECT record FROM transfers WHERE own_pid = $1", own_pid)
    return TransferRecord.model_validate_json(raw) if raw is not None else None


async def list_page(
    pool: asyncpg.Pool, query: ProcessQuery, *, agreement_id: str | None = None
) -> Page[TransferRecord]:
    """Newest first, keyset-paginated, with the total of the filtered set; `awaiting_operator`
    True lists the transfers held for a person (decision 0013)."""
    return await process_pages.list_page(
        pool,
        TABLE,
        [*query.filters("(awaiting IS NOT NULL)"), ("agreement_id", agreement_id)],
        TransferRecord.model_validate_json,
        cursor=query.cursor,
        limit=query.limit,
    )


async def put_edr(
    conn: asyncpg.Connection | asyncpg.Pool,
    own_pid: str,
    data_address: dict[str, Any],
    expires_at: datetime | None,
    keys: DataKeys,
) -> None:
    """Keep a refreshed EDR, its token and refresh token sealed."""
    await conn.execute(
        """INSERT INTO transfer_edrs (own_pid, data_address, expires_at, updated_at)
           VALUES ($1, $2::jsonb, $3, now())
           ON CONFLICT (own_pid) DO UPDATE SET data_address = EXCLUDED.data_address,
               expires_at = EXCLUDED.expires_at, updated_at = now()""",
        own_pid,
        json.dumps(seal_address(keys, data_address, own_pid)),
        expires_at,
    )


async def get_edr(
    conn: asyncpg.Connection | asyncpg.Pool, own_pid: str, keys: DataKeys
) -> tuple[dict[str, Any], datetime | None, datetime] | None:
    """(data address with its secrets opened, expires at, stored at) of the latest refreshed
    EDR, if any."""
    row = await conn.fetchrow(
        "SELECT data_address, expires_at, updated_at FROM transfer_edrs WHERE own_pid = $1",
        own_pid,
    )
    if row is None:
        return None
    address = open_address(keys, json.loads(row["data_address"]), own_pid)
    return address, row["expires_at"], row["updated_at"]


async def delete_edr(conn: asyncpg.Connection | asyncpg.Pool, own_pid: str) -> None:
    await conn.execute("DELETE FROM transfer_edrs WHERE own_pid = $1", own_pid)
