"""Backup targets: a local directory or an S3-compatible bucket, with the same publication rule.

Layout (under the directory, or the bucket prefix):

    <backup_id>/connector.dump       the pg_dump archive (custom format, compressed)
    <backup_id>/manifest.json        written LAST: a backup exists iff its manifest exists
    <backup_id>/verification.json    outcome of the latest verification (verified or failed)
    <backup_id>/temporal.db, secrets, config.json
                                     a whole-node backup's other parts (decision 0017)

The archive is first written under a temporary name (`.partial/<id>.dump.part` locally) or as an
S3 multipart upload, and only appears under its final key once complete; the manifest follows.
A crashed writer therefore never leaves something that `entries()` lists. A retry for the same
backup id starts by discarding whatever the previous attempt left.

The archive is encrypted by `BackupService` before it reaches a target. Locally, folders are
created 0700 and files 0600; on S3, `backup.s3.server_side_encryption` (`AES256`, or `aws:kms`
with `kms_key_id`) adds the bucket's encryption to every object written.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final, Protocol

from pydantic import ValidationError

from connector.core.backup import BackupEntry, BackupManifest, Verification
from connector.settings import BackupSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DUMP_NAME: Final = "connector.dump"
MANIFEST_NAME: Final = "manifest.json"
VERIFICATION_NAME: Final = "verification.json"
PARTIAL_DIR: Final = ".partial"
HASH_CHUNK: Final = 1024 * 1024

Progress = Callable[[int], None]


class StorageError(Exception):
    """The backup target cannot be read or written."""


@dataclass(frozen=True)
class FetchedObject:
    """A dump available as a local file, with the SHA-256 computed while reading it."""

    path: Path
    sha256: str
    size_bytes: int
    temporary: bool

    def discard(self) -> None:
        if self.temporary:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


class ObjectWriter(Protocol):
    key: str

    async def write(self, chunk: bytes) -> None: ...
    async def commit(self) -> None: ...
    async def abort(self) -> None: ...


class BackupStorage(Protocol):
    description: str

    def object_key(self, backup_id: str, name: str = DUMP_NAME) -> str: ...
    async def begin(self, backup_id: str, name: str = DUMP_NAME) -> ObjectWriter: ...
    async def publish_manifest(self, manifest: BackupManifest) -> None: ...
    async def write_verification(self, verification: Verification) -> None: ...
    async def entries(self) -> list[BackupEntry]: ...
    async def entry(self, backup_id: str) -> BackupEntry | None: ...
    async def fetch(
        self, backup_id: str, work_dir: Path, progress: Progress, name: str = DUMP_NAME
    ) -> FetchedObject: ...
    async def delete(self, backup_id: str) -> None: ...
    async def cleanup_partials(self, older_than: timedelta, keep: set[str]) -> int: ...


def _json(model: BackupManifest | Verification) -> bytes:
    return model.model_dump_json(indent=2).encode()


def _entry(manifest_raw: bytes, verification_raw: bytes | None) -> BackupEntry | None:
    try:
        manifest = BackupManifest.model_validate_json(manifest_raw)
        verification = (
            Verification.model_validate_json(verification_raw) if verification_raw else None
        )
    except ValidationError:
        return None
    return BackupEntry(manifest=manifest, verification=verification)


def _sorted(entries: list[BackupEntry]) -> list[BackupEntry]:
    return sorted(entries, key=lambda e: (e.manifest.created_at, e.backup_id))


# --- local directory -----------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _private_file(path: Path) -> BinaryIO:
    """Open `path` for writing, created (or truncated) with mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with _private_file(tmp) as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class _LocalWriter:
    def __init__(self, partial: Path, final: Path) -> None:
        self.key = str(final)
        self._partial = partial
        self._final = final
        self._fh = _private_file(partial)

    async def write(self, chunk: bytes) -> None:
        self._fh.write(chunk)

    async def commit(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.replace(self._partial, self._final)
        _fsync_dir(self._final.parent)

    async def abort(self) -> None:
        self._fh.close()
        with contextlib.suppress(FileNotFoundError):
            self._partial.unlink()


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"directory {root}"

    def _dir(self, backup_id: str) -> Path:
        if "/" in backup_id or backup_id.startswith(".") or not backup_id:
            raise StorageError(f"invalid backup id {backup_id!r}")
        return self.root / backup_id

    def object_key(self, backup_id: str, name: str = DUMP_NAME) -> str:
        return str(self._dir(backup_id) / name)

    def partial_path(self, backup_id: str, name: str = DUMP_NAME) -> Path:
        if name == DUMP_NAME:
            return self.root / PARTIAL_DIR / f"{backup_id}.dump.part"
        return self.root / PARTIAL_DIR / f"{backup_id}.{name}.part"

    async def begin(self, backup_id: str, name: str = DUMP_NAME) -> ObjectWriter:
        folder = self._dir(backup_id)
        if (folder / MANIFEST_NAME).exists():
            raise StorageError(f"backup {backup_id} is already published")
        if name == DUMP_NAME:
            # The archive comes first: whatever an earlier attempt left (a partial file, an
            # unpublished dump or node part) is discarded.
            shutil.rmtree(folder, ignore_errors=True)
        partial = self.partial_path(backup_id, name)
        partial.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        return _LocalWriter(partial, folder / name)

    async def publish_manifest(self, manifest: BackupManifest) -> None:
        _atomic_write(self._dir(manifest.backup_id) / MANIFEST_NAME, _json(manifest))

    async def write_verification(self, verification: Verification) -> None:
        _atomic_write(self._dir(verification.backup_id) / VERIFICATION_NAME, _json(verification))

    async def entry(self, backup_id: str) -> BackupEntry | None:
        folder = self._dir(backup_id)
        try:
            manifest = (folder / MANIFEST_NAME).read_bytes()
        except FileNotFoundError:
            return None
        try:
            verification: bytes | None = (folder / VERIFICATION_NAME).read_bytes()
        except FileNotFoundError:
            verification = None
        return _entry(manifest, verification)

    async def entries(self) -> list[BackupEntry]:
        if not self.root.exists():
            return []
        found: list[BackupEntry] = []
        for folder in self.root.iterdir():
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            entry = await self.entry(folder.name)
            if entry is not None:
                found.append(entry)
        return _sorted(found)

    async def fetch(
        self, backup_id: str, work_dir: Path, progress: Progress, name: str = DUMP_NAME
    ) -> FetchedObject:
        path = self._dir(backup_id) / name
        digest = hashlib.sha256()
        size = 0
        try:
            with path.open("rb") as fh:
                while chunk := fh.read(HASH_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    progress(size)
                    await asyncio.sleep(0)
        except FileNotFoundError as exc:
            raise StorageError(f"backup {backup_id} has no {name} at {path}") from exc
        return FetchedObject(path, digest.hexdigest(), size, temporary=False)

    async def delete(self, backup_id: str) -> None:
        folder = self._dir(backup_id)
        # The manifest goes first: from then on the backup is not listed, whatever happens next.
        with contextlib.suppress(FileNotFoundError):
            (folder / MANIFEST_NAME).unlink()
        shutil.rmtree(folder, ignore_errors=True)

    async def cleanup_partials(self, older_than: timedelta, keep: set[str]) -> int:
        removed = 0
        cutoff = time.time() - older_than.total_seconds()
        partial_dir = self.root / PARTIAL_DIR
        if partial_dir.exists():
            for part in partial_dir.iterdir():
                backup_id = part.name.removesuffix(".dump.part")
                if backup_id not in keep and part.stat().st_mtime < cutoff:
                    part.unlink(missing_ok=True)
                    removed += 1
        if self.root.exists():
            for folder in self.root.iterdir():
                if folder.name.startswith(".") or not folder.is_dir() or folder.name in keep:
                    continue
                if not (folder / MANIFEST_NAME).exists() and folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
        return removed


# --- S3-compatible bucket ------------------------------------------------------------------


class _S3Writer:
    def __init__(self, storage: S3Storage, key: str, upload_id: str, part_size: int) -> None:
        self.key = key
        self._s3 = storage
        self._upload_id = upload_id
        self._part_size = part_size
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []

    async def _flush(self, data: bytes) -> None:
        number = len(self._parts) + 1
        response = await asyncio.to_thread(
            self._s3.client.upload_part,
            Bucket=self._s3.bucket,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=data,
        )
        self._parts.append({"ETag": response["ETag"], "PartNumber": number})

    async def write(self, chunk: bytes) -> None:
        self._buffer.extend(chunk)
        while len(self._buffer) >= self._part_size:
            data = bytes(self._buffer[: self._part_size])
            del self._buffer[: self._part_size]
            await self._flush(data)

    async def commit(self) -> None:
        if self._buffer or not self._parts:
            await self._flush(bytes(self._buffer))
            self._buffer.clear()
        await asyncio.to_thread(
            self._s3.client.complete_multipart_upload,
            Bucket=self._s3.bucket,
            Key=self.key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},  # type: ignore[typeddict-item]  # boto3-stubs wants a literal list
        )

    async def abort(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(
                self._s3.client.abort_multipart_upload,
                Bucket=self._s3.bucket,
                Key=self.key,
                UploadId=self._upload_id,
            )


class S3Storage:
    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str,
        *,
        sse: str | None = None,
        kms_key_id: str | None = None,
        part_size: int = 16 * 1024 * 1024,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.part_size = part_size
        self._sse: dict[str, str] = {}
        if sse:
            self._sse["ServerSideEncryption"] = sse
            if kms_key_id:
                self._sse["SSEKMSKeyId"] = kms_key_id
        self.description = f"s3://{bucket}/{self.prefix}"

    def _key(self, backup_id: str, name: str) -> str:
        if "/" in backup_id or not backup_id:
            raise StorageError(f"invalid backup id {backup_id!r}")
        return f"{self.prefix}{backup_id}/{name}"

    def object_key(self, backup_id: str, name: str = DUMP_NAME) -> str:
        return self._key(backup_id, name)

    async def _get(self, key: str) -> bytes | None:
        def get() -> bytes | None:
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=key)
            except self.client.exceptions.NoSuchKey:
                return None
            body: bytes = response["Body"].read()
            return body

        return await asyncio.to_thread(get)

    async def _put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(
            self.client.put_object,
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType="application/json",
            **self._sse,  # type: ignore[arg-type]  # SSE keys are valid put_object arguments
        )

    async def _abort_uploads(self, key_prefix: str, *, older_than: datetime | None = None) -> int:
        def abort() -> int:
            aborted = 0
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=key_prefix):
                for upload in page.get("Uploads", []):
                    if older_than is not None and upload["Initiated"] >= older_than:
                        continue
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    aborted += 1
            return aborted

        return await asyncio.to_thread(abort)

    async def begin(self, backup_id: str, name: str = DUMP_NAME) -> ObjectWriter:
        if await self._get(self._key(backup_id, MANIFEST_NAME)) is not None:
            raise StorageError(f"backup {backup_id} is already published")
        key = self.object_key(backup_id, name)
        # Discard what an earlier attempt left: an open multipart upload or an unpublished dump.
        await self._abort_uploads(key)
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=key)
        response = await asyncio.to_thread(
            self.client.create_multipart_upload,
            Bucket=self.bucket,
            Key=key,
            ContentType="application/octet-stream",
            **self._sse,  # type: ignore[arg-type]  # SSE keys are valid arguments here
        )
        return _S3Writer(self, key, response["UploadId"], self.part_size)

    async def publish_manifest(self, manifest: BackupManifest) -> None:
        await self._put(self._key(manifest.backup_id, MANIFEST_NAME), _json(manifest))

    async def write_verification(self, verification: Verification) -> None:
        await self._put(self._key(verification.backup_id, VERIFICATION_NAME), _json(verification))

    async def entry(self, backup_id: str) -> BackupEntry | None:
        manifest = await self._get(self._key(backup_id, MANIFEST_NAME))
        if manifest is None:
            return None
        return _entry(manifest, await self._get(self._key(backup_id, VERIFICATION_NAME)))

    async def _keys(self) -> list[tuple[str, datetime]]:
        def listing() -> list[tuple[str, datetime]]:
            keys: list[tuple[str, datetime]] = []
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                keys.extend((o["Key"], o["LastModified"]) for o in page.get("Contents", []))
            return keys

        return await asyncio.to_thread(listing)

    async def entries(self) -> list[BackupEntry]:
        ids = [
            key[len(self.prefix) :].split("/", 1)[0]
            for key, _ in await self._keys()
            if key.endswith("/" + MANIFEST_NAME)
        ]
        found = [e for e in await asyncio.gather(*(self.entry(i) for i in ids)) if e is not None]
        return _sorted(found)

    async def fetch(
        self, backup_id: str, work_dir: Path, progress: Progress, name: str = DUMP_NAME
    ) -> FetchedObject:
        await asyncio.to_thread(work_dir.mkdir, parents=True, exist_ok=True)
        path = work_dir / (f"{backup_id}.dump" if name == DUMP_NAME else f"{backup_id}.{name}")
        key = self.object_key(backup_id, name)
        await asyncio.to_thread(work_dir.chmod, 0o700)
        loop = asyncio.get_running_loop()

        def download() -> tuple[str, int]:
            digest = hashlib.sha256()
            size = 0
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=key)
            except self.client.exceptions.NoSuchKey as exc:
                raise StorageError(f"backup {backup_id} has no {name} at {key}") from exc
            with _private_file(path) as fh:
                for chunk in response["Body"].iter_chunks(HASH_CHUNK):
                    digest.update(chunk)
                    fh.write(chunk)
                    size += len(chunk)
                    # Progress callbacks (activity heartbeats) belong on the event loop.
                    loop.call_soon_threadsafe(progress, size)
            return digest.hexdigest(), size

        sha256, size = await asyncio.to_thread(download)
        return FetchedObject(path, sha256, size, temporary=True)

    async def delete(self, backup_id: str) -> None:
        manifest_key = self._key(backup_id, MANIFEST_NAME)
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=manifest_key)
        folder = self._key(backup_id, "")
        for key, _ in await self._keys():
            if key.startswith(folder):
                await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=key)

    async def cleanup_partials(self, older_than: timedelta, keep: set[str]) -> int:
        cutoff = datetime.now(UTC) - older_than
        removed = 0
        keys = await self._keys()
        published = {
            key[len(self.prefix) :].split("/", 1)[0]
            for key, _ in keys
            if key.endswith("/" + MANIFEST_NAME)
        }
        for key, modified in keys:
            backup_id = key[len(self.prefix) :].split("/", 1)[0]
            if backup_id in published or backup_id in keep or modified >= cutoff:
                continue
            await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=key)
            removed += 1

        def stale_uploads() -> list[tuple[str, str]]:
            found: list[tuple[str, str]] = []
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for upload in page.get("Uploads", []):
                    backup_id = upload["Key"][len(self.prefix) :].split("/", 1)[0]
                    if backup_id not in keep and upload["Initiated"] < cutoff:
                        found.append((upload["Key"], upload["UploadId"]))
            return found

        for key, upload_id in await asyncio.to_thread(stale_uploads):
            await asyncio.to_thread(
                self.client.abort_multipart_upload,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
            )
            removed += 1
        return removed


