"""The HTTP source (dataplane.io) against a real upstream server on loopback: ranges forwarded,
the upstream's answers mapped to the data plane's own errors."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connector.core.errors import (
    BadRequestError,
    NotFoundError,
    RangeNotSatisfiableError,
    UnavailableError,
)
from connector.http.outbound import GuardedHttp, OutboundConfig
from connector.runtime.embedded import free_port
from connector.settings import DataPlaneSettings
from dataplane.io import ByteRange, open_source

PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes


async def ranged(request: Request) -> Response:
    header = request.headers.get("range")
    match = re.fullmatch(r"bytes=(\d+)-(\d+)", header or "")
    if header is None or match is None:
        return Response(PAYLOAD, media_type="application/octet-stream")
    first, last = int(match.group(1)), int(match.group(2))
    if first >= len(PAYLOAD):
        return Response(status_code=416, headers={"Content-Range": f"bytes */{len(PAYLOAD)}"})
    last = min(last, len(PAYLOAD) - 1)
    return Response(
        PAYLOAD[first : last + 1],
        status_code=206,
        headers={"Content-Range": f"bytes {first}-{last}/{len(PAYLOAD)}"},
        media_type="application/octet-stream",
    )


async def bare_416(request: Request) -> Response:
    return Response(status_code=416)


async def broken(request: Request) -> Response:
    return Response(status_code=500)


APP = Starlette(
    routes=[Route("/data", ranged), Route("/bare-416", bare_416), Route("/broken", broken)]
)


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(APP, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def http() -> AsyncIterator[GuardedHttp]:
    async with GuardedHttp(OutboundConfig(allow_cidrs=("127.0.0.0/8",), allow_http=True)) as h:
        yield h


async def read(upstream: str, http: GuardedHttp, path: str, range_header: str | None) -> bytes:
    source = await open_source(
        {"type": "http", "baseUrl": upstream + path},
        DataPlaneSettings(),
        http,
        range_header=range_header,
    )
    try:
        return b"".join([chunk async for chunk in source.chunks])
    finally:
        await source.aclose()


async def test_a_range_is_forwarded_and_its_bytes_served(upstream: str, http: GuardedHttp) -> None:
    source = await open_source(
        {"type": "http", "baseUrl": upstream + "/data"},
        DataPlaneSettings(),
        http,
        range_header="bytes=100-199",
    )
    try:
        assert source.byte_range == ByteRange(100, 199)
        assert source.total_size == len(PAYLOAD)
        assert b"".join([c async for c in source.chunks]) == PAYLOAD[100:200]
    finally:
        await source.aclose()


async def test_an_upstream_416_is_the_clients_416_with_the_size(
    upstream: str, http: GuardedHttp
) -> None:
    with pytest.raises(RangeNotSatisfiableError) as caught:
        await read(upstream, http, "/data", "bytes=20000-20010")
    assert caught.value.size == len(PAYLOAD)


async def test_an_upstream_416_without_a_size_is_a_bad_request(
    upstream: str, http: GuardedHttp
) -> None:
    with pytest.raises(BadRequestError):
        await read(upstream, http, "/bare-416", "bytes=0-1")


async def test_other_upstream_failures_stay_unavailable_or_not_found(
    upstream: str, http: GuardedHttp
) -> None:
    with pytest.raises(UnavailableError):
        await read(upstream, http, "/broken", None)
    with pytest.raises(NotFoundError):
        await read(upstream, http, "/missing", None)
    with pytest.raises(UnavailableError):
        await read(upstream, http, "/bare-416", None)  # 416 to a request without a range
