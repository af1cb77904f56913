"""`connector restore --node`: bring a whole edge node back from a node backup (decision 0017).

Runs with nothing else running, typically on a new machine with an empty data dir:

1. refuse a data dir that holds anything but the backup target and work dir (unless `--force`,
   which removes it first);
2. open the secrets with the recovery key (`--recovery-key`, else `backup.recovery_key_file`)
   and put the data key ring, the identity keys and the management key back;
3. decrypt the Temporal snapshot to where the dev server keeps its database and check it
   (`PRAGMA integrity_check`, the manifest's execution counts);
4. start the embedded Postgres for the time of the restore (or use `database.url`), restore the
   archive, apply newer migrations, stop it;
5. write the backed-up configuration (secrets redacted) beside, and name what differs from the
   configuration this command runs with.

`connector up` afterwards resumes every process that was in flight: its workflows are in the
restored Temporal database, the activities they were running time out and run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from connector.backup import node as node_parts
from connector.backup.service import BackupService
from connector.backup.storage import StorageError, build_storage
from connector.core.backup import BackupEntry
from connector.core.errors import ConnectorError
from connector.encryption.aead import DecryptionError, decrypt_file
from connector.encryption.keyring import DataKeys, KeyFileError
from connector.runtime.datadir import secure_data_dir
from connector.settings import Settings

__all__ = ["NodeRestoreError", "RestoredNode", "restore_node"]

RESTORED_CONFIG: Final = "restored-config.json"
#: Settings whose difference makes the restored node another participant or break its peers.
IDENTITY_KEYS: Final = (
    ("identity", "participant_id"),
    ("identity", "did"),
    ("server", "public_url"),
    ("server", "port"),
    ("temporal", "namespace"),
)
POSTGRES_START_SECONDS: Final = 60.0

Out = Callable[[str], None]


class NodeRestoreError(Exception):
    """The node cannot be restored; the message is one line saying why and what to do."""


@dataclass(frozen=True)
class RestoredNode:
    backup_id: str
    temporal: dict[str, int]
    restored_rows: int
    secret_files: int
    config_differences: list[str]
    seconds: float


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _occupied(settings: Settings, data_dir: Path) -> list[Path]:
    """What the data dir holds besides the backup target and work dir (they may be inside)."""
    if not data_dir.exists():
        return []
    keep = {
        settings.backup.resolved_directory(data_dir),
        settings.backup.resolved_work_dir(data_dir),
    }
    if settings.backup.recovery_key_file is not None:
        keep.add(settings.backup.resolved_recovery_key_file(data_dir))
    found = []
    for entry in sorted(data_dir.iterdir()):
        resolved = entry.resolve()
        if resolved in keep or any(_inside(k, resolved) for k in keep if resolved.is_dir()):
            continue
        found.append(entry)
    return found


def _unused_ring(settings: Settings, data_dir: Path, occupied: list[Path]) -> Path | None:
    """The managed data key ring when it is all the data dir holds: a command run on the new
    machine before the restore (`connector backup list`, say) generated it, and nothing in the
    data dir is encrypted with it, so the backup's ring may take its place."""
    if settings.encryption.key_file is not None:
        return None
    ring = settings.encryption.resolved_key_file(data_dir)
    if occupied != [ring.parent] or not ring.parent.is_dir() or ring.parent.is_symlink():
        return None
    return ring if [p.name for p in ring.parent.iterdir()] == [ring.name] else None


