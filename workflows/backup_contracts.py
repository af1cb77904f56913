"""Inputs and outputs of the backup, verification and restore workflows and their activities.

Pydantic models (the pydantic data converter carries them); new fields only with defaults, at the
end. Workflows import this module inside `workflow.unsafe.imports_passed_through()`.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

LATEST = "latest"


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- backup --------------------------------------------------------------------------------


class BackupInput(_Contract):
    """Start input of `ops.backup`; the Schedule's action carries it (set from configuration)."""

    trigger: str = "manual"
    verify: bool = True
    prune: bool = True
    keep_daily: int = Field(default=7, ge=1)
    keep_weekly: int = Field(default=4, ge=0)


class DumpRequest(_Contract):
    backup_id: str
    trigger: str
    workflow_id: str


class DumpResult(_Contract):
    backup_id: str
    object_key: str
    created_at: datetime
    size_bytes: int
    sha256: str
    total_rows: int
    tables: int
    duration_seconds: float


class VerifyRequest(_Contract):
    backup_id: str


class VerifyResult(_Contract):
    backup_id: str
    verified: bool
    checksum_ok: bool
    mismatches: list[str] = Field(default_factory=list)
    duration_seconds: float = 0.0


class PruneRequest(_Contract):
    keep_daily: int
    keep_weekly: int
    protect: list[str] = Field(default_factory=list)


class PruneResult(_Contract):
    deleted: list[str] = Field(default_factory=list)
    kept: list[str] = Field(default_factory=list)
    partials_removed: int = 0


class OutcomeRecord(_Contract):
    """What the `backup.record_outcome` activity turns into metrics and the status row."""

    stage: str  # backup | verify | restore
    ok: bool
    workflow_id: str
    backup_id: str | None = None
    size_bytes: int | None = None
    duration_seconds: float | None = None
    verified: bool | None = None
    error: str | None = None


class BackupResult(_Contract):
    backup_id: str
    object_key: str
    size_bytes: int
    sha256: str
    total_rows: int
    verified: bool | None
    mismatches: list[str] = Field(default_factory=list)
    pruned: list[str] = Field(default_factory=list)
    duration_seconds: float


class VerifyInput(_Contract):
    """Start input of `ops.backup_verify` (`connector backup verify ID`)."""

    backup_id: str


# --- restore -------------------------------------------------------------------------------


class RestoreInput(_Contract):
    """Start input of `ops.restore`; `backup_id` may be `latest` (newest verified backup)."""

    backup_id: str = LATEST
    reconcile: bool = True


class ResolveRequest(_Contract):
    backup_id: str


class ResolvedBackup(_Contract):
    backup_id: str
    created_at: datetime
    size_bytes: int
    sha256: str
    schema_version: int
    status: str
    rows: dict[str, int] = Field(default_factory=dict)


class MaintenanceRequest(_Contract):
    reason: str
    workflow_id: str


class RestoreDatabaseRequest(_Contract):
    backup_id: str
    sha256: str
    workflow_id: str
    reason: str


class RestoreDatabaseResult(_Contract):
    backup_id: str
    restored_rows: dict[str, int]
    migrations_applied: list[int] = Field(default_factory=list)
    duration_seconds: float


class ReconcileRequest(_Contract):
    kinds: list[str] | None = None  # None: every registered projection kind


class ReconcileCounts(_Contract):
    examined: int = 0
    reprojected: int = 0
    unchanged: int = 0
    failed: int = 0
    errors: list[str] = Field(default_factory=list)


class ReconcileResult(_Contract):
    kinds: dict[str, ReconcileCounts] = Field(default_factory=dict)

    @property
    def reprojected(self) -> int:
        return sum(c.reprojected for c in self.kinds.values())


class HealthRequest(_Contract):
    pass


class HealthReport(_Contract):
    healthy: bool
    checks: dict[str, str | None]  # check name -> error (None = healthy)


class RestoreReport(_Contract):
    """The DR report: workflow result, printed by `connector restore`."""

    backup_id: str
    backup_created_at: datetime
    started_at: datetime
    finished_at: datetime
    restored_rows: dict[str, int]
    restored_rows_total: int
    reconciled: dict[str, ReconcileCounts]
    reconciled_rows_total: int
    migrations_applied: list[int] = Field(default_factory=list)
    rpo_seconds: float = Field(description="Age of the backup when the restore started")
    rto_seconds: float = Field(description="Restore start to healthy service")
    healthy: bool
    health: dict[str, str | None] = Field(default_factory=dict)


class OpsProgress(_Contract):
    """Answer of the `ops.progress` query: where a backup/verify/restore run is."""

    stage: str
    backup_id: str | None = None
    done: list[str] = Field(default_factory=list)
    error: str | None = None
