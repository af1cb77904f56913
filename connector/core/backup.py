"""Backup facts and rules, pure: the manifest, backup ids, retention and verification comparison.

The manifest is what makes a dumped object a backup (issue 8): written last, it records size,
SHA-256, schema version and per-table row counts and checksums taken in the dump's own snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "MANIFEST_FORMAT",
    "BackupEntry",
    "BackupManifest",
    "BackupPart",
    "BackupStatus",
    "SchemaVersion",
    "TableStats",
    "Verification",
    "backup_id_for",
    "compare_tables",
    "known_status",
    "retained",
    "select_latest",
]

MANIFEST_FORMAT: Final = "connector-backup/1"

_K = TypeVar("_K", bound=Hashable)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableStats(_Model):
    """Rows of one table and an order-independent checksum over their text form."""

    rows: int = Field(ge=0)
    checksum: str


class SchemaVersion(_Model):
    latest: int = Field(description="Newest migration this build ships")
    applied: list[int] = Field(description="Migrations applied in the dumped database")

    @property
    def current(self) -> int:
        return max(self.applied, default=0)


class BackupPart(_Model):
    """One more object of a whole-node backup (decision 0017), beside the database archive."""

    object_key: str
    size_bytes: int = Field(ge=0, description="Stored (encrypted) bytes")
    sha256: str = Field(description="SHA-256 of the stored bytes: the corruption check")
    plain_sha256: str = Field(description="SHA-256 of the content once decrypted")
    encryption: str
    encryption_key_id: str
    # What verification compares after restoring the part in scratch (e.g. the Temporal
    # database's open and closed workflow executions).
    details: dict[str, int] = Field(default_factory=dict)


class BackupManifest(_Model):
    format: str = MANIFEST_FORMAT
    backup_id: str
    created_at: datetime = Field(description="When the dump's snapshot was taken (UTC)")
    completed_at: datetime
    connector_version: str
    database: str
    server_version: str
    dump_tool: str
    dump_format: str = "custom"
    compression: str
    object_key: str
    size_bytes: int = Field(ge=0)
    sha256: str
    schema_version: SchemaVersion
    tables: dict[str, TableStats]
    trigger: str = "manual"
    workflow_id: str | None = None
    # The archive as stored is encrypted (`aes-256-gcm-stream/v1`, connector.encryption.aead)
    # with the data key `encryption_key_id`; size and sha256 are those of the stored bytes.
    # None: a plain pg_dump archive (backups from before encryption, or encryption.backups off).
    encryption: str | None = None
    encryption_key_id: str | None = None
    # A whole-node backup's other parts by name (`temporal.db`, `secrets`, `config.json`);
    # empty for a database-only backup.
    parts: dict[str, BackupPart] = Field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables.values())


class Verification(_Model):
    """The outcome of restoring a backup into a scratch database and comparing it."""

    backup_id: str
    verified: bool
    verified_at: datetime
    checksum_ok: bool
    mismatches: list[str] = Field(default_factory=list)
    duration_seconds: float = 0.0
    scratch_database: str | None = None


class BackupStatus(StrEnum):
    VERIFIED = "verified"
    UNVERIFIED = "unverified"
    FAILED = "failed"


class BackupEntry(_Model):
    """A listed backup: its manifest plus the latest verification, if any."""

    manifest: BackupManifest
    verification: Verification | None = None

    @property
    def backup_id(self) -> str:
        return self.manifest.backup_id

    @property
    def status(self) -> BackupStatus:
        if self.verification is None:
            return BackupStatus.UNVERIFIED
        return BackupStatus.VERIFIED if self.verification.verified else BackupStatus.FAILED


def backup_id_for(created_at: datetime, suffix: str) -> str:
    """`20260102T020000Z-ab12cd`: sorts by time; the suffix separates two backups in one second."""
    stamp = created_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{suffix}"


def select_latest(entries: Iterable[BackupEntry]) -> BackupEntry | None:
    """The newest *verified* backup: an unverified or failed one is never offered as `latest`."""
    verified = [e for e in entries if e.status is BackupStatus.VERIFIED]
    return max(verified, key=lambda e: (e.manifest.created_at, e.backup_id), default=None)


@dataclass(frozen=True)
class KnownStatus:
    """What the backup gauges say, read back from a target's manifests."""

    last_success: float | None = None
    size_bytes: int | None = None
    last_verified: bool | None = None


