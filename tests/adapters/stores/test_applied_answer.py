"""An applied DSP message is answered with its state even when the projection cannot be
written (Postgres gone): never a 5xx after a side effect (DEVELOPERS.md, issue 14). Real
Postgres: the pool is closed under the gateway as a database outage leaves it."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from api.negotiation.gateway import NEGOTIATION
from api.process_gateway import ProcessGateway
from connector.core.negotiation.aggregate import new_negotiation
from connector.core.negotiation.record import NegotiationRecord
from connector.core.negotiation.states import Role
from connector.stores import negotiations
from connector.stores.migrate import migrate

pytestmark = pytest.mark.integration


def _record() -> NegotiationRecord:
    n = new_negotiation(
        role=Role.CONSUMER,
        initiator=Role.CONSUMER,
        own_pid="urn:uuid:applied-1",
        participant_id="did:web:consumer",
        counterparty_id="did:web:provider",
        at=datetime.now(UTC),
    )
    return NegotiationRecord(negotiation=n)


async def test_the_answer_survives_a_database_outage_after_the_message_was_applied(
    pg_url: str,
) -> None:
    pool = await asyncpg.create_pool(pg_url, min_size=0, max_size=1)
    async with pool.acquire() as conn:
        await migrate(conn)
    gateway: ProcessGateway[NegotiationRecord] = ProcessGateway(
        None,  # type: ignore[arg-type]  # no Temporal call on this path
        pool,
        "unused",
        NEGOTIATION,
    )
    record = _record()
    assert await gateway._applied_answer(record) == record  # written while Postgres is up
    assert await negotiations.get(pool, record.own_pid) == record
    await pool.close()
    assert await gateway._applied_answer(record) == record  # answered, not 5xx


async def test_a_bug_in_the_projection_is_not_hidden(pg_url: str) -> None:
    pool = await asyncpg.create_pool(pg_url, min_size=0, max_size=1)
    try:
        # No migrations: the table is missing, which is a bug, not an outage.
        gateway: ProcessGateway[NegotiationRecord] = ProcessGateway(
            None,  # type: ignore[arg-type]
            pool,
            "unused",
            NEGOTIATION,
        )
        with pytest.raises(asyncpg.UndefinedTableError):
            await gateway._applied_answer(_record())
    finally:
        await pool.close()
