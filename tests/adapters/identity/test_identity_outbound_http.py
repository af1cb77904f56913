"""GuardedHttp against a real HTTP server on 127.0.0.1 (loopback allow-listed, as in tests)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from connector.http.outbound import (
    GuardedHttp,
    OutboundConfig,
    OutboundRefusedError,
    ResponseTooLargeError,
)

if TYPE_CHECKING:
    from tests.adapters.identity.conftest import LoopbackServer, MakeResolver, SpyBackend

LOOPBACK = OutboundConfig(allow_http=True, allow_cidrs=("127.0.0.0/8",), max_response_bytes=1000)


def guarded(
    spy_backend: SpyBackend, make_resolver: MakeResolver, config: OutboundConfig = LOOPBACK
) -> GuardedHttp:
    dns = make_resolver({"partner.test": ["127.0.0.1"], "internal.test": ["10.0.0.1"]})
    return GuardedHttp(config, resolver=dns, network_backend=spy_backend)


async def test_allowed_loopback_request_is_pinned_and_keeps_host(
    loopback_server: LoopbackServer, spy_backend: SpyBackend, make_resolver: MakeResolver
) -> None:
    loopback_server.routes["/hello"] = (200, {"Content-Type": "text/plain"}, b"hi")
    async with guarded(spy_backend, make_resolver) as http:
        response = await http.request("GET", f"http://partner.test:{loopback_server.port}/hello")
    assert (response.status_code, response.content) == (200, b"hi")
    # Connected to the vetted IP, while Host still names the host.
    assert spy_backend.connects == [("127.0.0.1", loopback_server.port)]
    assert loopback_server.requests[0][2]["host"] == f"partner.test:{loopback_server.port}"


async def test_loopback_refused_when_not_allow_listed(
    loopback_server: LoopbackServer, spy_backend: SpyBackend, make_resolver: MakeResolver
) -> None:
    config = OutboundConfig(allow_http=True)
    async with guarded(spy_backend, make_resolver, config) as http:
        with pytest.raises(OutboundRefusedError, match="loopback"):
            await http.request("GET", f"http://127.0.0.1:{loopback_server.port}/")
        with pytest.raises(OutboundRefusedError, match="IPv4-mapped"):
            await http.request("GET", f"http://[::ffff:127.0.0.1]:{loopback_server.port}/")
    assert spy_backend.connects == []
    assert loopback_server.requests == []


async def test_redirect_to_refused_range_is_not_followed(
    loopback_server: LoopbackServer, spy_backend: SpyBackend, make_resolver: MakeResolver
) -> None:
    loopback_server.routes["/r1"] = (302, {"Location": "http://internal.test/admin"}, b"")
    loopback_server.routes["/r2"] = (307, {"Location": "http://169.254.169.254/latest/"}, b"")
    async with guarded(spy_backend, make_resolver) as http:
        with pytest.raises(OutboundRefusedError, match="private address"):
            await http.request("GET", f"http://partner.test:{loopback_server.port}/r1")
        with pytest.raises(OutboundRefusedError, match="cloud metadata"):
            await http.request(
                "POST", f"http://partner.test:{loopback_server.port}/r2", content=b"x"
            )
    # Only the allowed first hops were contacted.
    assert {host for host, _ in spy_backend.connects} == {"127.0.0.1"}
    assert [r[1] for r in loopback_server.requests] == ["/r1", "/r2"]


async def test_redirects_are_followed_and_credentials_dropped_across_origins(
    loopback_server: LoopbackServer, spy_backend: SpyBackend, make_resolver: MakeResolver
) -> None:
    port = loopback_server.port
    loopback_server.routes["/a"] = (302, {"Location": "/b"}, b"")
    loopback_server.routes["/b"] = (303, {"Location": f"http://localhost.test:{port}/c"}, b"")
    loopback_server.routes["/c"] = (200, {}, b"done")
    dns = make_resolver({"partner.test": ["127.0.0.1"], "localhost.test": ["127.0.0.1"]})
    async with GuardedHttp(LOOPBACK, resolver=dns, network_backend=spy_backend) as http:
        response = await http.request(
            "POST",
            f"http://partner.test:{port}/a",
            content=b"{}",
            headers={"Authorization": "Bearer t"},
        )
    assert response.content == b"done"
    methods = [(m, path, "authorization" in h) for m, path, h in loopback_server.requests]
    assert methods == [("POST", "/a", True), ("GET", "/b", True), ("GET", "/c", False)]


async def test_redirect_loop_is_capped(
    loopback_server: LoopbackServer, spy_backend: SpyBackend, make_resolver: MakeResolver
) -> None:
    loopback_server.routes["/loop"] = (302, {"Location": "/loop"}, b"")
    async with guarded(spy_backend, make_resolver) as http:
        with pytest.raises(OutboundRefusedError, match="too many redirects"):
            await http.request("GET", f"http://partner.test:{loopback_server.port}/loop")
        response = await http.request(
            "GET", f"http://partner.test:{loopback_server.port}/loop", follow_redirects=False
        )
    assert response.status_code == 302
    assert len(loopback_server.requests) == 5


async def test_response_size_cap(
    loopback_server: LoopbackServer, spy_backend: SpyBackend, make_resolver: MakeResolver
) -> None:
    loopback_server.routes["/big"] = (200, {}, b"x" * 5000)
    url = f"http://partner.test:{loopback_server.port}/big"
    async with guarded(spy_backend, make_resolver) as http:
        with pytest.raises(ResponseTooLargeError):
            await http.request("GET", url)
        assert len((await http.request("GET", url, max_bytes=10_000)).content) == 5000


async def test_streaming_response(
    loopback_server: LoopbackServer, spy_backend: SpyBackend, make_resolver: MakeResolver
) -> None:
    loopback_server.routes["/stream"] = (200, {}, b"y" * 100_000)
    url = f"http://partner.test:{loopback_server.port}/stream"
    async with guarded(spy_backend, make_resolver) as http:
        async with http.stream("GET", url) as response:
            received = b"".join([chunk async for chunk in response.aiter_bytes()])
        assert received == b"y" * 100_000
        with pytest.raises(ResponseTooLargeError):
            async with http.stream("GET", url, max_bytes=50_000) as response:
                await response.aread()