def known_status(entries: Iterable[BackupEntry], *, verify: bool) -> KnownStatus:
    """The gauges the ops worker would have set had it seen every run: the newest good backup
    (verified, when verification is on; else any that did not fail) and the newest verification."""
    entries = list(entries)
    good = [
        e
        for e in entries
        if e.status is BackupStatus.VERIFIED or (not verify and e.status is BackupStatus.UNVERIFIED)
    ]
    newest = max(good, key=lambda e: (e.manifest.created_at, e.backup_id), default=None)
    checked = [e.verification for e in entries if e.verification is not None]
    last_check = max(checked, key=lambda v: v.verified_at, default=None)
    if newest is None:
        return KnownStatus(last_verified=last_check.verified if last_check else None)
    done = newest.verification.verified_at if newest.verification else newest.manifest.completed_at
    return KnownStatus(
        last_success=done.timestamp(),
        size_bytes=newest.manifest.size_bytes,
        last_verified=last_check.verified if last_check else None,
    )


def compare_tables(
    expected: Mapping[str, TableStats], actual: Mapping[str, TableStats]
) -> list[str]:
    """Human-readable differences between the manifest's tables and a restored copy."""
    problems: list[str] = []
    for name in sorted(set(expected) | set(actual)):
        want, got = expected.get(name), actual.get(name)
        if want is None:
            problems.append(f"{name}: present after restore but not in the manifest")
        elif got is None:
            problems.append(f"{name}: missing after restore")
        elif want.rows != got.rows:
            problems.append(f"{name}: {got.rows} rows restored, manifest says {want.rows}")
        elif want.checksum != got.checksum:
            problems.append(f"{name}: checksum {got.checksum} differs from manifest")
    return problems


def retained(
    entries: Sequence[BackupEntry],
    *,
    keep_daily: int,
    keep_weekly: int,
    protect: Iterable[str] = (),
) -> set[str]:
    """Ids to keep: the newest good backup of each of the last `keep_daily` days that have one,
    and of each of the last `keep_weekly` ISO weeks; plus `protect`ed ids and the newest verified
    backup (never prune the last restorable one). Failed backups stay while they are within the
    daily window, for inspection."""
    good = [e for e in entries if e.status is not BackupStatus.FAILED]
    keep: set[str] = set(protect)
    by_day = _newest_per(good, _day)
    days = sorted(by_day, reverse=True)[: max(keep_daily, 0)]
    keep.update(by_day[d].backup_id for d in days)
    by_week = _newest_per(good, _week)
    weeks = sorted(by_week, reverse=True)[: max(keep_weekly, 0)]
    keep.update(by_week[w].backup_id for w in weeks)
    latest = select_latest(entries)
    if latest is not None:
        keep.add(latest.backup_id)
    if days:
        oldest_day = days[-1]
        keep.update(
            e.backup_id
            for e in entries
            if e.status is BackupStatus.FAILED and _day(e) >= oldest_day
        )
    return keep


def _day(entry: BackupEntry) -> date:
    return entry.manifest.created_at.astimezone(UTC).date()


def _week(entry: BackupEntry) -> tuple[int, int]:
    iso = _day(entry).isocalendar()
    return iso.year, iso.week


def _newest_per(
    entries: Iterable[BackupEntry], key: Callable[[BackupEntry], _K]
) -> dict[_K, BackupEntry]:
    found: dict[_K, BackupEntry] = {}
    for entry in entries:
        k = key(entry)
        known = found.get(k)
        if known is None or (entry.manifest.created_at, entry.backup_id) > (
            known.manifest.created_at,
            known.backup_id,
        ):
            found[k] = entry
    return found
