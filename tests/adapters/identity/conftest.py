"""Fixtures of the identity adapter tests: loopback HTTP servers, a connect spy, fake resolvers.
Redis comes from the shared `redis_url` fixture in tests/conftest.py."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

import httpcore
import pytest

from connector.http.outbound import Resolver


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- loopback HTTP server and connection spy shared by the identity adapter tests -------------

Route = tuple[int, dict[str, str], bytes]


@dataclass
class LoopbackServer:
    """A tiny HTTP/1.1 server on 127.0.0.1 with settable routes; records every request."""

    port: int = 0
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if length:
                await reader.readexactly(length)
            self.requests.append((method, target, headers))
            status, extra, body = self.routes.get(target, (404, {}, b"not found"))
            out = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: close"]
            out += [f"{k}: {v}" for k, v in extra.items()]
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def loopback_server() -> AsyncIterator[LoopbackServer]:
    state = LoopbackServer()
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()


class SpyBackend(httpcore.AsyncNetworkBackend):
    """Real sockets underneath, but records every TCP connect (host, port)."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        return await self._inner.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AssertionError("unix socket connect attempted")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@pytest.fixture
def spy_backend() -> SpyBackend:
    return SpyBackend()


MakeResolver = Callable[[dict[str, list[str]]], Resolver]


def fake_resolver(table: dict[str, list[str]]) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("unknown host")
        return list(table[host])

    return resolve


@pytest.fixture
def make_resolver() -> MakeResolver:
    return fake_resolver
