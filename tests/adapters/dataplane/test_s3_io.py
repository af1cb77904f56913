"""S3 sources and sinks of the data plane (dataplane/io.py) against a real S3-compatible server
(moto's threaded server on loopback): chunked streaming of a multipart object, byte ranges,
multipart upload through the sink, the error mapping, and the abort of a failed upload.

S3 calls go through boto3 with the endpoint of `dataplane.s3`, not through the SSRF-guarded HTTP
client; `open_source` / `open_sink` still take one, so a loopback-allowing client is passed."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer
from pydantic import SecretStr

from connector.core.errors import (
    BadRequestError,
    ConnectorError,
    NotFoundError,
    RangeNotSatisfiableError,
    UnavailableError,
)
from connector.http.outbound import GuardedHttp, OutboundConfig
from connector.runtime.embedded import free_port
from connector.settings import DataPlaneSettings, S3DataSettings
from dataplane import io
from dataplane.io import ByteRange, open_sink, open_source, vet_source

MIB = 1024 * 1024
PART = 5 * MIB
CHUNK = MIB  # dataplane.chunk_bytes
BIG = 12 * MIB
BUCKET = "dataplane-s3-io"
SMALL = bytes(range(256)) * 4  # 1024 bytes, byte i == i % 256


def _payload(size: int, seed: int) -> bytes:
    # Deterministic, incompressible bytes (an extendable-output hash of the seed).
    return hashlib.shake_256(seed.to_bytes(4, "big")).digest(size)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _boto(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(s3={"addressing_style": "path"}),
    )


def _settings(endpoint: str) -> DataPlaneSettings:
    return DataPlaneSettings(
        chunk_bytes=CHUNK,
        s3=S3DataSettings(
            endpoint_url=endpoint,
            region="us-east-1",
            access_key_id=SecretStr("test"),
            secret_access_key=SecretStr("test"),
            addressing_style="path",
            part_size_bytes=PART,
        ),
    )


def _source(key: str, bucket: str = BUCKET) -> dict[str, Any]:
    return {"type": "s3", "bucket": bucket, "key": key}


def _destination(key: str, bucket: str = BUCKET) -> dict[str, Any]:
    # A DSP DataAddress as a push destination arrives.
    return {"endpointType": "AmazonS3", "bucketName": bucket, "objectName": key}


def _new_key() -> str:
    return f"objects/{uuid.uuid4().hex}.bin"


async def _chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


async def _collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in chunks]


def _no_uploads(s3: Any) -> bool:
    return not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")


def _exists(s3: Any, key: str) -> bool:
    return bool(s3.list_objects_v2(Bucket=BUCKET, Prefix=key).get("KeyCount", 0))


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        _boto(f"http://127.0.0.1:{port}").create_bucket(Bucket=BUCKET)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3(endpoint: str) -> Any:
    return _boto(endpoint)


@pytest.fixture(scope="module")
def settings(endpoint: str) -> DataPlaneSettings:
    return _settings(endpoint)


@pytest.fixture
async def http() -> AsyncIterator[GuardedHttp]:
    async with GuardedHttp(OutboundConfig(allow_cidrs=("127.0.0.0/8",), allow_http=True)) as h:
        yield h


@pytest.fixture(scope="module")
def big_object(s3: Any) -> tuple[str, bytes]:
    """A 12 MiB object uploaded in parts of 5, 5 and 2 MiB (a real multipart object)."""
    data = _payload(BIG, seed=1)
    key = "source/big.bin"
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key)
    parts = []
    for number, offset in enumerate(range(0, BIG, PART), start=1):
        resp = s3.upload_part(
            Bucket=BUCKET,
            Key=key,
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=data[offset : offset + PART],
        )
        parts.append({"ETag": resp["ETag"], "PartNumber": number})
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    assert s3.head_object(Bucket=BUCKET, Key=key)["ETag"].strip('"').endswith("-3")
    return key, data


@pytest.fixture(scope="module")
def small_object(s3: Any) -> str:
    key = "source/small.bin"
    s3.put_object(Bucket=BUCKET, Key=key, Body=SMALL, ContentType="text/plain")
    return key


# --------------------------------------------------------------------------- source


async def test_a_multipart_object_streams_in_bounded_chunks_with_the_same_digest(
    settings: DataPlaneSettings, http: GuardedHttp, big_object: tuple[str, bytes]
) -> None:
    key, data = big_object
    vet_source(_source(key), settings)  # an S3 address passes vetting
    source = await open_source(_source(key), settings, http)
    try:
        chunks = await _collect(source.chunks)
    finally:
        await source.aclose()
    assert source.size == source.total_size == BIG
    assert source.byte_range is None
    assert source.content_type == "binary/octet-stream"  # what moto stores by default
    assert _sha(b"".join(chunks)) == _sha(data)
    assert len(chunks) >= BIG // CHUNK
    assert max(len(c) for c in chunks) <= CHUNK < BIG


async def test_the_content_type_of_the_object_is_reported(
    settings: DataPlaneSettings, http: GuardedHttp, small_object: str
) -> None:
    source = await open_source(_source(small_object), settings, http)
    try:
        assert b"".join(await _collect(source.chunks)) == SMALL
    finally:
        await source.aclose()
    assert source.content_type == "text/plain"
    assert source.size == source.total_size == len(SMALL)


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=10-19", 10, 19),
        ("bytes=-16", len(SMALL) - 16, len(SMALL) - 1),
        ("bytes=1000-", 1000, len(SMALL) - 1),
        ("bytes=1020-5000", 1020, len(SMALL) - 1),  # end clamped to the object
        ("bytes=-5000", 0, len(SMALL) - 1),  # suffix longer than the object: all of it
        ("BYTES=0-0", 0, 0),
        ("bytes=0-1,5-6", 0, 1),  # several ranges: the first satisfiable one alone
        ("bytes=5000-,20-29", 20, 29),
    ],
)
async def test_a_byte_range_returns_exactly_those_bytes(
    settings: DataPlaneSettings,
    http: GuardedHttp,
    small_object: str,
    header: str,
    start: int,
    end: int,
) -> None:
    source = await open_source(_source(small_object), settings, http, range_header=header)
    try:
        body = b"".join(await _collect(source.chunks))
    finally:
        await source.aclose()
    assert body == SMALL[start : end + 1]
    assert source.byte_range == ByteRange(start, end)
    assert source.size == end - start + 1 == len(body)
    assert source.total_size == len(SMALL)


async def test_a_range_across_a_part_boundary_of_a_multipart_object(
    settings: DataPlaneSettings, http: GuardedHttp, big_object: tuple[str, bytes]
) -> None:
    key, data = big_object
    start, end = PART - 100, PART + 99
    source = await open_source(_source(key), settings, http, range_header=f"bytes={start}-{end}")
    try:
        body = b"".join(await _collect(source.chunks))
    finally:
        await source.aclose()
    assert body == data[start : end + 1]
    assert source.byte_range == ByteRange(start, end)
    assert (source.size, source.total_size) == (200, BIG)


@pytest.mark.parametrize("header", ["items=0-5", "bytes=0-1,x-y", "bytes=x-y"])
async def test_an_ignored_range_sends_the_whole_object(
    settings: DataPlaneSettings, http: GuardedHttp, small_object: str, header: str
) -> None:
    source = await open_source(_source(small_object), settings, http, range_header=header)
    try:
        assert b"".join(await _collect(source.chunks)) == SMALL
    finally:
        await source.aclose()
    assert source.byte_range is None


@pytest.mark.parametrize("header", [f"bytes={len(SMALL)}-", "bytes=5000-6000", "bytes=-0"])
async def test_an_unsatisfiable_range_raises_with_the_object_size(
    settings: DataPlaneSettings, http: GuardedHttp, small_object: str, header: str
) -> None:
    with pytest.raises(RangeNotSatisfiableError) as info:
        await open_source(_source(small_object), settings, http, range_header=header)
    assert info.value.size == len(SMALL)


async def test_a_missing_key_is_not_found(settings: DataPlaneSettings, http: GuardedHttp) -> None:
    with pytest.raises(NotFoundError):
        await open_source(_source("source/absent.bin"), settings, http)


async def test_a_missing_bucket_is_not_found(
    settings: DataPlaneSettings, http: GuardedHttp
) -> None:
    with pytest.raises(NotFoundError):
        await open_source(_source("x.bin", bucket="no-such-bucket"), settings, http)


@pytest.mark.parametrize(
    "address",
    [
        {"type": "s3", "bucket": BUCKET},
        {"type": "s3", "key": "x.bin"},
        {"type": "s3", "bucket": "", "key": "x.bin"},
        {"type": "s3", "bucket": BUCKET, "key": 5},
    ],
)
async def test_an_s3_address_without_bucket_and_key_is_a_bad_request(
    settings: DataPlaneSettings, http: GuardedHttp, address: dict[str, Any]
) -> None:
    with pytest.raises(BadRequestError):
        await open_source(address, settings, http)
    with pytest.raises(BadRequestError):
        open_sink({**address, "type": "s3"}, settings, http)


async def test_an_unreachable_endpoint_is_unavailable(http: GuardedHttp) -> None:
    # Nothing listens on this port: connection refused (boto retries, then gives up).
    dead = _settings(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(UnavailableError):
        await open_source(_source("x.bin"), dead, http)


async def test_an_object_deleted_between_head_and_get_is_not_found(
    endpoint: str,
    settings: DataPlaneSettings,
    http: GuardedHttp,
    s3: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The object vanishes after `head_object` succeeded (a concurrent delete): the `get_object`
    that follows must map to the connector's errors like the head does."""
    key = _new_key()
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"short-lived")
    real_client = io.s3_client

    def racing_client(s3_settings: S3DataSettings) -> Any:
        client = real_client(s3_settings)

        def delete_after_head(**_: Any) -> None:
            s3.delete_object(Bucket=BUCKET, Key=key)

        client.meta.events.register("after-call.s3.HeadObject", delete_after_head)
        return client

    monkeypatch.setattr(io, "s3_client", racing_client)
    with pytest.raises(ConnectorError) as info:
        await open_source(_source(key), settings, http)
    assert isinstance(info.value, NotFoundError)


