"""Sources and sinks of the data plane: HTTP, file (confined to a base path) and S3.

Everything streams in chunks (`chunk_bytes`, 1 MiB by default) and is pulled by the consumer of
the iterator, so a slow reader or sink slows the source down (back-pressure) and memory stays
flat whatever the size. Blocking libraries (file I/O, boto3) run in threads, one chunk at a time.

Address shapes (asset data addresses, `type` + fields):
- `{"type": "file", "path": "<relative to dataplane.file_base_path>"}`
- `{"type": "http", "baseUrl": "https://...", "proxyPath": false, "headers": {...}}`
- `{"type": "s3", "bucket": "...", "key": "..."}` (endpoint and credentials from settings)

Push destinations arrive as DSP DataAddresses: an HTTP `endpoint` (+ `authorization` /
`authType` endpoint properties), `endpointType` `AmazonS3` (`bucketName`, `objectName`) or
`File` (`path`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

from connector.core.errors import (
    BadRequestError,
    NotFoundError,
    RangeNotSatisfiableError,
    UnavailableError,
)
from connector.identity.paths import confine_path, open_confined
from connector.outbound import GuardedHttp, OutboundRefusedError
from connector.settings import DataPlaneSettings, S3DataSettings

__all__ = [
    "ByteRange",
    "Sink",
    "SourceStream",
    "open_sink",
    "open_source",
    "parse_range",
    "vet_source",
]

# One byte-range-spec (RFC 9110 §14.1.2); the unit is case-insensitive, `[0-9]` not `\d` (which
# would admit non-ASCII digits). Anything else (other units, several ranges) is ignored.
_RANGE_RE: Final = re.compile(r"bytes=[ \t]*([0-9]*)-([0-9]*)[ \t]*", re.IGNORECASE)
# A position with more digits lies beyond any object (and int() refuses > 4300 digits).
_MAX_DIGITS: Final = 18


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def _position(digits: str) -> int:
    return int(digits) if len(digits) <= _MAX_DIGITS else 10**_MAX_DIGITS


def parse_range(header: str | None, size: int | None) -> ByteRange | None:
    """The one `bytes=` range of a Range header against an object of `size` bytes (RFC 9110 §14).

    None means "send the whole body with 200": no header, an unknown size, another unit, several
    ranges, a syntactically invalid range, or a suffix range of an empty object (§14.2 lets a
    server ignore Range). The end is clamped to the object; a suffix longer than it is all of it.

    Raises:
        RangeNotSatisfiableError: the start lies at or beyond the end of the object, the end lies
            before the start, or a zero-length suffix (`bytes=-0`); answered 416 with
            `Content-Range: bytes */<size>`.
    """
    if not header or size is None:
        return None
    match = _RANGE_RE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first:  # suffix: the last N bytes
        if not last:
            return None  # `bytes=-`
        n = _position(last)
        if n == 0:
            raise RangeNotSatisfiableError(f"unsatisfiable range {header!r}", size=size)
        if size == 0:
            return None  # an empty object has no last byte to point at: send it whole
        return ByteRange(max(0, size - n), size - 1)
    start = _position(first)
    if start >= size or (last and _position(last) < start):
        raise RangeNotSatisfiableError(f"unsatisfiable range {header!r}", size=size)
    end = min(_position(last), size - 1) if last else size - 1
    return ByteRange(start, end)


@dataclass
class SourceStream:
    """An open source: `chunks` yields the (ranged) body; `close` releases it."""

    chunks: AsyncIterator[bytes]
    size: int | None  # bytes `chunks` will yield, when known
    total_size: int | None  # size of the whole object, when known
    content_type: str = "application/octet-stream"
    byte_range: ByteRange | None = None
    _close: list[Callable[[], Any]] = field(default_factory=list)

    async def aclose(self) -> None:
        for close in reversed(self._close):
            result = close()
            if asyncio.iscoroutine(result):
                with contextlib.suppress(Exception):
                    await result


def _kind(address: dict[str, Any]) -> str:
    kind = str(address.get("type", "")).lower()
    if kind not in ("file", "http", "s3"):
        raise BadRequestError(f"unsupported data address type {address.get('type')!r}")
    return kind


def _base_path(settings: DataPlaneSettings) -> Path:
    if settings.file_base_path is None:
        raise BadRequestError("file data addresses are disabled (no dataplane.file_base_path)")
    return settings.file_base_path


def vet_source(address: dict[str, Any], settings: DataPlaneSettings) -> None:
    """Refuse a source before a flow starts: unknown type, or a file outside the base path.

    Raises:
        BadRequestError: the address is unusable (path escapes included).
    """
    if _kind(address) == "file":
        try:
            confine_path(_base_path(settings), str(address.get("path", "")), must_exist=True)
        except FileNotFoundError:
            raise BadRequestError(f"no file {address.get('path')!r}") from None


async def open_source(
    address: dict[str, Any],
    settings: DataPlaneSettings,
    http: GuardedHttp,
    *,
    range_header: str | None = None,
    sub_path: str | None = None,
) -> SourceStream:
    """Open a source for reading, honouring one HTTP byte range (see `parse_range`).

    Raises:
        BadRequestError: bad address, path escape.
        RangeNotSatisfiableError: a file or S3 object and a range outside it.
        NotFoundError: the object does not exist.
        UnavailableError: the source cannot be reached.
    """
    kind = _kind(address)
    if kind == "file":
        return await _file_source(address, settings, range_header)
    if kind == "s3":
        return await _s3_source(address, settings, range_header)
    return await _http_source(address, settings, http, range_header, sub_path)


async def _file_source(
    address: dict[str, Any], settings: DataPlaneSettings, range_header: str | None
) -> SourceStream:
    base = _base_path(settings)
    relative = str(address.get("path", ""))
    try:
        fh = await asyncio.to_thread(open_confined, base, relative)
    except (FileNotFoundError, IsADirectoryError):
        raise NotFoundError(f"no file {relative!r}") from None
    except OSError as exc:  # ELOOP: a symlink as the final component
        raise BadRequestError(f"file {relative!r} refused: {exc.strerror}") from None
    size = os.fstat(fh.fileno()).st_size
    try:
        byte_range = parse_range(range_header, size)
    except RangeNotSatisfiableError:
        fh.close()
        raise
    start = byte_range.start if byte_range else 0
    remaining = byte_range.length if byte_range else size
    chunk = settings.chunk_bytes

    async def chunks() -> AsyncIterator[bytes]:
        left = remaining
        if start:
            await asyncio.to_thread(fh.seek, start)
        while left > 0:
            data = await asyncio.to_thread(fh.read, min(chunk, left))
            if not data:
                raise UnavailableError("file shrank while being read")
            left -= len(data)
            yield data

    return SourceStream(chunks(), remaining, size, byte_range=byte_range, _close=[fh.close])


def s3_client(settings: S3DataSettings) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region or "us-east-1",
        aws_access_key_id=(
            settings.access_key_id.get_secret_value() if settings.access_key_id else None
        ),
        aws_secret_access_key=(
            settings.secret_access_key.get_secret_value() if settings.secret_access_key else None
        ),
        config=Config(s3={"addressing_style": settings.addressing_style}),
    )


def _s3_location(address: dict[str, Any]) -> tuple[str, str]:
    bucket = address.get("bucket") or address.get("bucketName")
    key = address.get("key") or address.get("objectName")
    if not isinstance(bucket, str) or not isinstance(key, str) or not bucket or not key:
        raise BadRequestError("an S3 address needs bucket and key")
    return bucket, key


async def _s3_source(
    address: dict[str, Any], settings: DataPlaneSettings, range_header: str | None
) -> SourceStream:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = _s3_location(address)
    client = await asyncio.to_thread(s3_client, settings.s3)
    try:
        head = await asyncio.to_thread(client.head_object, Bucket=bucket, Key=key)
        size = int(head["ContentLength"])
        byte_range = parse_range(range_header, size)
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if byte_range is not None:
            kwargs["Range"] = f"bytes={byte_range.start}-{byte_range.end}"
        # The object may go between HEAD and GET: mapped like a missing one.
        body = (await asyncio.to_thread(client.get_object, **kwargs))["Body"]
    except (ClientError, BotoCoreError) as exc:
        raise _s3_error(exc, f"s3://{bucket}/{key}") from None
    chunk = settings.chunk_bytes

    async def chunks() -> AsyncIterator[bytes]:
        while True:
            try:
                data = await asyncio.to_thread(body.read, chunk)
            except (ClientError, BotoCoreError) as exc:
                raise _s3_error(exc, f"s3://{bucket}/{key}") from None
            if not data:
                return
            yield data

    return SourceStream(
        chunks(),
        byte_range.length if byte_range else size,
        size,
        head.get("ContentType") or "application/octet-stream",
        byte_range,
        [body.close],
    )


async def _http_source(
    address: dict[str, Any],
    settings: DataPlaneSettings,
    http: GuardedHttp,
    range_header: str | None,
    sub_path: str | None,
) -> SourceStream:
    base = address.get("baseUrl") or address.get("endpoint")
    if not isinstance(base, str) or not base:
        raise BadRequestError("an HTTP address needs baseUrl")
    url = base
    if sub_path:
        if not address.get("proxyPath"):
            raise NotFoundError("this source serves no sub-paths")
        url = base.rstrip("/") + "/" + sub_path.lstrip("/")
    headers = {str(k): str(v) for k, v in (address.get("headers") or {}).items()}
    if range_header:
        headers["Range"] = range_header
    stack = contextlib.AsyncExitStack()
    try:
        resp = await stack.enter_async_context(http.stream("GET", url, headers=headers))
    except OutboundRefusedError:
        await stack.aclose()
        raise
    except (httpx.HTTPError, OSError) as exc:
        await stack.aclose()
        raise UnavailableError(f"source unreachable: {type(exc).__name__}") from None
    if resp.status_code == 404:
        await stack.aclose()
        raise NotFoundError("the source has no such resource")
    if resp.status_code == 416 and range_header:
        # The client's range, forwarded: its fault, not the source's (RFC 9110 §15.5.17).
        await stack.aclose()
        unsatisfied = re.fullmatch(r"bytes \*/(\d+)", resp.headers.get("content-range", ""))
        if unsatisfied:
            raise RangeNotSatisfiableError(
                "the range lies outside the resource", size=int(unsatisfied.group(1))
            )
        raise BadRequestError("the source cannot serve this range")
    if resp.status_code >= 400:
        await stack.aclose()
        raise UnavailableError(f"the source answered {resp.status_code}")
    length = resp.headers.get("content-length")
    size = int(length) if length and length.isdigit() else None
    byte_range: ByteRange | None = None
    total = size
    content_range = resp.headers.get("content-range", "")
    match = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", content_range)
    if resp.status_code == 206 and match:
        byte_range = ByteRange(int(match.group(1)), int(match.group(2)))
        total = int(match.group(3)) if match.group(3).isdigit() else None
    chunk = settings.chunk_bytes

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async for data in resp.aiter_bytes(chunk):
                yield data
        except httpx.HTTPError as exc:
            raise UnavailableError(f"source failed mid-stream: {type(exc).__name__}") from None

    return SourceStream(
        chunks(),
        size,
        total,
        resp.headers.get("content-type", "application/octet-stream"),
        byte_range,
        [stack.aclose],
    )


# --------------------------------------------------------------------------- sinks


class Sink:
    """Writes a stream to a destination; a failed write leaves no partial result behind where
    the destination allows it (file: temp + rename; S3: aborted multipart upload; HTTP: the
    declared Content-Length lets the receiver detect a truncated body)."""

    async def write(self, chunks: AsyncIterator[bytes], size: int | None) -> int:
        raise NotImplementedError


def _property(address: dict[str, Any], name: str) -> str | None:
    for prop in address.get("endpointProperties") or []:
        if isinstance(prop, dict) and prop.get("name") in (
            name,
            f"https://w3id.org/edc/v0.0.1/ns/{name}",
        ):
            value = prop.get("value")
            return str(value) if value is not None else None
    value = address.get(name)
    return str(value) if isinstance(value, str) else None


class HttpSink(Sink):
    def __init__(self, address: dict[str, Any], http: GuardedHttp, timeout: float) -> None:
        endpoint = address.get("endpoint") or address.get("baseUrl")
        if not isinstance(endpoint, str) or not endpoint:
            raise BadRequestError("a push destination needs an endpoint")
        self._url = endpoint
        self._http = http
        self._timeout = timeout
        self._method = (_property(address, "method") or "POST").upper()
        self._headers: dict[str, str] = {"Content-Type": "application/octet-stream"}
        token = _property(address, "authorization")
        if token:
            auth_type = (_property(address, "authType") or "bearer").lower()
            self._headers["Authorization"] = f"Bearer {token}" if auth_type == "bearer" else token

    async def write(self, chunks: AsyncIterator[bytes], size: int | None) -> int:
        headers = dict(self._headers)
        if size is not None:
            # Declared length: a receiver sees a cut connection as a short body, not a file.
            headers["Content-Length"] = str(size)
        sent = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal sent
            async for data in chunks:
                sent += len(data)
                yield data

        try:
            async with self._http.stream(
                self._method,
                self._url,
                headers=headers,
                content=counted(),
                follow_redirects=False,
            ) as resp:
                await resp.aread()
        except OutboundRefusedError:
            raise
        except (httpx.HTTPError, OSError) as exc:
            raise UnavailableError(
                f"push to the sink failed: {type(exc).__name__}: {exc}"
            ) from None
        if resp.status_code >= 300:
            raise UnavailableError(f"the sink answered {resp.status_code}")
        return sent


class FileSink(Sink):
    def __init__(self, address: dict[str, Any], settings: DataPlaneSettings) -> None:
        relative = _property(address, "path") or str(address.get("path", ""))
        self._target = confine_path(_base_path(settings), relative)

    async def write(self, chunks: AsyncIterator[bytes], size: int | None) -> int:
        self._target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._target.parent, prefix=".partial-")
        written = 0
        try:
            with os.fdopen(fd, "wb") as fh:
                async for data in chunks:
                    await asyncio.to_thread(fh.write, data)
                    written += len(data)
            if size is not None and written != size:
                raise UnavailableError(f"source ended after {written} of {size} bytes")
            os.replace(tmp, self._target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return written


def _unavailable(err: NotFoundError | UnavailableError) -> UnavailableError:
    # For a sink, even a missing bucket is the destination failing, not a missing resource.
    return err if isinstance(err, UnavailableError) else UnavailableError(*err.reasons)


def _s3_error(exc: Exception, where: str) -> NotFoundError | UnavailableError:
    """An S3 (botocore) failure in the connector's vocabulary (missing object or bucket: not
    found)."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
            return NotFoundError(f"no object {where}")
        return UnavailableError(f"S3 error {code} for {where}")
    return UnavailableError(f"S3 unreachable for {where}: {exc}")


