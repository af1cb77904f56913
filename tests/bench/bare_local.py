"""The bare baseline with a local activity (as the negotiation hot path sends and projects)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows import names


@workflow.defn(name="bench.bare_local")
class BareLocalWorkflow:
    @workflow.run
    async def run(self, payload: str) -> str:
        result: str = await workflow.execute_local_activity(
            names.ACT_BENCH_NOOP,
            payload,
            start_to_close_timeout=timedelta(seconds=10),
            result_type=str,
        )
        return result
