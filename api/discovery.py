"""`GET /.well-known/dspace-version`: DSP 2025-1 Common, Exposure of Versions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from connector.core.identity.dcp import PROFILE_VC11_SL2021_JWT
from connector.identity.profile import AuthProfile

router = APIRouter(tags=["dsp"])

VERSIONS: list[dict[str, str]] = [
    {"version": "2025-1", "path": "/dsp/2025-1", "binding": "HTTPS"},
    {"version": "0.8", "path": "/dsp/0.8", "binding": "HTTPS"},
]


# The `dcp` profile's overlay, as the DSP 2025-1 example shows it (decision 0022).
DCP_AUTH: dict[str, Any] = {
    "protocol": "DCP",
    "version": "1.0",
    "profile": [PROFILE_VC11_SL2021_JWT],
}


@router.get("/.well-known/dspace-version", summary="DSP versions this connector serves")
async def dspace_version(request: Request) -> dict[str, Any]:
    identity = getattr(request.app.state, "identity", None)
    if identity is not None and identity.profile is AuthProfile.DCP:
        return {"protocolVersions": [{**v, "auth": DCP_AUTH} for v in VERSIONS]}
    return {"protocolVersions": VERSIONS}