# --------------------------------------------------------------------------- sink


@pytest.mark.parametrize("chunk", [CHUNK, 777_777])
async def test_the_sink_uploads_a_stream_bigger_than_a_part_in_several_parts(
    settings: DataPlaneSettings, http: GuardedHttp, s3: Any, chunk: int
) -> None:
    data = _payload(BIG, seed=2)
    key = _new_key()
    written = await open_sink(_destination(key), settings, http).write(
        _chunked(data, chunk), len(data)
    )
    assert written == BIG
    obj = s3.get_object(Bucket=BUCKET, Key=key)
    assert _sha(obj["Body"].read()) == _sha(data)
    assert obj["ContentLength"] == BIG
    # 12 MiB with parts of at least 5 MiB: three parts (moto refuses a non-last part < 5 MiB).
    assert obj["ETag"].strip('"').endswith("-3")
    assert _no_uploads(s3)


@pytest.mark.parametrize("size", [0, 1, len(SMALL)])
async def test_the_sink_uploads_a_stream_smaller_than_a_part(
    settings: DataPlaneSettings, http: GuardedHttp, s3: Any, size: int
) -> None:
    key = _new_key()
    sink = open_sink({"type": "s3", "bucket": BUCKET, "key": key}, settings, http)
    assert await sink.write(_chunked(SMALL[:size], 100), size) == size
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == SMALL[:size]
    assert _no_uploads(s3)