class S3Sink(Sink):
    def __init__(self, address: dict[str, Any], settings: DataPlaneSettings) -> None:
        props = {
            "bucket": _property(address, "bucketName") or address.get("bucket"),
            "key": _property(address, "objectName") or address.get("key"),
        }
        self._bucket, self._key = _s3_location(props)
        self._settings = settings

    async def write(self, chunks: AsyncIterator[bytes], size: int | None) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        where = f"s3://{self._bucket}/{self._key}"
        client = await asyncio.to_thread(s3_client, self._settings.s3)
        part_size = self._settings.s3.part_size_bytes
        try:
            upload = await asyncio.to_thread(
                client.create_multipart_upload, Bucket=self._bucket, Key=self._key
            )
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(_s3_error(exc, where)) from None
        upload_id = upload["UploadId"]
        parts: list[dict[str, Any]] = []
        buffer = bytearray()
        written = 0

        async def flush() -> None:
            number = len(parts) + 1
            resp = await asyncio.to_thread(
                client.upload_part,
                Bucket=self._bucket,
                Key=self._key,
                UploadId=upload_id,
                PartNumber=number,
                Body=bytes(buffer),
            )
            parts.append({"ETag": resp["ETag"], "PartNumber": number})
            buffer.clear()

        try:
            async for data in chunks:
                buffer.extend(data)
                written += len(data)
                if len(buffer) >= part_size:
                    await flush()
            if size is not None and written != size:
                # Never complete a short (or long) copy into an object that looks whole.
                raise UnavailableError(f"source ended after {written} of {size} bytes")
            if buffer or not parts:
                await flush()
            await asyncio.to_thread(
                client.complete_multipart_upload,
                Bucket=self._bucket,
                Key=self._key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(
                    client.abort_multipart_upload,
                    Bucket=self._bucket,
                    Key=self._key,
                    UploadId=upload_id,
                )
            if isinstance(exc, ClientError | BotoCoreError):
                raise _unavailable(_s3_error(exc, where)) from None
            raise
        return written


def open_sink(address: dict[str, Any], settings: DataPlaneSettings, http: GuardedHttp) -> Sink:
    """The sink for a push destination (a DSP DataAddress or an internal address).

    Raises:
        BadRequestError: unsupported destination, or a file path outside the base path.
    """
    endpoint_type = str(address.get("endpointType") or address.get("type") or "")
    lowered = endpoint_type.lower()
    if lowered in ("amazons3", "s3"):
        return S3Sink(address, settings)
    if lowered in ("file",):
        return FileSink(address, settings)
    if "http" in lowered or lowered == "":
        return HttpSink(address, http, settings.push_timeout_seconds)
    raise BadRequestError(f"unsupported push destination type {endpoint_type!r}")
