"""Backup metrics (issue 17): a fresh process exports no "last backup" value, the gauges come back
from the target's manifests when the ops worker starts, and the duration is a histogram."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from activities.backup import publish_known_status
from connector.core.backup import (
    BackupEntry,
    BackupManifest,
    SchemaVersion,
    Verification,
    known_status,
)
from connector.runtime.metrics import (
    BACKUP_DURATION_SECONDS,
    BACKUP_EXPECTED_SINCE,
    BACKUP_LAST_SUCCESS,
    BACKUP_LAST_VERIFIED,
    BACKUP_SIZE_BYTES,
    Metrics,
    build_registry,
)
from connector.settings import BackupSettings

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def _families(metrics: Metrics) -> dict[str, Any]:
    text = generate_latest(metrics.registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def _entry(
    backup_id: str, at: datetime, *, size: int = 100, verified: bool | None = None
) -> BackupEntry:
    manifest = BackupManifest(
        backup_id=backup_id,
        created_at=at,
        completed_at=at + timedelta(seconds=5),
        connector_version="test",
        database="connector",
        server_version="16",
        dump_tool="pg_dump",
        compression="gzip:6",
        object_key=f"{backup_id}.dump",
        size_bytes=size,
        sha256="0" * 64,
        schema_version=SchemaVersion(latest=1, applied=[1]),
        tables={},
    )
    verification = (
        None
        if verified is None
        else Verification(
            backup_id=backup_id,
            verified=verified,
            verified_at=at + timedelta(seconds=30),
            checksum_ok=verified,
        )
    )
    return BackupEntry(manifest=manifest, verification=verification)


def test_a_fresh_process_exports_no_last_backup_values() -> None:
    families = _families(Metrics(build_registry(process_metrics=False), "worker"))
    for name in (BACKUP_LAST_SUCCESS, BACKUP_LAST_VERIFIED, BACKUP_SIZE_BYTES):
        assert name not in families, f"{name} exported before any backup is known"
    assert BACKUP_EXPECTED_SINCE not in families
    assert families[BACKUP_DURATION_SECONDS].type == "histogram"


def test_a_set_gauge_is_exported() -> None:
    metrics = Metrics(build_registry(process_metrics=False), "worker")
    metrics.backup_last_success.set(1234.0)
    metrics.backup_last_success.set(1235.0)
    assert metrics.registry.get_sample_value(BACKUP_LAST_SUCCESS) == 1235.0
    assert _families(metrics)[BACKUP_LAST_SUCCESS].type == "gauge"


def test_known_status_of_no_backups_is_unknown() -> None:
    assert known_status([], verify=True) == known_status([], verify=False)
    status = known_status([], verify=True)
    assert (status.last_success, status.size_bytes, status.last_verified) == (None, None, None)


def test_known_status_takes_the_newest_verified_backup_and_the_newest_verification() -> None:
    entries = [
        _entry("a", T0, size=10, verified=True),
        _entry("b", T0 + timedelta(days=1), size=20, verified=True),
        _entry("c", T0 + timedelta(days=2), size=30, verified=False),
        _entry("d", T0 + timedelta(days=3), size=40),  # dumped, never verified
    ]
    status = known_status(entries, verify=True)
    assert status.last_success == (T0 + timedelta(days=1, seconds=30)).timestamp()
    assert status.size_bytes == 20
    assert status.last_verified is False  # "c" failed its verification, the newest one
    unverified_ok = known_status(entries, verify=False)
    assert unverified_ok.last_success == (T0 + timedelta(days=3, seconds=5)).timestamp()
    assert unverified_ok.size_bytes == 40


class _Service:
    def __init__(self, entries: list[BackupEntry] | Exception) -> None:
        self._entries = entries

    async def entries(self) -> list[BackupEntry]:
        if isinstance(self._entries, Exception):
            raise self._entries
        return self._entries


async def test_publish_known_status_sets_the_gauges_from_the_target() -> None:
    metrics = Metrics(build_registry(process_metrics=False), "worker")
    service: Any = _Service([_entry("a", T0, size=77, verified=True)])
    await publish_known_status(service, None, metrics, BackupSettings())
    assert (
        metrics.registry.get_sample_value(BACKUP_LAST_SUCCESS)
        == (T0 + timedelta(seconds=30)).timestamp()
    )
    assert metrics.registry.get_sample_value(BACKUP_SIZE_BYTES) == 77
    assert metrics.registry.get_sample_value(BACKUP_LAST_VERIFIED) == 1


async def test_publish_known_status_leaves_an_empty_or_unreachable_target_unknown() -> None:
    for service in (_Service([]), _Service(OSError("bucket unreachable"))):
        metrics = Metrics(build_registry(process_metrics=False), "worker")
        await publish_known_status(service, None, metrics, BackupSettings())  # type: ignore[arg-type]
        families = _families(metrics)
        assert BACKUP_LAST_SUCCESS not in families
        assert BACKUP_LAST_VERIFIED not in families
