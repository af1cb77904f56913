"""Keyset pages of the process projections (connector.stores.process_pages) on real Postgres."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from connector.stores.process_pages import decode_cursor, encode_cursor, list_page

pytestmark = pytest.mark.integration

TABLE = "pages_under_test"
T0 = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
async def pool(pg_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=2)
    assert pool is not None
    await pool.execute(
        f"""CREATE TABLE {TABLE} (own_pid text PRIMARY KEY, state text NOT NULL,
            updated_at timestamptz NOT NULL, record text NOT NULL)"""
    )
    rows = [
        # Two rows share a timestamp: the pid breaks the tie, so none is skipped or repeated.
        (f"p{i:02d}", "ACTIVE" if i % 3 else "DONE", T0 + timedelta(seconds=i // 2))
        for i in range(11)
    ]
    await pool.executemany(
        f"INSERT INTO {TABLE} VALUES ($1, $2, $3, $4)",  # noqa: S608 - our constant
        [(pid, state, at, json.dumps({"pid": pid})) for pid, state, at in rows],
    )
    yield pool
    await pool.close()


def parse(raw: str) -> str:
    return str(json.loads(raw)["pid"])


async def test_pages_walk_every_row_once_newest_first_with_totals(pool: asyncpg.Pool) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        page = await list_page(pool, TABLE, [], parse, cursor=cursor, limit=4)
        assert page.total == 11
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"p{i:02d}" for i in range(10, -1, -1)]


async def test_filters_narrow_the_rows_and_the_total(pool: asyncpg.Pool) -> None:
    page = await list_page(
        pool, TABLE, [("state", "DONE"), ("role", None)], parse, cursor=None, limit=50
    )
    assert page.items == ["p09", "p06", "p03", "p00"]
    assert (page.total, page.next_cursor) == (4, None)


async def test_a_bad_cursor_is_a_value_error(pool: asyncpg.Pool) -> None:
    for bad in ("not-base64!", encode_cursor(T0, "p01")[:-3], "WzFd"):
        with pytest.raises(ValueError, match="invalid cursor"):
            await list_page(pool, TABLE, [], parse, cursor=bad, limit=5)


def test_cursors_round_trip() -> None:
    assert decode_cursor(encode_cursor(T0, "urn:uuid:x")) == (T0, "urn:uuid:x")
