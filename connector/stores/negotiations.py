"""Negotiation projections, timelines and agreements (Postgres, plain SQL).

Every write is a version-guarded upsert: retries, duplicates and out-of-order writers (the API
answering a message and the workflow projecting the same version) can never move a row back.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from connector.core.negotiation.decide import id_of
from connector.core.negotiation.record import NegotiationRecord
from connector.core.negotiation.states import NegotiationState
from connector.stores import process_pages
from connector.stores.process_pages import Page, ProcessQuery

TABLE: Final = "negotiations"
EVENTS_TABLE: Final = "negotiation_events"
AGREEMENTS_TABLE: Final = "agreements"

# One statement (one round trip, atomic): the version-guarded row upsert, then, only when it
# changed the row, the timeline entries not stored yet (RETURNING names those: each is added once,
# by whichever writer is first, and the metrics count them) and, once FINALIZED, the agreement.
_UPSERT: Final = """
WITH projected AS (
    INSERT INTO negotiations (
        own_pid, role, state, consumer_pid, provider_pid, counterparty_id, counterparty_address,
        dsp_version, offer_id, asset_id, agreement_id, awaiting_decision, termination_code,
        termination_reason, deadline_at, record, version, created_at, updated_at,
        awaiting, awaiting_since, hold_deadline, decisions)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb, $15,
            $16::jsonb, $17, $18, $19, $32, $33, $34, $35)
    ON CONFLICT (own_pid) DO UPDATE SET
        state = EXCLUDED.state, consumer_pid = EXCLUDED.consumer_pid,
        provider_pid = EXCLUDED.provider_pid,
        counterparty_address = EXCLUDED.counterparty_address,
        offer_id = EXCLUDED.offer_id, asset_id = EXCLUDED.asset_id,
        agreement_id = EXCLUDED.agreement_id, awaiting_decision = EXCLUDED.awaiting_decision,
        termination_code = EXCLUDED.termination_code,
        termination_reason = EXCLUDED.termination_reason, deadline_at = EXCLUDED.deadline_at,
        record = EXCLUDED.record, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,
        awaiting = EXCLUDED.awaiting, awaiting_since = EXCLUDED.awaiting_since,
        hold_deadline = EXCLUDED.hold_deadline, decisions = EXCLUDED.decisions
    -- An operator's decision (decision 0012) changes what is awaited, not the version.
    WHERE negotiations.version < EXCLUDED.version
       OR (negotiations.version = EXCLUDED.version
           AND (negotiations.decisions < EXCLUDED.decisions
                OR (negotiations.decisions = EXCLUDED.decisions
                    AND negotiations.awaiting_decision
                        IS DISTINCT FROM EXCLUDED.awaiting_decision)))
    RETURNING (xmax = 0) AS inserted
), added AS (
    INSERT INTO negotiation_events (
        own_pid, version, at, direction, kind, from_state, to_state, detail)
    SELECT $1, e.* FROM unnest($20::bigint[], $21::timestamptz[], $22::text[], $23::text[],
                               $24::text[], $25::text[], $26::text[]) AS e
    WHERE EXISTS (SELECT 1 FROM projected)
    ON CONFLICT (own_pid, version) DO NOTHING
    RETURNING version, to_state
), agreed AS (
    INSERT INTO agreements (agreement_id, own_pid, role, provider_id, consumer_id, target,
                            offer_id, asset_id, agreement, signed_at)
    SELECT $11, $1, $2, $27, $28, $29, $9, $10, $30::jsonb, $19
    WHERE $31::boolean AND EXISTS (SELECT 1 FROM projected)
    ON CONFLICT (agreement_id) DO NOTHING
)
SELECT (SELECT inserted FROM projected) AS inserted,
       (SELECT coalesce(array_agg(to_state ORDER BY version), '{}') FROM added) AS entered
