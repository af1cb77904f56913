"""DSP versions we speak and the version document (DSP 2025-1 "Exposure of Versions", dsp.md §3).

`VersionResponse` is plain JSON (no `@context`, no `@type`), served unversioned and unauthenticated
at `/.well-known/dspace-version` (common/protocol-version-schema.json)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from connector.core.dsp.common import DSP_CONTEXT_0_8, DSP_CONTEXT_2025_1, DspModel

__all__ = ["Auth", "DspVersion", "Version", "VersionResponse"]


class DspVersion(StrEnum):
    V2025_1 = "2025-1"
    V0_8 = "0.8"

    @property
    def path_segment(self) -> str:
        """Path of this version's DSP base below the API root, e.g. `/dsp/2025-1`."""
        return f"/dsp/{self.value}"

    @property
    def context_url(self) -> str:
        """The version's main JSON-LD context URL."""
        return DSP_CONTEXT_2025_1 if self is DspVersion.V2025_1 else DSP_CONTEXT_0_8


class Auth(DspModel):
    """The authorization overlay a version entry uses, e.g. `{protocol: DCP, version: 1.0}`."""

    protocol: str
    version: str
    profile: list[str] | None = None


class Version(DspModel):
    version: str
    # Absolute URL path appended to the root the `.well-known` document hangs under.
    path: str
    binding: Literal["HTTPS"] = "HTTPS"
    identifier_type: str | None = None
    service_id: str | None = None
    auth: Auth | None = None


class VersionResponse(DspModel):
    protocol_versions: list[Version] = Field(min_length=1)
