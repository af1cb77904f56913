"""The workers' side of Data Plane Signaling: a small HTTP client of the data plane.

The data plane URL is our own configuration (not a counterparty's), so this is a plain client;
errors are left to the caller (activities translate them for Temporal).
"""

from __future__ import annotations

from typing import Any

import httpx

from dataplane.signaling import (
    PREFIX,
    DataFlowResponseMessage,
    DataFlowStartMessage,
    DataFlowStatusMessage,
    DataFlowStopMessage,
)

__all__ = ["SignalingClient", "SignalingError"]


class SignalingError(Exception):
    """The data plane answered 4xx: retrying will not help."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"data plane answered {status}: {detail}")
        self.status = status
        self.detail = detail


class SignalingClient:
    def __init__(self, base_url: str, secret: str, *, timeout: float = 10.0) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {secret}"},
            timeout=timeout,
            trust_env=False,
        )

    async def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        resp = await self._client.request(method, PREFIX + path, json=body)
        if resp.status_code >= 500:
            resp.raise_for_status()
        if resp.status_code >= 400:
            raise SignalingError(resp.status_code, resp.text[:500])
        if resp.status_code >= 300:
            raise SignalingError(resp.status_code, "unexpected redirect")
        data: dict[str, Any] = resp.json()
        return data

    async def start(self, msg: DataFlowStartMessage) -> DataFlowResponseMessage:
        data = await self._call("POST", "", msg.model_dump(mode="json", by_alias=True))
        return DataFlowResponseMessage.model_validate(data)

    async def resume(self, flow_id: str) -> DataFlowResponseMessage:
        data = await self._call("POST", f"/{flow_id}/resume", {})
        return DataFlowResponseMessage.model_validate(data)

    async def stop(self, flow_id: str, how: str, reason: str | None = None) -> None:
        """`how` is suspend, terminate or complete."""
        body = DataFlowStopMessage(reason=reason).model_dump(mode="json", by_alias=True)
        await self._call("POST", f"/{flow_id}/{how}", body)

    async def status(self, flow_id: str) -> DataFlowStatusMessage:
        data = await self._call("GET", f"/{flow_id}")
        return DataFlowStatusMessage.model_validate(data)

    async def aclose(self) -> None:
        await self._client.aclose()
