"""The bare Temporal baseline: start, one no-op activity, complete (`make bench` compares to it)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows import names


@workflow.defn(name=names.WF_BENCH_BARE)
class BareWorkflow:
    @workflow.run
    async def run(self, payload: str) -> str:
        result: str = await workflow.execute_activity(
            names.ACT_BENCH_NOOP,
            payload,
            start_to_close_timeout=timedelta(seconds=10),
            result_type=str,
        )
        return result