"""


@dataclass(frozen=True)
class UpsertResult:
    changed: bool
    inserted: bool
    # States entered by the timeline entries this write added, oldest first.
    entered: tuple[NegotiationState, ...] = ()


async def upsert_view(conn: asyncpg.Connection, record: NegotiationRecord) -> UpsertResult:
    """Project one negotiation; returns whether the row changed (a newer version arrived)."""
    n = record.negotiation
    agreement_id = id_of((n.agreement or {}).get("@id"))
    finalized = bool(n.state is NegotiationState.FINALIZED and n.agreement and agreement_id)
    start = n.version - len(n.timeline) + 1
    timeline = n.timeline
    row = await conn.fetchrow(
        _UPSERT,
        record.own_pid,
        n.role.value,
        n.state.value,
        n.consumer_pid,
        n.provider_pid,
        n.counterparty_id,
        n.counterparty_address,
        record.dsp_version,
        record.offer_id,
        record.asset_id,
        agreement_id,
        record.awaiting_decision,
        n.termination_code,
        json.dumps(list(n.termination_reason)) if n.termination_reason else None,
        record.deadline_at,
        record.model_dump_json(),
        n.version,
        n.created_at,
        n.updated_at,
        [start + i for i in range(len(timeline))],
        [e.at for e in timeline],
        [e.direction.value for e in timeline],
        [e.kind.value for e in timeline],
        [e.from_state.value for e in timeline],
        [e.to_state.value for e in timeline],
        [e.detail for e in timeline],
        n.provider_id if finalized else None,
        n.consumer_id if finalized else None,
        (id_of((n.agreement or {}).get("target")) or "") if finalized else None,
        json.dumps(n.agreement) if finalized else None,
        finalized,
        record.awaiting.kind.value if record.awaiting else None,
        record.awaiting.since if record.awaiting else None,
        record.awaiting.deadline if record.awaiting else None,
        len(record.decisions),
    )
    if row is None or row["inserted"] is None:
        return UpsertResult(changed=False, inserted=False)
    entered = tuple(NegotiationState(state) for state in row["entered"])
    return UpsertResult(changed=True, inserted=bool(row["inserted"]), entered=entered)


async def get(conn: asyncpg.Connection | asyncpg.Pool, own_pid: str) -> NegotiationRecord | None:
    raw = await conn.fetchval("SELECT record FROM negotiations WHERE own_pid = $1", own_pid)
    return NegotiationRecord.model_validate_json(raw) if raw is not None else None


async def role_of(conn: asyncpg.Connection | asyncpg.Pool, own_pid: str) -> str | None:
    role: str | None = await conn.fetchval(
        "SELECT role FROM negotiations WHERE own_pid = $1", own_pid
    )
    return role


async def find_reusable(
    conn: asyncpg.Connection | asyncpg.Pool, counterparty_id: str, offer_id: str
) -> NegotiationRecord | None:
    """A FINALIZED or still running consumer negotiation for the same counterparty and offer."""
    raw = await conn.fetchval(
        """SELECT record FROM negotiations
           WHERE role = 'consumer' AND counterparty_id = $1 AND offer_id = $2
             AND state <> 'TERMINATED'
           ORDER BY (state = 'FINALIZED') DESC, updated_at DESC
           LIMIT 1""",
        counterparty_id,
        offer_id,
    )
    return NegotiationRecord.model_validate_json(raw) if raw is not None else None


async def count_terminated(
    conn: asyncpg.Connection | asyncpg.Pool, counterparty_id: str, offer_id: str
) -> int:
    count: int = await conn.fetchval(
        """SELECT count(*) FROM negotiations WHERE role = 'consumer' AND counterparty_id = $1
           AND offer_id = $2 AND state = 'TERMINATED'""",
        counterparty_id,
        offer_id,
    )
    return count


async def list_page(
    pool: asyncpg.Pool, query: ProcessQuery, *, asset_id: str | None = None
) -> Page[NegotiationRecord]:
    """Newest first, keyset-paginated, with the total of the filtered set."""
    return await process_pages.list_page(
        pool,
        TABLE,
        [*query.filters("awaiting_decision"), ("asset_id", asset_id)],
        NegotiationRecord.model_validate_json,
        cursor=query.cursor,
        limit=query.limit,
    )


async def list_agreements(
    pool: asyncpg.Pool, *, role: str | None = None, limit: int = 100, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    args: list[Any] = []
    where = "TRUE"
    if role is not None:
        args.append(role)
        where = "role = $1"
    total: int = await pool.fetchval(f"SELECT count(*) FROM agreements WHERE {where}", *args)  # noqa: S608
    rows = await pool.fetch(
        f"""SELECT agreement_id, own_pid, role, provider_id, consumer_id, target, offer_id,
                   asset_id, agreement, signed_at
            FROM agreements WHERE {where} ORDER BY signed_at DESC, agreement_id
            LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}""",  # noqa: S608
        *args,
        limit,
        offset,
    )
    return [_agreement_row(r) for r in rows], total


async def get_agreement(
    conn: asyncpg.Connection | asyncpg.Pool, agreement_id: str
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """SELECT agreement_id, own_pid, role, provider_id, consumer_id, target, offer_id,
                  asset_id, agreement, signed_at FROM agreements WHERE agreement_id = $1""",
        agreement_id,
    )
    return _agreement_row(row) if row is not None else None


async def count_agreements(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM agreements")
    return count


def _agreement_row(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "agreementId": row["agreement_id"],
        "negotiationId": row["own_pid"],
        "role": row["role"],
        "providerId": row["provider_id"],
        "consumerId": row["consumer_id"],
        "target": row["target"],
        "offerId": row["offer_id"],
        "assetId": row["asset_id"],
        "agreement": json.loads(row["agreement"]),
        "signedAt": row["signed_at"].isoformat(),
    }


class AgreementPendingError(Exception):
    """The agreement's negotiation is still being finalized on our side."""


async def settled_agreement(
    pool: asyncpg.Pool,
    agreement_id: str,
    *,
    counterparty_id: str | None = None,
    wait_seconds: float = 8.0,
) -> dict[str, Any] | None:
    """The agreement, waiting briefly while our FINALIZED is in flight.

    The consumer learns FINALIZED when it acknowledges our event, a moment before our workflow
    records it; a transfer request sent right then must still find the agreement.

    Raises:
        AgreementPendingError: our side is still AGREED or VERIFIED after `wait_seconds`.
    """
    deadline = asyncio.get_running_loop().time() + wait_seconds
    rechecked = False
    while True:
        found = await get_agreement(pool, agreement_id)
        if found is not None:
            return found
        state = await pool.fetchval(
            "SELECT state FROM negotiations WHERE agreement_id = $1 AND role = 'provider'"
            " AND ($2::text IS NULL OR counterparty_id = $2)",
            agreement_id,
            counterparty_id,
        )
        # AGREED too: our FINALIZED may reach the consumer before the projection of the
        # verification that preceded it is written.
        if state == "FINALIZED" and not rechecked:
            rechecked = True
            continue  # finalized between the two reads: the agreement is there now
        if state not in ("AGREED", "VERIFIED"):
            return None
        if asyncio.get_running_loop().time() > deadline:
            # Still on its way (our worker died after sending FINALIZED, say): not unknown.
            raise AgreementPendingError(agreement_id)
        await asyncio.sleep(0.05)
