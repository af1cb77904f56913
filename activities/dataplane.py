"""Data Plane Signaling from the workers: start, resume, stop and watch a data flow.

The data plane answering 4xx is final (non-retryable `dataplane_refused`); connection errors and
5xx are retried by Temporal (a restarting data plane). `await_flow` polls the flow's status and
heartbeats until the data plane reports it COMPLETED, FAILED or TERMINATED; it tolerates the
data plane being away (the status says FAILED once a push stops making progress).
"""

from __future__ import annotations

import asyncio
from typing import Final

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from dataplane.client import SignalingClient, SignalingError
from dataplane.signaling import DataFlowStartMessage
from workflows import names
from workflows.contracts import FlowResult, FlowStart, FlowStatus, FlowStop

POLL_SECONDS: Final = 0.25
_DONE: Final = ("COMPLETED", "FAILED", "TERMINATED")


def _refused(exc: SignalingError) -> ApplicationError:
    return ApplicationError(str(exc), type=names.ERR_DATAPLANE_REFUSED, non_retryable=True)


class DataPlaneActivities:
    def __init__(self, client: SignalingClient, poll_seconds: float = POLL_SECONDS) -> None:
        self._client = client
        self._poll = poll_seconds

    @activity.defn(name=names.ACT_DATAPLANE_START)
    async def start_flow(self, flow: FlowStart) -> FlowResult:
        """Idempotent per process id: a retry returns the same flow (a pull gets a new token)."""
        msg = DataFlowStartMessage(
            process_id=flow.process_id,
            agreement_id=flow.agreement_id,
            dataset_id=flow.asset_id,
            participant_id=flow.consumer_id,
            transfer_type=flow.format,
            flow_type="PUSH" if flow.push else "PULL",
            finite=flow.finite,
            source_data_address=dict(flow.source),
            destination_data_address=dict(flow.destination) if flow.destination else None,
        )
        try:
            resp = await self._client.start(msg)
        except SignalingError as exc:
            raise _refused(exc) from None
        return FlowResult(state=resp.state, data_address=resp.data_address, attempt=resp.attempt)

    @activity.defn(name=names.ACT_DATAPLANE_RESUME)
    async def resume_flow(self, process_id: str) -> FlowResult:
        try:
            resp = await self._client.resume(process_id)
        except SignalingError as exc:
            raise _refused(exc) from None
        return FlowResult(state=resp.state, data_address=resp.data_address, attempt=resp.attempt)

    @activity.defn(name=names.ACT_DATAPLANE_STOP)
    async def stop_flow(self, stop: FlowStop) -> None:
        """Suspend, terminate or complete: revokes the flow's tokens at once. Idempotent."""
        try:
            await self._client.stop(stop.process_id, stop.how, stop.reason)
        except SignalingError as exc:
            if exc.status == 404:
                return  # never started: nothing to stop
            raise _refused(exc) from None

    @activity.defn(name=names.ACT_DATAPLANE_AWAIT)
    async def await_flow(self, process_id: str) -> FlowStatus:
        """Poll until the flow is done; heartbeats carry the bytes moved so far."""
        last_error: str | None = None
        while True:
            try:
                status = await self._client.status(process_id)
            except SignalingError as exc:
                raise _refused(exc) from None
            except (httpx.HTTPError, OSError) as exc:
                last_error = f"data plane unreachable: {type(exc).__name__}"
                activity.heartbeat({"error": last_error})
            else:
                activity.heartbeat({"state": status.state, "bytes": status.bytes_moved})
                if status.state in _DONE:
                    return FlowStatus(
                        state=status.state,
                        bytes_moved=status.bytes_moved,
                        attempt=status.attempt,
                        error=status.error,
                    )
            await asyncio.sleep(self._poll)
