"""Sources and sinks of the data plane: HTTP, file (confined to a base path) and S3.

Everything streams in chunks (`chunk_bytes`, 1 MiB by default) and is pulled by the consumer of
the iterator, so a slow reader or sink slows the source down (back-pressure) and memory stays
flat whatever the size. Blocking libraries (file I/O, boto3) run in threads, one chunk at a time.

Address shapes and their rules are in `connector.data_address` (the same function validates
them when they are stored and here, when a source or sink is opened); what a consumer's request
may add to an HTTP source (sub-path, query, method, body) in `dataplane.proxy`.

Push destinations arrive as DSP DataAddresses: an HTTP `endpoint` (+ `authorization` /
`authType` / `method` endpoint properties), `endpointType` `AmazonS3` (`bucketName`,
`objectName`) or `File` (`path`).
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
from connector.data_address import check_destination, check_source, destination_kind
from connector.http.outbound import GuardedHttp, OutboundConfig, OutboundRefusedError
from connector.identity.paths import confine_path, open_confined
from connector.settings import DataPlaneSettings, S3DataSettings
from dataplane.proxy import ProxyOptions, PullRequest, proxied_url

__all__ = [
    "ByteRange",
    "Sink",
    "SourceStream",
    "forwarded_range",
    "open_sink",
    "open_source",
    "parse_range",
    "vet_source",
]

# A ranges-specifier of the bytes unit (RFC 9110 §14.1); the unit is case-insensitive.
_RANGES_RE: Final = re.compile(r"bytes=(.*)", re.IGNORECASE | re.DOTALL)
# One byte-range-spec (§14.1.2), `[0-9]` not `\d` (which would admit non-ASCII digits).
_SPEC_RE: Final = re.compile(r"[ \t]*([0-9]*)-([0-9]*)[ \t]*")
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


def _range_specs(header: str | None) -> list[tuple[str, str]] | None:
    """The (first, last) digit strings of each range-spec, or None if the header is absent,
    of another unit or malformed anywhere (§14.2: then it is ignored). Empty list elements are
    skipped (§5.6.1)."""
    if not header:
        return None
    match = _RANGES_RE.fullmatch(header.strip())
    if match is None:
        return None
    specs: list[tuple[str, str]] = []
    for element in match.group(1).split(","):
        if not element.strip(" \t"):
            continue
        spec = _SPEC_RE.fullmatch(element)
        if spec is None or not (spec.group(1) or spec.group(2)):
            return None
        specs.append((spec.group(1), spec.group(2)))
    return specs or None


def _spec_range(first: str, last: str, size: int) -> ByteRange | None:
    """One spec against `size` bytes: its range, None for "the whole object" (a suffix of an
    empty object), or RangeNotSatisfiableError (the caller decides what to do with it)."""
    if not first:  # suffix: the last N bytes
        n = _position(last)
        if n == 0:
            raise RangeNotSatisfiableError("zero-length suffix", size=size)
        if size == 0:
            return None  # an empty object has no last byte to point at: send it whole
        return ByteRange(max(0, size - n), size - 1)
    start = _position(first)
    if start >= size or (last and _position(last) < start):
        raise RangeNotSatisfiableError("outside the object", size=size)
    end = min(_position(last), size - 1) if last else size - 1
    return ByteRange(start, end)


def parse_range(header: str | None, size: int | None) -> ByteRange | None:
    """The byte range of a Range header to serve from an object of `size` bytes (RFC 9110 §14).

    Several ranges (`bytes=0-1,5-6`) are answered with the **first satisfiable one** alone, as
    a single-part 206 whose `Content-Range` says which bytes these are: never the whole object,
    never multipart/byteranges. None means "send the whole body with 200": no header, an
    unknown size, another unit, a syntactically invalid ranges-specifier, or a suffix range of
    an empty object (§14.2 lets a server ignore Range). The end is clamped to the object; a
    suffix longer than it is all of it.

    Raises:
        RangeNotSatisfiableError: no range is satisfiable (each starts at or beyond the end of
            the object, ends before its start, or is a zero-length suffix `bytes=-0`);
            answered 416 with `Content-Range: bytes */<size>`.
    """
    specs = _range_specs(header)
    if specs is None or size is None:
        return None
    for first, last in specs:
        try:
            return _spec_range(first, last, size)
        except RangeNotSatisfiableError:
            continue
    raise RangeNotSatisfiableError(f"unsatisfiable range {header!r}", size=size)


def forwarded_range(header: str | None) -> str | None:
    """The Range header an HTTP source gets for a consumer's: only the first range of a valid
    ranges-specifier (the source's size is not known here), nothing for an invalid one."""
    specs = _range_specs(header)
    if specs is None:
        return None
    first, last = specs[0]
    return f"bytes={first}-{last}"


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
    return str(address.get("type", "")).lower()


def _base_path(settings: DataPlaneSettings) -> Path:
    if settings.file_base_path is None:
        raise BadRequestError("file data addresses are disabled (no dataplane.file_base_path)")
    return settings.file_base_path


def vet_source(
    address: dict[str, Any],
    settings: DataPlaneSettings,
    outbound: OutboundConfig | None = None,
) -> None:
    """Refuse a source before a flow starts: the rules of `connector.data_address` (the ones
    the management API applied when the asset was stored), and a file must exist.

    Raises:
        UnprocessableError: the address breaks a rule (path escapes included).
        BadRequestError: no such file.
    """
    check_source(address, settings, outbound or OutboundConfig())
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
    request: PullRequest | None = None,
) -> SourceStream:
    """Open a source for reading, honouring one HTTP byte range (see `parse_range`) and, for
    an HTTP source, what its proxy options let `request` add (`dataplane.proxy`).

    Raises:
        UnprocessableError: the address breaks a rule of `connector.data_address`.
        BadRequestError: path escape, a refused sub-path or query.
        RangeNotSatisfiableError: a file or S3 object and a range outside it.
        NotFoundError: the object does not exist; a sub-path of a source that serves none.
        UnavailableError: the source cannot be reached.
    """
    check_source(address, settings, http.config)
    request = request or PullRequest()
    kind = _kind(address)
    if kind != "http" and request.sub_path:
        raise NotFoundError("this source serves no sub-paths")
    if kind == "file":
        return await _file_source(address, settings, range_header)
    if kind == "s3":
        return await _s3_source(address, settings, range_header)
    return await _http_source(address, settings, http, range_header, request)


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
    request: PullRequest,
) -> SourceStream:
    base = address.get("baseUrl") or address.get("endpoint")
    if not isinstance(base, str) or not base:
        raise BadRequestError("an HTTP address needs baseUrl")
    options = ProxyOptions.of(address)
    url = proxied_url(base, request, options)
    headers = {str(k): str(v) for k, v in (address.get("headers") or {}).items()}
    forwarded = forwarded_range(range_header)
    if forwarded:
        headers["Range"] = forwarded
    method = request.method if options.method else ("HEAD" if request.method == "HEAD" else "GET")
    content: AsyncIterator[bytes] | None = None
    if options.body and request.body is not None and method != "HEAD":
        content = request.body
        if request.content_type:
            headers["Content-Type"] = request.content_type
        if request.content_length and request.content_length.isdigit():
            headers["Content-Length"] = request.content_length
    stack = contextlib.AsyncExitStack()
    try:
        resp = await stack.enter_async_context(
            http.stream(method, url, headers=headers, content=content)
        )
    except OutboundRefusedError:
        await stack.aclose()
        raise
    except (httpx.HTTPError, OSError) as exc:
        await stack.aclose()
        raise UnavailableError(f"source unreachable: {type(exc).__name__}") from None
    if resp.status_code == 404:
        await stack.aclose()
        raise NotFoundError("the source has no such resource")
    if resp.status_code == 416 and forwarded:
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
    elif resp.status_code == 206:
        # One range was asked for: a multipart (or unlabelled) answer cannot be passed on as
        # the single-part 206 the consumer is promised.
        await stack.aclose()
        raise UnavailableError("the source answered a range without a single Content-Range")
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
        if self._method not in ("POST", "PUT", "PATCH"):
            raise BadRequestError(f"a push uses POST, PUT or PATCH, not {self._method!r}")
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
    """The sink for a push destination (a DSP DataAddress or an internal address), after the
    rules of `connector.data_address` (the ones the transfer routes applied on receipt).

    Raises:
        UnprocessableError: unsupported destination, a bad endpoint, bucket or key, or a file
            path outside the base path.
    """
    check_destination(address, settings, http.config)
    kind = destination_kind(address)
    if kind == "s3":
        return S3Sink(address, settings)
    if kind == "file":
        return FileSink(address, settings)
    return HttpSink(address, http, settings.push_timeout_seconds)
