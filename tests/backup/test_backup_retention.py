"""Retention and `latest` selection (pure): N daily, M weekly, never the last verified one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector.core.backup import (
    BackupEntry,
    BackupManifest,
    SchemaVersion,
    TableStats,
    Verification,
    backup_id_for,
    compare_tables,
    retained,
    select_latest,
)

START = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # a Monday


def entry(at: datetime, verified: bool | None = True) -> BackupEntry:
    backup_id = backup_id_for(at, "abcdef")
    manifest = BackupManifest(
        backup_id=backup_id,
        created_at=at,
        completed_at=at + timedelta(seconds=5),
        connector_version="0.1.0",
        database="connector",
        server_version="18",
        dump_tool="pg_dump",
        compression="gzip:6",
        object_key=f"{backup_id}/connector.dump",
        size_bytes=10,
        sha256="0" * 64,
        schema_version=SchemaVersion(latest=3, applied=[1, 2, 3]),
        tables={"public.t": TableStats(rows=1, checksum="s64:1")},
    )
    verification = None
    if verified is not None:
        verification = Verification(
            backup_id=backup_id, verified=verified, verified_at=at, checksum_ok=verified
        )
    return BackupEntry(manifest=manifest, verification=verification)


def test_backup_ids_sort_by_time() -> None:
    a = backup_id_for(START, "ffffff")
    b = backup_id_for(START + timedelta(seconds=1), "000000")
    assert a == "20260302T020000Z-ffffff"
    assert sorted([b, a]) == [a, b]


def test_keeps_newest_of_each_of_the_last_n_days_and_m_weeks() -> None:
    daily = [entry(START + timedelta(days=d)) for d in range(30)]
    same_day_earlier = entry(START + timedelta(days=29, hours=-1))
    keep = retained([*daily, same_day_earlier], keep_daily=7, keep_weekly=4)
    last_7 = {e.backup_id for e in daily[-7:]}
    assert last_7 <= keep
    assert same_day_earlier.backup_id not in keep  # one per day
    # Weekly: the newest backup of each of the last 4 ISO weeks (Sundays, and the last day).
    weekly = {daily[d].backup_id for d in (13, 20, 27, 29)}
    assert weekly <= keep
    assert keep == last_7 | weekly


def test_never_prunes_the_protected_or_the_newest_verified_backup() -> None:
    old_verified = entry(START)
    unverified = [entry(START + timedelta(days=d), verified=None) for d in range(1, 10)]
    keep = retained([old_verified, *unverified], keep_daily=2, keep_weekly=0, protect=["x-current"])
    assert old_verified.backup_id in keep
    assert "x-current" in keep
    assert {e.backup_id for e in unverified[-2:]} <= keep
    assert unverified[0].backup_id not in keep


def test_failed_backups_take_no_slot_and_age_out() -> None:
    good = [entry(START + timedelta(days=d)) for d in range(5)]
    failed_recent = entry(START + timedelta(days=4, hours=1), verified=False)
    failed_old = entry(START - timedelta(days=10), verified=False)
    keep = retained([*good, failed_recent, failed_old], keep_daily=3, keep_weekly=0)
    assert good[4].backup_id in keep  # the failed one did not displace it
    assert failed_recent.backup_id in keep  # kept for inspection inside the window
    assert failed_old.backup_id not in keep


def test_latest_is_the_newest_verified_backup_only() -> None:
    a = entry(START)
    b = entry(START + timedelta(days=1), verified=False)
    c = entry(START + timedelta(days=2), verified=None)
    assert select_latest([a, b, c]) == a
    assert select_latest([b, c]) is None


def test_compare_tables_names_every_difference() -> None:
    expected = {
        "public.a": TableStats(rows=2, checksum="s64:1"),
        "public.b": TableStats(rows=1, checksum="s64:2"),
        "public.c": TableStats(rows=1, checksum="s64:3"),
    }
    actual = {
        "public.a": TableStats(rows=3, checksum="s64:1"),
        "public.b": TableStats(rows=1, checksum="s64:9"),
        "public.d": TableStats(rows=0, checksum="s64:0"),
    }
    problems = compare_tables(expected, actual)
    assert len(problems) == 4
    assert compare_tables(expected, expected) == []