async def test_a_source_to_sink_copy_keeps_the_digest(
    settings: DataPlaneSettings, http: GuardedHttp, s3: Any, big_object: tuple[str, bytes]
) -> None:
    source_key, data = big_object
    key = _new_key()
    source = await open_source(_source(source_key), settings, http)
    try:
        written = await open_sink(_destination(key), settings, http).write(
            source.chunks, source.size
        )
    finally:
        await source.aclose()
    assert written == BIG
    assert _sha(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()) == _sha(data)


class _Boom(RuntimeError):
    pass


@pytest.mark.parametrize("fail_after", [0, 1, 7])  # chunks before the failure; 7 MiB = 1 part
async def test_a_failing_stream_aborts_the_upload_and_leaves_nothing(
    settings: DataPlaneSettings, http: GuardedHttp, s3: Any, fail_after: int
) -> None:
    key = _new_key()

    async def failing() -> AsyncIterator[bytes]:
        for _ in range(fail_after):
            yield b"\x01" * CHUNK
        raise _Boom("source broke")

    with pytest.raises(_Boom):
        await open_sink(_destination(key), settings, http).write(failing(), BIG)
    assert not _exists(s3, key)
    assert _no_uploads(s3)


async def test_a_cancelled_upload_is_aborted(
    settings: DataPlaneSettings, http: GuardedHttp, s3: Any
) -> None:
    key = _new_key()
    started = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(6):  # more than one part, then stall
            yield b"\x02" * CHUNK
        started.set()
        await asyncio.sleep(3600)
        yield b""

    task = asyncio.create_task(open_sink(_destination(key), settings, http).write(endless(), None))
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not _exists(s3, key)
    assert _no_uploads(s3)


async def test_a_source_shorter_than_its_declared_size_leaves_no_object(
    settings: DataPlaneSettings, http: GuardedHttp, s3: Any
) -> None:
    key = _new_key()
    with pytest.raises(UnavailableError):
        await open_sink(_destination(key), settings, http).write(_chunked(SMALL, 100), 2048)
    assert not _exists(s3, key)
    assert _no_uploads(s3)


async def test_a_sink_into_a_missing_bucket_raises_a_connector_error(
    settings: DataPlaneSettings, http: GuardedHttp
) -> None:
    sink = open_sink(_destination("x.bin", bucket="no-such-bucket"), settings, http)
    with pytest.raises(ConnectorError):
        await sink.write(_chunked(SMALL, 100), len(SMALL))
