"""DSP version discovery (DSP 2025-1 Common, Exposure of Versions), both ways: the versions this
connector serves (`GET /.well-known/dspace-version`) and the DSP base of a counterparty's
(`dsp_base`), read from its version document when the operator gave its root."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from connector.core.dsp import DspVersion
from connector.core.errors import BadRequestError, UnavailableError
from connector.core.identity.dcp import PROFILE_VC11_SL2021_JWT
from connector.http.outbound import GuardedHttp
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


async def dsp_base(http: GuardedHttp, address: str) -> tuple[str, DspVersion]:
    """(DSP base URL, version) of a counterparty: as given, or picked from its version
    document."""
    trimmed = address.rstrip("/")
    for version in (DspVersion.V2025_1, DspVersion.V0_8):
        if trimmed.endswith(version.path_segment):
            return trimmed, version
    try:
        resp = await http.request("GET", f"{trimmed}/.well-known/dspace-version")
        versions = resp.json().get("protocolVersions", []) if resp.status_code == 200 else []
    except (ValueError, OSError, TimeoutError) as exc:
        raise UnavailableError(f"cannot read the counterparty's DSP versions: {exc}") from None
    offered = {v.get("version"): v.get("path") for v in versions if isinstance(v, dict)}
    for version in (DspVersion.V2025_1, DspVersion.V0_8):
        path = offered.get(version.value)
        if isinstance(path, str):
            return trimmed + "/" + path.strip("/"), version
    raise BadRequestError("the counterparty serves neither DSP 2025-1 nor 0.8")
