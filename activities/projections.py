"""Projection writes: version-guarded upserts of workflow state into Postgres, plus metrics."""

from __future__ import annotations

import asyncpg
from temporalio import activity

from connector.core.negotiation.record import NegotiationRecord
from connector.core.transfer.record import TransferRecord
from connector.core.transfer.states import TransferState
from connector.encryption.keyring import DataKeys
from connector.runtime.metrics import Metrics
from connector.stores import delivery_journal, negotiations, transfers
from workflows import names


class ProjectionActivities:
    def __init__(self, pool: asyncpg.Pool, keys: DataKeys, metrics: Metrics | None = None) -> None:
        self._pool = pool
        self._keys = keys  # transfer records are stored with their secrets sealed
        self._metrics = metrics

    @activity.defn(name=names.ACT_PROJECT_NEGOTIATION)
    async def upsert_negotiation(self, record: NegotiationRecord) -> bool:
        """Upsert one negotiation's projection; idempotent by (own pid, version)."""
        async with self._pool.acquire() as conn:
            result = await negotiations.upsert_view(conn, record)
            if record.negotiation.is_terminal and (ended := activity.info().workflow_id):
                await delivery_journal.forget(conn, ended)
        if result.changed and self._metrics is not None:
            # Counted once per version: a retried or duplicate write changes nothing.
            self._metrics.negotiation_projected(record.negotiation, result.entered)
        return result.changed

    @activity.defn(name=names.ACT_PROJECT_TRANSFER)
    async def upsert_transfer(self, record: TransferRecord) -> bool:
        """Upsert one transfer's projection; idempotent by (own pid, version)."""
        async with self._pool.acquire() as conn:
            result = await transfers.upsert_view(conn, record, self._keys)
            if record.transfer.is_terminal and (ended := activity.info().workflow_id):
                await delivery_journal.forget(conn, ended)
        t = record.transfer
        if result.changed and self._metrics is not None and t.state is not TransferState.INITIAL:
            # Counted once per version: a retried or duplicate write changes nothing.
            self._metrics.transfers.labels(t.state.value).inc()
            if t.state is TransferState.COMPLETED:
                seconds = (t.updated_at - t.created_at).total_seconds()
                self._metrics.transfer_duration.observe(seconds)
        return result.changed
