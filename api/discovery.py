"""`GET /.well-known/dspace-version`: DSP 2025-1 Common, Exposure of Versions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

router = APIRouter(tags=["dsp"])

VERSIONS: list[dict[str, str]] = [
    {"version": "2025-1", "path": "/dsp/2025-1", "binding": "HTTPS"},
    {"version": "0.8", "path": "/dsp/0.8", "binding": "HTTPS"},
]


@router.get("/.well-known/dspace-version", summary="DSP versions this connector serves")
async def dspace_version() -> dict[str, Any]:
    return {"protocolVersions": VERSIONS}
