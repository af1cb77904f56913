"""A transfer request under an agreement whose FINALIZED is still on its way (our worker died
after sending it, say) is not refused as unknown: the store says "pending", the DSP edge answers
503 and the consumer's retry finds it (issue 14, the chaos suite's "agreement is unknown")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from connector.core.negotiation import machine
from connector.core.negotiation.actions import SendAgreement
from connector.core.negotiation.aggregate import new_negotiation
from connector.core.negotiation.messages import MessageKind
from connector.core.negotiation.record import NegotiationRecord
from connector.core.negotiation.states import Role
from connector.stores import negotiations
from connector.stores.migrate import migrate

pytestmark = pytest.mark.integration

AGREEMENT = {
    "@id": "urn:uuid:agr-pending",
    "@type": "Agreement",
    "target": "urn:uuid:ds-1",
    "assigner": "did:web:provider",
    "assignee": "did:web:consumer",
}


@pytest.fixture
async def pool(pg_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=2)
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


def verified_provider() -> NegotiationRecord:
    at = datetime.now(UTC)
    n = new_negotiation(
        role=Role.PROVIDER,
        initiator=Role.CONSUMER,
        own_pid="urn:uuid:p-pending",
        participant_id="did:web:provider",
        counterparty_id="did:web:consumer",
        at=at,
    )
    n = machine.apply(
        n,
        MessageKind.CONTRACT_REQUEST,
        Role.CONSUMER,
        at=at,
        consumer_pid="urn:uuid:c-pending",
        counterparty_address="http://consumer.test/dsp/2025-1",
        offer={"@id": "urn:uuid:offer-1", "@type": "Offer", "target": "urn:uuid:ds-1"},
    )
    n = machine.apply_outbound(n, SendAgreement(agreement=AGREEMENT), at=at)
    n = machine.apply(n, MessageKind.VERIFICATION, Role.CONSUMER, at=at)
    return NegotiationRecord(negotiation=n)


async def test_a_verified_agreement_is_pending_not_unknown(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await negotiations.upsert_view(conn, verified_provider())
    with pytest.raises(negotiations.AgreementPendingError):
        await negotiations.settled_agreement(
            pool, "urn:uuid:agr-pending", counterparty_id="did:web:consumer", wait_seconds=0.2
        )
    # Another participant cannot tell it from an unknown one.
    assert (
        await negotiations.settled_agreement(
            pool, "urn:uuid:agr-pending", counterparty_id="did:web:other", wait_seconds=0.2
        )
        is None
    )
    assert await negotiations.settled_agreement(pool, "urn:uuid:nope", wait_seconds=0.2) is None
