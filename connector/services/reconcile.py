"""Rebuild projections from Temporal after a restore: the workflow is the write model.

A `ProjectionKind` names a projection table and how to re-derive its rows: list the workflows of
one type through visibility (open AND closed, as long as the namespace retains them), ask each one
for its view with a query, and hand the view to the kind's version-guarded `upsert`. A restored
row older than its workflow is thus moved forward; a row at the same version stays untouched.

Registering a kind (the composition root passes the list to the restore activities):

    Projection(
        name="negotiations", table="negotiations", workflow_type="dsp.negotiation",
        workflow_id_prefix="negotiation:", query="negotiation.view",
        upsert=connector.stores.negotiations.upsert_view,   # (conn, view) -> bool
    )

`upsert(conn, view)` must be version-guarded (`... ON CONFLICT ... DO UPDATE ... WHERE
t.version < EXCLUDED.version`) and return True when it wrote the row, False when the guard kept
the existing one (e.g. `RETURNING 1` → `fetchval(...) is not None`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

import asyncpg
from temporalio.client import Client

DEFAULT_CONCURRENCY: Final = 16
MAX_ERRORS_KEPT: Final = 20

Upsert = Callable[[asyncpg.Connection, Mapping[str, Any]], Awaitable[bool]]


@runtime_checkable
class ProjectionKind(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def table(self) -> str: ...
    @property
    def workflow_type(self) -> str: ...
    @property
    def workflow_id_prefix(self) -> str: ...
    @property
    def query(self) -> str: ...
    @property
    def version_field(self) -> str: ...  # dotted path into the view, e.g. "negotiation.version"
    @property
    def task_queue(self) -> str | None: ...  # only this queue's workflows (None: any queue)

    async def upsert(self, conn: asyncpg.Connection, view: Mapping[str, Any]) -> bool: ...


@dataclass(frozen=True)
class Projection:
    """The plain implementation of `ProjectionKind`: attributes plus an upsert function."""

    name: str
    table: str
    workflow_type: str
    workflow_id_prefix: str
    query: str
    upsert_fn: Upsert
    version_field: str = "version"
    # A namespace may hold other deployments' workflows of the same type (a shared namespace, or
    # the test suite's): a connector's own are those of its task queue.
    task_queue: str | None = None

    async def upsert(self, conn: asyncpg.Connection, view: Mapping[str, Any]) -> bool:
        return await self.upsert_fn(conn, view)


@dataclass
class KindCounts:
    examined: int = 0
    reprojected: int = 0
    unchanged: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        self.failed += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(message)


def _version(view: object, path: str) -> int | None:
    """The view's version at a dotted path (`version`, `negotiation.version`)."""
    node = view
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, int) and not isinstance(node, bool) else None


async def workflow_ids(client: Client, kind: ProjectionKind) -> list[str]:
    """Every workflow id of the kind that visibility knows, open or closed, oldest first."""
    seen: dict[str, None] = {}
    query = f"WorkflowType = '{kind.workflow_type}'"
    if kind.task_queue is not None:
        if "'" in kind.task_queue:
            raise ValueError(f"task queue {kind.task_queue!r} cannot be queried")
        query += f" AND TaskQueue = '{kind.task_queue}'"
    async for execution in client.list_workflows(query):
        if execution.id.startswith(kind.workflow_id_prefix):
            seen.setdefault(execution.id, None)
    return list(reversed(seen))  # visibility lists newest first


async def reconcile_kind(
    client: Client,
    pool: asyncpg.Pool,
    kind: ProjectionKind,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Callable[[str, int, int], None] | None = None,
) -> KindCounts:
    counts = KindCounts()
    ids = await workflow_ids(client, kind)
    limit = asyncio.Semaphore(concurrency)

    async def one(workflow_id: str) -> None:
        async with limit:
            try:
                # Latest run of the id (continue-as-new chains included).
                view = await client.get_workflow_handle(workflow_id).query(kind.query)
            except Exception as exc:  # any query failure is reported, never fatal for others
                counts.error(f"{workflow_id}: query {kind.query} failed: {exc}")
                return
            if _version(view, kind.version_field) is None:
                counts.error(f"{workflow_id}: view has no integer `{kind.version_field}`")
                return
            try:
                async with pool.acquire() as conn:
                    changed = await kind.upsert(conn, view)
            except (asyncpg.PostgresError, OSError) as exc:
                counts.error(f"{workflow_id}: upsert into {kind.table} failed: {exc}")
                return
            if changed:
                counts.reprojected += 1
            else:
                counts.unchanged += 1
            counts.examined += 1
            if progress is not None:
                progress(kind.name, counts.examined + counts.failed, len(ids))

    await asyncio.gather(*(one(i) for i in ids))
    counts.examined += counts.failed
    return counts


async def reconcile(
    client: Client,
    pool: asyncpg.Pool,
    kinds: Sequence[ProjectionKind],
    *,
    only: Sequence[str] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, KindCounts]:
    """Reconcile every kind (or those named in `only`); returns counts per kind name."""
    chosen = [k for k in kinds if only is None or k.name in only]
    return {
        kind.name: await reconcile_kind(
            client, pool, kind, concurrency=concurrency, progress=progress
        )
        for kind in chosen
    }
