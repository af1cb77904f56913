"""A no-op activity: the unit of the bare Temporal baseline."""

from __future__ import annotations

from temporalio import activity

from workflows import names


@activity.defn(name=names.ACT_BENCH_NOOP)
async def noop(payload: str) -> str:
    return payload
