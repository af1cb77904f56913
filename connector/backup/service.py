"""Backup operations over a database and a target: dump, verify, prune, resolve, restore.

The ops activities are thin wrappers around `BackupService`; `connector backup list` uses it
directly. Deliberate refusals raise `NotFoundError` (unknown backup, none verified) or
`UnprocessableError` (checksum mismatch, failed verification, an archive that does not decrypt,
schema newer than this build); everything else is an ordinary (retryable) exception.

Archives are encrypted while they stream out of pg_dump (`connector.encryption.aead`, chunked
AES-256-GCM under the data key ring's current key; the manifest names the key), so neither the
target nor a copy of it holds the data in clear. Verification and restore decrypt into the work
directory (mode 0600 in 0700) for pg_restore and delete the plain file right after.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import asyncpg

from connector import __version__
from connector.backup import node as node_parts
from connector.backup import pg
from connector.backup.node import NodeSources
from connector.backup.storage import BackupStorage, build_storage
from connector.core.backup import (
    BackupEntry,
    BackupManifest,
    BackupPart,
    BackupStatus,
    SchemaVersion,
    Verification,
    compare_tables,
    retained,
    select_latest,
)
from connector.core.errors import NotFoundError, UnprocessableError
from connector.encryption.aead import DecryptionError, StreamEncryptor, decrypt_file
from connector.encryption.keyring import DataKeys, KeyFileError
from connector.settings import BackupSettings
from connector.stores import migrate

LATEST: Final = "latest"
ENCRYPTION_SCHEME: Final = "aes-256-gcm-stream/v1"
PARTIAL_MAX_AGE: Final = timedelta(hours=24)
VERIFY_JOBS: Final = 2

Heartbeat = Callable[[dict[str, Any]], None]


def _noop(_: dict[str, Any]) -> None:
    return None


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while piece := fh.read(1024 * 1024):
            digest.update(piece)
    return digest.hexdigest()


@dataclass(frozen=True)
class PruneOutcome:
    deleted: list[str]
    kept: list[str]
    partials_removed: int


@dataclass(frozen=True)
class RestoreOutcome:
    restored_rows: dict[str, int]
    migrations_applied: list[int]
    duration_seconds: float


class _Throttle:
    def __init__(self, bytes_per_second: int) -> None:
        self._rate = bytes_per_second
        self._started = time.monotonic()

    async def account(self, total_bytes: int) -> None:
        if self._rate <= 0:
            return
        ahead = total_bytes / self._rate - (time.monotonic() - self._started)
        if ahead > 0:
            await asyncio.sleep(ahead)


class BackupService:
    def __init__(
        self,
        settings: BackupSettings,
        data_dir: Path,
        database_url: str,
        *,
        keys: DataKeys,
        encrypt: bool = True,
        storage: BackupStorage | None = None,
        node: NodeSources | None = None,
    ) -> None:
        """`keys` decrypt archives (also with `encrypt` off: earlier backups may be encrypted);
        `encrypt` (`encryption.backups`) encrypts new ones. `node`: back up the whole node
        (decision 0017; its parts are always encrypted)."""
        self.settings = settings
        self.node = node
        # pg_dump/pg_restore bypass a transaction-mode pooler (backup.database_url).
        self.database_url = (
            settings.database_url.get_secret_value() if settings.database_url else database_url
        )
        self.keys = keys
        self.encrypt = encrypt
        self.storage = storage or build_storage(settings, data_dir)
        self.work_dir = settings.resolved_work_dir(data_dir)
        self.bin_dir = pg.find_bin_dir(settings.pg_bin_dir)

    # --- dump ------------------------------------------------------------------------------

    async def dump(
        self,
        backup_id: str,
        *,
        trigger: str,
        workflow_id: str | None = None,
        heartbeat: Heartbeat = _noop,
    ) -> BackupManifest:
        """Stream pg_dump into the target, hashing on the way; publish the manifest last."""
        published = await self.storage.entry(backup_id)
        if published is not None:
            # An earlier attempt published it and its completion was lost: a worker crash, or
            # a node restored from this very backup, whose Temporal snapshot holds this run
            # with its dump still in flight.
            return published.manifest
        started = time.monotonic()
        writer = await self.storage.begin(backup_id)
        digest = hashlib.sha256()
        size = 0
        throttle = _Throttle(self.settings.max_bytes_per_second)
        sealer = StreamEncryptor(self.keys, "backup") if self.encrypt else None

        async def emit(data: bytes) -> None:
            nonlocal size
            if data:
                digest.update(data)
                size += len(data)
                await writer.write(data)

        snapshot_file: Path | None = None
        temporal_counts: dict[str, int] = {}
        pinned = node_parts.SqliteSnapshot(self.node.temporal_db) if self.node else None
        try:
            if sealer is not None:
                await emit(sealer.header)
            if pinned is not None:
                # Temporal first, Postgres a moment later (node.py says why this order).
                await asyncio.to_thread(pinned.pin)
            async with pg.exported_snapshot(self.database_url) as (conn, snapshot):
                if pinned is not None:
                    await asyncio.to_thread(
                        self.work_dir.mkdir, mode=0o700, parents=True, exist_ok=True
                    )
                    snapshot_file = self.work_dir / f"{backup_id}.{node_parts.TEMPORAL_PART}"
                    temporal_counts = await asyncio.to_thread(pinned.copy_to, snapshot_file)
                    await asyncio.to_thread(pinned.close)
                    heartbeat({"stage": "temporal-snapshot", "bytes": snapshot_file.stat().st_size})
                created_at: datetime = await conn.fetchval("SELECT now()")
                server_version: str = await conn.fetchval("SHOW server_version")
                database: str = await conn.fetchval("SELECT current_database()")
                applied = sorted(await migrate.applied_versions(conn))
                stats_task = asyncio.create_task(pg.table_stats(conn))
                try:
                    chunks = pg.dump_chunks(
                        self.bin_dir,
                        self.database_url,
                        snapshot=snapshot,
                        compression=self.settings.compression,
                    )
                    async with contextlib.aclosing(chunks):
                        async for chunk in chunks:
                            await emit(sealer.update(chunk) if sealer is not None else chunk)
                            heartbeat({"stage": "dump", "bytes": size})
                            await throttle.account(size)
                    if sealer is not None:
                        await emit(sealer.finalize())
                    tables = await stats_task
                finally:
                    if not stats_task.done():
                        stats_task.cancel()
                        with contextlib.suppress(BaseException):
                            await stats_task
            await writer.commit()
            parts: dict[str, BackupPart] = {}
            if self.node is not None and snapshot_file is not None:
                parts = await self._node_parts(backup_id, snapshot_file, temporal_counts)
        except BaseException:
            await writer.abort()
            raise
        finally:
            if pinned is not None:
                await asyncio.to_thread(pinned.close)
            if snapshot_file is not None:
                snapshot_file.unlink(missing_ok=True)
        manifest = BackupManifest(
            backup_id=backup_id,
            created_at=created_at.astimezone(UTC),
            completed_at=datetime.now(UTC),
            connector_version=__version__,
            database=database,
            server_version=server_version,
            dump_tool=await pg.tool_version(self.bin_dir, "pg_dump"),
            compression=self.settings.compression,
            object_key=writer.key,
            size_bytes=size,
            sha256=digest.hexdigest(),
            schema_version=SchemaVersion(latest=migrate.latest_version(), applied=applied),
            tables=tables,
            trigger=trigger,
            workflow_id=workflow_id,
            encryption=ENCRYPTION_SCHEME if sealer is not None else None,
            encryption_key_id=sealer.kid if sealer is not None else None,
            parts=parts,
        )
        await self.storage.publish_manifest(manifest)
        heartbeat({"stage": "published", "bytes": size, "seconds": time.monotonic() - started})
        return manifest

    async def _write_part(
        self, backup_id: str, name: str, chunks: AsyncIterator[bytes]
    ) -> tuple[str, int, str]:
        """Store encrypted `chunks` as part `name`: (object key, size, sha256 of the bytes)."""
        writer = await self.storage.begin(backup_id, name)
        digest = hashlib.sha256()
        size = 0
        try:
            async for data in chunks:
                if data:
                    digest.update(data)
                    size += len(data)
                    await writer.write(data)
            await writer.commit()
        except BaseException:
            await writer.abort()
            raise
        return writer.key, size, digest.hexdigest()

    async def _node_parts(
        self, backup_id: str, snapshot_file: Path, temporal_counts: dict[str, int]
    ) -> dict[str, BackupPart]:
        """Encrypt and store the Temporal snapshot, the secrets and the configuration."""
        node = self.node
        assert node is not None  # noqa: S101 - the caller checked
        parts: dict[str, BackupPart] = {}
        plain_digest = hashlib.sha256()
        sealer = StreamEncryptor(self.keys, "backup")

        async def temporal_chunks() -> AsyncIterator[bytes]:
            yield sealer.header
            with snapshot_file.open("rb") as fh:
                while piece := await asyncio.to_thread(fh.read, 1024 * 1024):
                    plain_digest.update(piece)
                    yield sealer.update(piece)
            yield sealer.finalize()

        key, size, sha = await self._write_part(
            backup_id, node_parts.TEMPORAL_PART, temporal_chunks()
        )
        parts[node_parts.TEMPORAL_PART] = BackupPart(
            object_key=key,
            size_bytes=size,
            sha256=sha,
            plain_sha256=plain_digest.hexdigest(),
            encryption=ENCRYPTION_SCHEME,
            encryption_key_id=sealer.kid,
            details=temporal_counts,
        )
        recovery = await asyncio.to_thread(
            node_parts.recovery_keys, node.recovery_key_file, create=True
        )
        sealed, recovery_kid, plain_sha, count = await asyncio.to_thread(
            node_parts.seal_secrets, node, recovery
        )
        key, size, sha = await self._write_part(backup_id, node_parts.SECRETS_PART, _once(sealed))
        parts[node_parts.SECRETS_PART] = BackupPart(
            object_key=key,
            size_bytes=size,
            sha256=sha,
            plain_sha256=plain_sha,
            encryption=ENCRYPTION_SCHEME,
            encryption_key_id=recovery_kid,
            details={"files": count},
        )
        config = json.dumps(node.config, indent=2, sort_keys=True).encode()
        encrypted, kid = node_parts.encrypt_bytes(self.keys, config)
        key, size, sha = await self._write_part(backup_id, node_parts.CONFIG_PART, _once(encrypted))
        parts[node_parts.CONFIG_PART] = BackupPart(
            object_key=key,
            size_bytes=size,
            sha256=sha,
            plain_sha256=hashlib.sha256(config).hexdigest(),
            encryption=ENCRYPTION_SCHEME,
            encryption_key_id=kid,
        )
        return parts

    # --- verify ----------------------------------------------------------------------------

    async def verify(self, backup_id: str, *, heartbeat: Heartbeat = _noop) -> Verification:
        """Restore into `connector_verify_<id>` on the same server, compare, drop; record it."""
        entry = await self.storage.entry(backup_id)
        if entry is None:
            raise NotFoundError(f"no backup {backup_id} in {self.storage.description}")
        manifest = entry.manifest
        started = time.monotonic()
        fetched = await self.storage.fetch(
            backup_id, self.work_dir, lambda n: heartbeat({"stage": "fetch", "bytes": n})
        )
        scratch = self.settings.verify_database or pg.scratch_database_name(backup_id)
        mismatches: list[str] = []
        try:
            checksum_ok = fetched.sha256 == manifest.sha256 and (
                fetched.size_bytes == manifest.size_bytes
            )
            if not checksum_ok:
                mismatches.append(
                    f"archive sha256 {fetched.sha256} ({fetched.size_bytes} bytes) differs from "
                    f"the manifest's {manifest.sha256} ({manifest.size_bytes} bytes)"
                )
            else:
                try:
                    async with self._plain_archive(manifest, fetched.path) as archive:
                        mismatches = await self._restore_and_compare(
                            manifest, archive, scratch, heartbeat
                        )
                except DecryptionError as exc:
                    mismatches = [f"the archive does not decrypt: {exc}"]
                if manifest.parts:
                    mismatches += await self._verify_parts(manifest, heartbeat)
        finally:
            fetched.discard()
        verification = Verification(
            backup_id=backup_id,
            verified=not mismatches,
            verified_at=datetime.now(UTC),
            checksum_ok=checksum_ok,
            mismatches=mismatches,
            duration_seconds=time.monotonic() - started,
            scratch_database=scratch if checksum_ok else None,
        )
        await self.storage.write_verification(verification)
        return verification

    async def fetch_part(
        self, manifest: BackupManifest, name: str, heartbeat: Heartbeat
    ) -> tuple[Path, list[str], Callable[[], None]]:
        """The stored part as a local file, mismatches of its checksum, and its discard."""
        part = manifest.parts[name]
        fetched = await self.storage.fetch(
            manifest.backup_id,
            self.work_dir,
            lambda n: heartbeat({"stage": f"fetch {name}", "bytes": n}),
            name,
        )
        problems = []
        if fetched.sha256 != part.sha256 or fetched.size_bytes != part.size_bytes:
            problems.append(
                f"{name}: sha256 {fetched.sha256} ({fetched.size_bytes} bytes) differs from the "
                f"manifest's {part.sha256} ({part.size_bytes} bytes)"
            )
        return fetched.path, problems, fetched.discard

    async def _verify_parts(self, manifest: BackupManifest, heartbeat: Heartbeat) -> list[str]:
        """Restore each node part in scratch: the Temporal database opens and passes
        `PRAGMA integrity_check` with the manifest's execution counts, the secrets open with
        the recovery key and their data key ring decrypts this backup, the configuration
        parses."""
        problems: list[str] = []
        await asyncio.to_thread(self.work_dir.mkdir, mode=0o700, parents=True, exist_ok=True)
        scratch = self.work_dir / f"{manifest.backup_id}.verify"
        for name in (node_parts.SECRETS_PART, node_parts.TEMPORAL_PART, node_parts.CONFIG_PART):
            if name not in manifest.parts:
                problems.append(f"{name}: missing from the node backup")
                continue
            stored, bad, discard = await self.fetch_part(manifest, name, heartbeat)
            try:
                if bad:
                    problems += bad
                    continue
                heartbeat({"stage": f"verify {name}"})
                problems += await asyncio.to_thread(
                    self._check_part, manifest, name, stored, scratch
                )
            finally:
                discard()
                scratch.unlink(missing_ok=True)
        return problems

    def _check_part(
        self, manifest: BackupManifest, name: str, stored: Path, scratch: Path
    ) -> list[str]:
        part = manifest.parts[name]
        try:
            if name == node_parts.SECRETS_PART:
                if self.node is None:
                    return [f"{name}: no recovery key configured on this node to open it"]
                recovery = node_parts.recovery_keys(self.node.recovery_key_file, create=False)
                files = node_parts.open_secrets(recovery, stored)
                return node_parts.check_secrets(files, manifest, scratch)
            decrypt_file(self.keys, "backup", stored, scratch)
        except (DecryptionError, KeyFileError) as exc:
            return [f"{name}: does not decrypt ({exc})"]
        if _sha256_file(scratch) != part.plain_sha256:
            return [f"{name}: decrypted content differs from the manifest's checksum"]
        if name == node_parts.TEMPORAL_PART:
            problems, counts = node_parts.check_temporal_db(scratch)
            if counts != part.details:
                problems.append(f"{name}: {counts} restored, the manifest says {part.details}")
            return problems
        try:
            json.loads(scratch.read_bytes())
        except ValueError as exc:
            return [f"{name}: not JSON ({exc})"]
        return []

    async def _restore_and_compare(
        self, manifest: BackupManifest, archive: Path, scratch: str, heartbeat: Heartbeat
    ) -> list[str]:
        # A pre-created scratch database (backup.verify_database) is emptied instead of created
        # and dropped: the role needs no CREATEDB.
        precreated = self.settings.verify_database == scratch
        if precreated:
            await pg.empty_database(pg.with_database(self.database_url, scratch))
        else:
            await pg.create_database(self.database_url, scratch)
        try:

            async def tick() -> None:
                heartbeat({"stage": "verify-restore"})

            try:
                await pg.restore_archive(
                    self.bin_dir,
                    pg.with_database(self.database_url, scratch),
                    archive,
                    clean=False,
                    jobs=VERIFY_JOBS,
                    on_tick=tick,
                )
            except pg.PgToolError as exc:
                return [f"pg_restore into {scratch} failed: {exc}"]
            heartbeat({"stage": "verify-compare"})
            conn = await asyncpg.connect(pg.with_database(self.database_url, scratch))
            try:
                await pg.stabilise_session(conn)
                restored = await pg.table_stats(conn)
            finally:
                await conn.close()
            return compare_tables(manifest.tables, restored)
        finally:
            if precreated:
                await pg.empty_database(pg.with_database(self.database_url, scratch))
            else:
                await pg.drop_database(self.database_url, scratch)

    @contextlib.asynccontextmanager
    async def _plain_archive(self, manifest: BackupManifest, stored: Path) -> AsyncIterator[Path]:
        """The pg_dump archive of `stored`: itself when the manifest says plain, else decrypted
        (streamed, chunk by chunk) into the work directory and deleted afterwards."""
        if manifest.encryption is None:
            yield stored
            return
        if manifest.encryption != ENCRYPTION_SCHEME:
            raise DecryptionError(f"unknown encryption {manifest.encryption!r}")
        await asyncio.to_thread(self.work_dir.mkdir, mode=0o700, parents=True, exist_ok=True)
        plain = self.work_dir / f"{manifest.backup_id}.plain.dump"
        try:
            await asyncio.to_thread(decrypt_file, self.keys, "backup", stored, plain)
            yield plain
        finally:
            with contextlib.suppress(FileNotFoundError):
                plain.unlink()

    # --- list, prune, resolve --------------------------------------------------------------

    async def entries(self) -> list[BackupEntry]:
        return await self.storage.entries()

    async def prune(self, *, keep_daily: int, keep_weekly: int, protect: list[str]) -> PruneOutcome:
        entries = await self.storage.entries()
        keep = retained(entries, keep_daily=keep_daily, keep_weekly=keep_weekly, protect=protect)
        deleted = [e.backup_id for e in entries if e.backup_id not in keep]
        for backup_id in deleted:
            await self.storage.delete(backup_id)
        partials = await self.storage.cleanup_partials(PARTIAL_MAX_AGE, set(protect))
        kept = [e.backup_id for e in entries if e.backup_id in keep]
        return PruneOutcome(deleted=deleted, kept=kept, partials_removed=partials)

    async def resolve(self, backup_id: str) -> BackupEntry:
        """`latest` = newest verified backup; an explicit id must exist and not have failed."""
        if backup_id == LATEST:
            found = select_latest(await self.storage.entries())
            if found is None:
                raise NotFoundError(
                    f"no verified backup in {self.storage.description}; pass --backup ID"
                )
            return found
        entry = await self.storage.entry(backup_id)
        if entry is None:
            raise NotFoundError(f"no backup {backup_id} in {self.storage.description}")
        if entry.status is BackupStatus.FAILED:
            raise UnprocessableError(f"backup {backup_id} failed verification; choose another")
        return entry

    # --- restore ---------------------------------------------------------------------------

    async def restore(
        self, backup_id: str, *, expected_sha256: str, heartbeat: Heartbeat = _noop
    ) -> RestoreOutcome:
        """Check the archive, `pg_restore --clean --if-exists` it in one transaction, migrate."""
        started = time.monotonic()
        entry = await self.resolve(backup_id)
        manifest = entry.manifest
        if manifest.sha256 != expected_sha256:
            raise UnprocessableError(f"backup {backup_id} changed since it was chosen")
        if manifest.schema_version.current > migrate.latest_version():
            raise UnprocessableError(
                f"backup {backup_id} has schema {manifest.schema_version.current}, newer than "
                f"this build's {migrate.latest_version()}: restore with a newer connector"
            )
        fetched = await self.storage.fetch(
            backup_id, self.work_dir, lambda n: heartbeat({"stage": "fetch", "bytes": n})
        )
        try:
            if fetched.sha256 != manifest.sha256:
                await self.storage.write_verification(
                    Verification(
                        backup_id=backup_id,
                        verified=False,
                        verified_at=datetime.now(UTC),
                        checksum_ok=False,
                        mismatches=[f"archive sha256 {fetched.sha256} differs from manifest"],
                    )
                )
                raise UnprocessableError(
                    f"backup {backup_id} is corrupt (sha256 mismatch); nothing was restored"
                )

            async def tick() -> None:
                heartbeat({"stage": "restore"})

            try:
                async with self._plain_archive(manifest, fetched.path) as archive:
                    await pg.restore_archive(
                        self.bin_dir, self.database_url, archive, clean=True, on_tick=tick
                    )
            except DecryptionError as exc:
                raise UnprocessableError(
                    f"backup {backup_id} does not decrypt with the data key ring ({exc}); "
                    "nothing was restored"
                ) from None
        finally:
            fetched.discard()
        conn = await asyncpg.connect(self.database_url)
        try:
            applied = [m.version for m in await migrate.migrate(conn)]
            counts = await pg.row_counts(conn)
        finally:
            await conn.close()
        return RestoreOutcome(
            restored_rows=counts,
            migrations_applied=applied,
            duration_seconds=time.monotonic() - started,
        )
