"""`GET /management/v1/negotiations` and `/transfers` on real Postgres: filters, keyset pages
followed by `nextCursor`, and the problem+json of a bad cursor or a bad parameter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connector.core.negotiation.aggregate import new_negotiation
from connector.core.negotiation.record import NegotiationRecord
from connector.core.negotiation.states import NegotiationState
from connector.core.negotiation.states import Role as NegotiationRole
from connector.core.transfer.aggregate import Transfer
from connector.core.transfer.hold import Awaiting
from connector.core.transfer.record import TransferRecord
from connector.core.transfer.states import Role as TransferRole
from connector.core.transfer.states import TransferState
from connector.encryption.keyring import DataKeys
from connector.stores import negotiations, transfers
from tests.http.catalog_fixtures import Harness

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
PROBLEM = "application/problem+json"


def negotiation(i: int, role: str, state: str, party: str, asset: str) -> NegotiationRecord:
    at = T0 + timedelta(minutes=i)
    n = new_negotiation(
        role=NegotiationRole(role),
        initiator=NegotiationRole.CONSUMER,
        own_pid=f"urn:uuid:n{i}",
        participant_id="did:web:us",
        counterparty_id=party,
        at=at,
    )
    n = n.model_copy(update={"state": NegotiationState(state), "updated_at": at})
    return NegotiationRecord(negotiation=n, asset_id=asset, awaiting_decision=state == "REQUESTED")


def transfer(i: int, role: str, state: str, party: str, agreement: str) -> TransferRecord:
    at = T0 + timedelta(minutes=i)
    pid = f"urn:uuid:t{i}"
    t = Transfer(
        role=TransferRole(role),
        state=TransferState(state),
        consumer_pid=pid if role == "consumer" else "urn:uuid:theirs",
        provider_pid=pid if role == "provider" else "urn:uuid:theirs",
        agreement_id=agreement,
        format="HttpData-PULL",
        counterparty_id=party,
        version=1,
        created_at=at,
        updated_at=at,
    )
    held = (
        Awaiting(kind="start", state=t.state, since=at, deadline=at + timedelta(hours=1))
        if state == "REQUESTED"
        else None
    )
    return TransferRecord(transfer=t, awaiting=held)


async def seed(h: Harness) -> None:
    keys: DataKeys = h.app.state.data_keys
    pool = h.app.state.resources.pool
    async with pool.acquire() as conn:
        for record in [
            negotiation(1, "provider", "REQUESTED", "did:web:a", "asset-1"),
            negotiation(2, "consumer", "AGREED", "did:web:b", "asset-2"),
            negotiation(3, "provider", "FINALIZED", "did:web:a", "asset-2"),
            negotiation(4, "provider", "REQUESTED", "did:web:b", "asset-1"),
        ]:
            await negotiations.upsert_view(conn, record)
        for t in [
            transfer(1, "provider", "REQUESTED", "did:web:a", "agr-1"),
            transfer(2, "consumer", "STARTED", "did:web:b", "agr-2"),
            transfer(3, "provider", "COMPLETED", "did:web:a", "agr-2"),
            transfer(4, "provider", "REQUESTED", "did:web:b", "agr-1"),
        ]:
            await transfers.upsert_view(conn, t, keys)


async def ids(h: Harness, kind: str, **params: Any) -> list[str]:
    response = await h.get(f"/{kind}", **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["nextCursor"] is None
    assert body["total"] == len(body["items"])
    return [item["id"] for item in body["items"]]


@pytest.mark.parametrize(("kind", "prefix"), [("negotiations", "n"), ("transfers", "t")])
async def test_pages_follow_next_cursor_newest_first(
    harness: Harness, kind: str, prefix: str
) -> None:
    await seed(harness)
    first = (await harness.get(f"/{kind}", limit=3)).json()
    assert [i["id"] for i in first["items"]] == [f"urn:uuid:{prefix}{n}" for n in (4, 3, 2)]
    assert first["total"] == 4
    assert isinstance(first["nextCursor"], str)
    rest = (await harness.get(f"/{kind}", limit=3, cursor=first["nextCursor"])).json()
    assert rest == {"items": rest["items"], "total": 4, "nextCursor": None}
    assert [i["id"] for i in rest["items"]] == [f"urn:uuid:{prefix}1"]


@pytest.mark.parametrize(("kind", "prefix"), [("negotiations", "n"), ("transfers", "t")])
async def test_the_shared_filters(harness: Harness, kind: str, prefix: str) -> None:
    await seed(harness)

    def pids(*ns: int) -> list[str]:
        return [f"urn:uuid:{prefix}{n}" for n in ns]

    assert await ids(harness, kind, role="provider") == pids(4, 3, 1)
    assert await ids(harness, kind, state="requested") == pids(4, 1)
    assert await ids(harness, kind, counterPartyId="did:web:a") == pids(3, 1)
    assert await ids(harness, kind, awaiting="operator") == pids(4, 1)
    assert await ids(harness, kind, role="provider", counterPartyId="did:web:b") == pids(4)


async def test_negotiations_filter_by_asset(harness: Harness) -> None:
    await seed(harness)
    assert await ids(harness, "negotiations", assetId="asset-2") == ["urn:uuid:n3", "urn:uuid:n2"]
    assert await ids(harness, "negotiations", assetId="asset-1", role="consumer") == []


async def test_transfers_filter_by_agreement(harness: Harness) -> None:
    await seed(harness)
    assert await ids(harness, "transfers", agreementId="agr-1") == ["urn:uuid:t4", "urn:uuid:t1"]
    assert await ids(harness, "transfers", agreementId="agr-2", state="STARTED") == ["urn:uuid:t2"]


@pytest.mark.parametrize("kind", ["negotiations", "transfers"])
@pytest.mark.parametrize(
    ("params", "pointer", "message"),
    [
        ({"cursor": "not-a-token!"}, "/cursor", "invalid cursor"),
        ({"cursor": "WzFd"}, "/cursor", "invalid cursor"),  # a token, but not of a list page
        ({"cursor": "eyJhIjoxfQ"}, "/cursor", "invalid cursor"),  # the catalog's kind of token
        ({"limit": 0}, "/limit", "query/limit: Input should be greater than or equal to 1"),
        ({"limit": 201}, "/limit", "query/limit: Input should be less than or equal to 200"),
        ({"role": "broker"}, "/role", "query/role: Input should be 'provider' or 'consumer'"),
        ({"awaiting": "peer"}, "/awaiting", "query/awaiting: Input should be 'operator'"),
    ],
)
async def test_a_bad_cursor_or_parameter_is_a_400_problem_at_it(
    harness: Harness, kind: str, params: dict[str, Any], pointer: str, message: str
) -> None:
    response = await harness.get(f"/{kind}", **params)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json() == {
        "type": "urn:connector:error:bad_request",
        "title": "bad request",
        "status": 400,
        "detail": message,
        "errors": [message],
        "pointer": pointer,
    }