def s3_client(settings: BackupSettings) -> S3Client:
    import boto3
    from botocore.config import Config

    s3 = settings.s3
    client: S3Client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint_url,
        region_name=s3.region,
        aws_access_key_id=s3.access_key_id.get_secret_value() if s3.access_key_id else None,
        aws_secret_access_key=(
            s3.secret_access_key.get_secret_value() if s3.secret_access_key else None
        ),
        config=Config(
            s3={"addressing_style": s3.addressing_style},
            retries={"max_attempts": 5, "mode": "standard"},
        ),
    )
    return client


def build_storage(settings: BackupSettings, data_dir: Path) -> BackupStorage:
    if settings.target == "s3":
        if not settings.s3.bucket:
            raise StorageError("backup.target is s3 but backup.s3.bucket is not set")
        return S3Storage(
            s3_client(settings),
            settings.s3.bucket,
            settings.s3.prefix,
            sse=settings.s3.server_side_encryption,
            kms_key_id=settings.s3.kms_key_id,
            part_size=settings.s3.part_size_bytes,
        )
    root = settings.resolved_directory(data_dir)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return LocalStorage(root)


def describe(entries: list[BackupEntry]) -> list[dict[str, Any]]:
    """Plain rows for `connector backup list --json`."""
    return [
        {
            "backup_id": e.backup_id,
            "created_at": e.manifest.created_at.isoformat(),
            "size_bytes": e.manifest.size_bytes,
            "rows": e.manifest.total_rows,
            "schema_version": e.manifest.schema_version.current,
            "status": e.status.value,
            "sha256": e.manifest.sha256,
            "node_parts": sorted(e.manifest.parts),
        }
        for e in entries
    ]


__all__ = [
    "BackupStorage",
    "FetchedObject",
    "LocalStorage",
    "ObjectWriter",
    "S3Storage",
    "StorageError",
    "build_storage",
    "describe",
]
