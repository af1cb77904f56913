"""The delivery journal on real Postgres, marked through the real outbound client (decision 0010):
a request is marked after its connection is made and before its first byte; a refused
connection leaves no mark; a mark that cannot be written keeps the request unsent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from connector.http.outbound import GuardedHttp, OutboundConfig
from connector.runtime.embedded import free_port
from connector.stores import delivery_journal
from connector.stores.migrate import migrate

pytestmark = pytest.mark.integration

KEY = "negotiation:consumer:urn:uuid:c-1/3/verification"


class Peer:
    """A loopback HTTP peer that records how many request bytes reached it."""

    def __init__(self) -> None:
        self.received = 0
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(65536)
        self.received += len(data)
        if data:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        writer.close()


@pytest.fixture
async def pool(pg_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=2)
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    state = Peer()
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    yield state
    server.close()
    await server.wait_closed()


@pytest.fixture
async def http() -> AsyncIterator[GuardedHttp]:
    client = GuardedHttp(OutboundConfig(allow_http=True, allow_cidrs=("127.0.0.0/8",)))
    yield client
    await client.aclose()


async def test_a_written_request_is_marked_before_its_first_byte(
    pool: asyncpg.Pool, peer: Peer, http: GuardedHttp
) -> None:
    seen_at_mark: list[int] = []

    async def mark() -> None:
        seen_at_mark.append(peer.received)
        await delivery_journal.mark(pool, KEY)

    resp = await http.request(
        "POST", f"http://127.0.0.1:{peer.port}/dsp", json={"a": 1}, before_write=mark
    )
    assert resp.status_code == 200
    assert seen_at_mark == [0]  # nothing had reached the peer when the mark was written
    assert peer.received > 0
    assert await delivery_journal.marked(pool, KEY)
    await delivery_journal.mark(pool, KEY)  # idempotent
    assert not await delivery_journal.marked(pool, KEY.replace("/3/", "/4/"))


async def test_a_refused_connection_leaves_no_mark(pool: asyncpg.Pool, http: GuardedHttp) -> None:
    async def mark() -> None:
        await delivery_journal.mark(pool, KEY)

    with pytest.raises(httpx.ConnectError):
        await http.request(
            "POST", f"http://127.0.0.1:{free_port()}/dsp", json={}, before_write=mark
        )
    assert not await delivery_journal.marked(pool, KEY)


async def test_a_mark_that_fails_keeps_the_request_unsent(peer: Peer, http: GuardedHttp) -> None:
    class Down(Exception):
        pass

    async def mark() -> None:
        raise Down("journal unavailable")

    with pytest.raises(Down):
        await http.request("POST", f"http://127.0.0.1:{peer.port}/dsp", json={}, before_write=mark)
    await asyncio.sleep(0.1)
    assert peer.received == 0


async def test_an_ended_process_forgets_its_marks(pool: asyncpg.Pool) -> None:
    other = "negotiation:provider:urn:uuid:p-1/2/agreement"
    await delivery_journal.mark(pool, KEY)
    await delivery_journal.mark(pool, other)
    await delivery_journal.forget(pool, "negotiation:consumer:urn:uuid:c-1")
    assert not await delivery_journal.marked(pool, KEY)
    assert await delivery_journal.marked(pool, other)
