"""The bare Temporal baseline `make bench` compares the connector to: start, one no-op activity
(or one local activity, as the negotiation hot path sends and projects), complete.

Bench-only: the benchmarks register these on a task queue of their own; no production worker
runs them (decision 0028). The timeout is the benchmark's, not a production preset of
workflows/options.py: a no-op never comes near it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from temporalio import activity, workflow

WF_BARE: Final = "bench.bare"
WF_BARE_LOCAL: Final = "bench.bare_local"
ACT_NOOP: Final = "bench.noop"

NOOP_TIMEOUT: Final = timedelta(seconds=10)


@activity.defn(name=ACT_NOOP)
async def noop(payload: str) -> str:
    return payload


@workflow.defn(name=WF_BARE)
class BareWorkflow:
    @workflow.run
    async def run(self, payload: str) -> str:
        result: str = await workflow.execute_activity(
            ACT_NOOP, payload, start_to_close_timeout=NOOP_TIMEOUT, result_type=str
        )
        return result


@workflow.defn(name=WF_BARE_LOCAL)
class BareLocalWorkflow:
    @workflow.run
    async def run(self, payload: str) -> str:
        result: str = await workflow.execute_local_activity(
            ACT_NOOP, payload, start_to_close_timeout=NOOP_TIMEOUT, result_type=str
        )
        return result