def _clear(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.restore")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _lookup(config: dict[str, Any], keys: tuple[str, str]) -> Any:
    section = config.get(keys[0])
    return section.get(keys[1]) if isinstance(section, dict) else None


def config_differences(backed_up: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Identity-critical settings that differ between the backup and this configuration."""
    return [
        f"{a}.{b}: backup {_lookup(backed_up, (a, b))!r}, now {_lookup(current, (a, b))!r}"
        for a, b in IDENTITY_KEYS
        if _lookup(backed_up, (a, b)) != _lookup(current, (a, b))
    ]


class _Postgres:
    """The embedded Postgres for the time of the restore (nothing else of the stack runs)."""

    def __init__(self, data_dir: Path, port: int) -> None:
        from connector.runtime.embedded import postgres_spec

        self.spec = postgres_spec(data_dir, port)
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> _Postgres:
        run_as = self.spec.run_as

        def drop() -> None:
            if run_as is not None:
                os.setgroups([])
                os.setgid(run_as[1])
                os.setuid(run_as[0])

        log = self.spec.log_file.open("ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=drop,
            )
        finally:
            log.close()
        deadline = time.monotonic() + POSTGRES_START_SECONDS
        while not await self.spec.ready():
            if self.process.returncode is not None or time.monotonic() > deadline:
                await self.__aexit__()
                raise NodeRestoreError(
                    f"the embedded Postgres did not start; see {self.spec.log_file}"
                )
            await asyncio.sleep(0.1)
        return self

    async def __aexit__(self, *_: object) -> None:
        proc = self.process
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGINT)  # fast shutdown: checkpoint and exit
        try:
            await asyncio.wait_for(proc.wait(), timeout=30)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


async def _resolve(service: BackupService, backup_id: str) -> BackupEntry:
    try:
        entry = await service.resolve(backup_id)
    except ConnectorError as exc:
        raise NodeRestoreError(str(exc)) from None
    if not entry.manifest.parts:
        raise NodeRestoreError(
            f"backup {entry.backup_id} holds the database only, not a whole node; restore it "
            "into a running connector with `connector restore --backup ID`"
        )
    return entry


async def restore_node(
    settings: Settings,
    backup_id: str,
    *,
    recovery_key: Path | None,
    force: bool,
    out: Out,
) -> RestoredNode:
    """Restore the node; raises NodeRestoreError with one line when it cannot."""
    started = time.monotonic()
    data_dir = await asyncio.to_thread(Path(settings.data_dir).resolve)
    occupied = await asyncio.to_thread(_occupied, settings, data_dir)
    unused_ring = await asyncio.to_thread(_unused_ring, settings, data_dir, occupied)
    if unused_ring is not None:
        occupied = []
    if occupied and not force:
        raise NodeRestoreError(
            f"data dir {data_dir} is not empty ({', '.join(p.name for p in occupied[:5])}"
            f"{', ...' if len(occupied) > 5 else ''}); restore a node onto an empty data dir, "
            "or pass --force to replace what is there"
        )
    recovery_file = recovery_key or settings.backup.resolved_recovery_key_file(data_dir)
    try:
        recovery = DataKeys.open(recovery_file.resolve(), create=False)
    except KeyFileError as exc:
        raise NodeRestoreError(
            f"the recovery key does not load ({exc}); pass --recovery-key FILE (the copy kept "
            "outside the node)"
        ) from None
    storage = build_storage(settings.backup, data_dir)
    work_dir = settings.backup.resolved_work_dir(data_dir)
    # Resolving and fetching need no keys yet; the data ring comes out of the secrets.
    probe = BackupService(settings.backup, data_dir, "", keys=recovery, storage=storage)
    entry = await _resolve(probe, backup_id)
    manifest = entry.manifest
    out(
        f"restoring node backup {manifest.backup_id} taken {manifest.created_at.isoformat()} "
        f"({entry.status.value}) from {storage.description} into {data_dir}"
    )
    if occupied:
        _clear(occupied)
        out(f"  removed what the data dir held: {', '.join(p.name for p in occupied)}")
    secure_data_dir(data_dir, tree=False)
    work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _noop(_: dict[str, Any]) -> None:
        return None

    async def part_file(name: str) -> tuple[Path, Callable[[], None]]:
        stored, problems, discard = await probe.fetch_part(manifest, name, _noop)
        if problems:
            discard()
            raise NodeRestoreError(f"backup {manifest.backup_id} is corrupt: {problems[0]}")
        return stored, discard

    # 1. Secrets: the data key ring first, everything else is encrypted with it.
    stored, discard = await part_file(node_parts.SECRETS_PART)
    try:
        files = node_parts.open_secrets(recovery, stored)
    except DecryptionError as exc:
        raise NodeRestoreError(
            f"the secrets of backup {manifest.backup_id} do not open with the recovery key "
            f"{recovery_file} ({exc})"
        ) from None
    finally:
        discard()
    ring_path = settings.encryption.resolved_key_file(data_dir)
    for name, content in files.items():
        if name == node_parts.DATA_KEYS:
            if (
                ring_path != unused_ring
                and ring_path.exists()
                and ring_path.read_bytes() != content
            ):
                raise NodeRestoreError(
                    f"{ring_path} exists and differs from the backup's data key ring; move it "
                    "away or point encryption.key_file elsewhere"
                )
            _write_private(ring_path, content)
        elif name.startswith(node_parts.IDENTITY_PREFIX):
            if settings.identity.key_path is None:
                _write_private(
                    data_dir / "keys" / name.removeprefix(node_parts.IDENTITY_PREFIX), content
                )
        elif name == node_parts.MANAGEMENT_KEY:
            _write_private(data_dir / node_parts.MANAGEMENT_KEY, content)
    own_recovery = settings.backup.resolved_recovery_key_file(data_dir)
    if not own_recovery.exists():
        # Later node backups of this node keep opening with the same recovery key.
        _write_private(own_recovery, recovery_file.read_bytes())
    keys = DataKeys.open(ring_path, create=False)
    out(f"  secrets: {len(files)} files (data key ring {ring_path}, identity keys, management key)")

    # 2. Temporal's database, where the dev server will open it.
    from connector.runtime.embedded import temporal_db_path

    db = temporal_db_path(data_dir)
    db.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)
    stored, discard = await part_file(node_parts.TEMPORAL_PART)
    try:
        await asyncio.to_thread(decrypt_file, keys, "backup", stored, db)
    except DecryptionError as exc:
        raise NodeRestoreError(f"temporal.db does not decrypt ({exc})") from None
    finally:
        discard()
    problems, counts = await asyncio.to_thread(node_parts.check_temporal_db, db)
    expected = manifest.parts[node_parts.TEMPORAL_PART].details
    if counts != expected:
        problems.append(f"temporal.db: {counts} restored, the manifest says {expected}")
    if problems:
        raise NodeRestoreError("; ".join(problems))
    out(
        f"  temporal: {counts['executions']} workflow executions "
        f"({counts['running']} running, {counts['closed']} closed), integrity ok"
    )

    # 3. The configuration, for the operator to compare.
    stored, discard = await part_file(node_parts.CONFIG_PART)
    target = data_dir / RESTORED_CONFIG
    try:
        await asyncio.to_thread(decrypt_file, keys, "backup", stored, target)
    except DecryptionError as exc:
        raise NodeRestoreError(f"config.json does not decrypt ({exc})") from None
    finally:
        discard()
    differences = config_differences(json.loads(target.read_bytes()), settings.redacted())
    out(f"  configuration (secrets redacted) written to {target}")
    for line in differences:
        out(f"  ! differs: {line}")

    # 4. The database.
    rows = await _restore_database(
        settings, data_dir, keys, storage, manifest.backup_id, manifest.sha256
    )
    out(f"  database: {rows} rows restored")
    secure_data_dir(data_dir)
    seconds = time.monotonic() - started
    out(f"node restored in {seconds:.1f} s; start it with `connector up`")
    return RestoredNode(
        backup_id=manifest.backup_id,
        temporal=counts,
        restored_rows=rows,
        secret_files=len(files),
        config_differences=differences,
        seconds=seconds,
    )


async def _restore_database(
    settings: Settings,
    data_dir: Path,
    keys: DataKeys,
    storage: Any,
    backup_id: str,
    sha256: str,
) -> int:
    async def run(url: str) -> int:
        service = BackupService(settings.backup, data_dir, url, keys=keys, storage=storage)
        try:
            outcome = await service.restore(backup_id, expected_sha256=sha256)
        except (ConnectorError, StorageError) as exc:
            raise NodeRestoreError(str(exc)) from None
        return sum(outcome.restored_rows.values())

    if settings.database.url is not None:
        from connector.stores.pool import database_url

        return await run(database_url(settings.database))
    from connector.runtime.embedded import free_port, postgres_url

    port = settings.database.embedded_port or free_port()
    async with _Postgres(data_dir, port):
        return await run(postgres_url(port))
