"""What a transfer process's projection holds: the aggregate plus what the edge and the data
plane need (dsp.md §9).

The same record is the workflow's query result, the projection row's payload and the operator
API's view; `version` (the aggregate's) guards every projection write.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict

from connector.core.transfer.aggregate import JsonObject, Transfer
from connector.core.transfer.hold import Awaiting

__all__ = ["PENDING_AGREEMENT", "TransferRecord"]

# `agreement_id` of a consumer transfer whose agreement is still being negotiated (shortcut).
PENDING_AGREEMENT = "urn:connector:agreement:pending"


class TransferRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    transfer: Transfer
    dsp_version: str = "2025-1"
    asset_id: str | None = None
    # Provider: where the data plane reads the data (the asset's data address).
    source: JsonObject | None = None
    # Finite data (a file, an object) ends COMPLETED once delivered; an API or stream stays
    # STARTED until one side ends it (dsp.md §9).
    finite: bool = True
    # Push when the consumer gave a destination in its request; pull otherwise.
    push: bool = False
    # Consumer shortcut: the negotiation that produces the agreement, while it runs.
    negotiation_id: str | None = None
    bytes_moved: int | None = None
    deadline_at: AwareDatetime | None = None
    # Provider in `approve` mode: what the process waits for a person to decide (decision 0013).
    awaiting: Awaiting | None = None

    @property
    def own_pid(self) -> str:
        pid = self.transfer.own_pid
        if pid is None:  # pragma: no cover - every record is created with its own pid
            raise ValueError("transfer has no own pid")
        return pid

    @property
    def version(self) -> int:
        return self.transfer.version

    @property
    def updated_at(self) -> datetime:
        return self.transfer.updated_at
