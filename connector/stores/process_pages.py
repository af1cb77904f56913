"""Operators' lists of DSP processes (negotiations, transfers): newest first, keyset-paginated
over `(updated_at, own_pid)`, with the total of the filtered set. Both projection tables have
those columns and a `record` holding the process as JSON."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import asyncpg

from connector.core import cursor as cursor_codec

__all__ = ["Page", "ProcessQuery", "decode_cursor", "encode_cursor", "list_page"]

R = TypeVar("R")


@dataclass(frozen=True)
class Page(Generic[R]):
    items: list[R]
    total: int
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ProcessQuery:
    """What every process list is asked for: the filters both kinds share (None: any) and the
    page (`cursor` from the previous page's `next_cursor`)."""

    state: str | None = None
    role: str | None = None
    counterparty_id: str | None = None
    awaiting_operator: bool | None = None
    cursor: str | None = None
    limit: int = 50

    def filters(self, awaiting_column: str) -> list[tuple[str, Any]]:
        """The shared filters as `list_page` takes them; each table says how it marks a process
        that waits for a person."""
        return [
            ("state", self.state),
            ("role", self.role),
            ("counterparty_id", self.counterparty_id),
            (awaiting_column, self.awaiting_operator),
        ]


def encode_cursor(updated_at: datetime, own_pid: str) -> str:
    return cursor_codec.encode([updated_at.isoformat(), own_pid])


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, pid = cursor_codec.decode(cursor)
        return datetime.fromisoformat(at), str(pid)
    except (ValueError, TypeError) as exc:
        raise ValueError("invalid cursor") from exc


async def list_page(
    pool: asyncpg.Pool,
    table: str,
    filters: Sequence[tuple[str, Any]],
    parse: Callable[[str], R],
    *,
    cursor: str | None,
    limit: int,
) -> Page[R]:
    """`filters`: (column, value) pairs, None values ignored; `table` and columns are ours."""
    where: list[str] = []
    args: list[Any] = []
    for column, value in filters:
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    condition = " AND ".join(where) or "TRUE"
    total: int = await pool.fetchval(f"SELECT count(*) FROM {table} WHERE {condition}", *args)  # noqa: S608
    page_args = list(args)
    if cursor:
        at, pid = decode_cursor(cursor)
        page_args += [at, pid]
        condition += f" AND (updated_at, own_pid) < (${len(page_args) - 1}, ${len(page_args)})"
    page_args.append(limit + 1)
    rows = await pool.fetch(
        f"""SELECT record, updated_at, own_pid FROM {table} WHERE {condition}
            ORDER BY updated_at DESC, own_pid DESC LIMIT ${len(page_args)}""",  # noqa: S608
        *page_args,
    )
    items = [parse(r["record"]) for r in rows[:limit]]
    next_cursor = (
        encode_cursor(rows[limit - 1]["updated_at"], rows[limit - 1]["own_pid"])
        if len(rows) > limit
        else None
    )
    return Page(items=items, total=total, next_cursor=next_cursor)
