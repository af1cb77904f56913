"""The delivery journal (decision 0010): which outbound DSP messages may have reached their peer.

An attempt marks its message after the connection is made and before the request is written, so
a message without a mark was provably never delivered, whatever happened to the attempts (a
worker killed mid-send included). Keys are `<workflow id>/<version>/<message kind>`, made by the
workflow (`workflows.delivery.journal_key`).
"""

from __future__ import annotations

from typing import Final

import asyncpg

TABLE: Final = "delivery_journal"


def _split(key: str) -> tuple[str, str]:
    workflow_id, sep, message = key.rpartition("/")
    workflow_id, sep2, version = workflow_id.rpartition("/")
    if not (sep and sep2 and workflow_id):
        raise ValueError(f"not a delivery journal key: {key!r}")
    return workflow_id, f"{version}/{message}"


async def mark(db: asyncpg.Pool | asyncpg.Connection, key: str) -> None:
    """Record that `key`'s message may be written to the peer now (idempotent)."""
    workflow_id, message = _split(key)
    await db.execute(
        f"INSERT INTO {TABLE} (workflow_id, message) VALUES ($1, $2) ON CONFLICT DO NOTHING",  # noqa: S608
        workflow_id,
        message,
    )


async def marked(db: asyncpg.Pool | asyncpg.Connection, key: str) -> bool:
    workflow_id, message = _split(key)
    found = await db.fetchval(
        f"SELECT true FROM {TABLE} WHERE workflow_id = $1 AND message = $2",  # noqa: S608
        workflow_id,
        message,
    )
    return bool(found)


async def forget(db: asyncpg.Pool | asyncpg.Connection, workflow_id: str) -> None:
    """Drop an ended process's marks: no message of it is in flight any more."""
    await db.execute(f"DELETE FROM {TABLE} WHERE workflow_id = $1", workflow_id)  # noqa: S608
