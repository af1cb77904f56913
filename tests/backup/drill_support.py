"""A stand-in projection kind for the DR drill: a tiny workflow exposing a view query, its table
and a version-guarded upsert (the real negotiation/transfer kinds follow the same shape)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import asyncpg

    from connector.services.reconcile import Projection

WF_DRILL_ITEM = "test.drill_item"
QRY_DRILL_VIEW = "drill.view"
SIG_DRILL_ADVANCE = "drill.advance"
SIG_DRILL_FINISH = "drill.finish"

DRILL_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS drill_items (
    item_id    text PRIMARY KEY,
    state      text NOT NULL,
    version    bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)"""

_UPSERT = """
INSERT INTO drill_items (item_id, state, version) VALUES ($1, $2, $3)
ON CONFLICT (item_id) DO UPDATE SET state = EXCLUDED.state, version = EXCLUDED.version,
    updated_at = now()
WHERE drill_items.version < EXCLUDED.version
RETURNING 1
"""


@workflow.defn(name=WF_DRILL_ITEM)
class DrillItemWorkflow:
    @workflow.init
    def __init__(self, item_id: str) -> None:
        self._view: dict[str, Any] = {"item_id": item_id, "state": "CREATED", "version": 1}
        self._done = False

    @workflow.run
    async def run(self, item_id: str) -> dict[str, Any]:
        await workflow.wait_condition(lambda: self._done)
        return self._view

    @workflow.signal(name=SIG_DRILL_ADVANCE)
    def advance(self, state: str) -> None:
        self._view = {**self._view, "state": state, "version": self._view["version"] + 1}

    @workflow.signal(name=SIG_DRILL_FINISH)
    def finish(self) -> None:
        self._done = True

    @workflow.query(name=QRY_DRILL_VIEW)
    def view(self) -> dict[str, Any]:
        return self._view


async def upsert_drill_item(conn: asyncpg.Connection, view: Mapping[str, Any]) -> bool:
    row = await conn.fetchval(_UPSERT, view["item_id"], view["state"], view["version"])
    return row is not None


def drill_kind(prefix: str, upsert: Any = upsert_drill_item) -> Projection:
    return Projection(
        name="drill",
        table="drill_items",
        workflow_type=WF_DRILL_ITEM,
        workflow_id_prefix=prefix,
        query=QRY_DRILL_VIEW,
        upsert_fn=upsert,
    )
