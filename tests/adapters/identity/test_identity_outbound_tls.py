"""IP pinning keeps TLS honest: we connect to the vetted IP, but SNI and the certificate check use
the host name (a real TLS server on 127.0.0.1 with a self-signed certificate for partner.test)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from connector.http.outbound import GuardedHttp, OutboundConfig

if TYPE_CHECKING:
    from tests.adapters.identity.conftest import MakeResolver, SpyBackend


def self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


# (port, a client context trusting the certificate, the request heads seen)
TlsServer = tuple[int, ssl.SSLContext, list[str]]


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[TlsServer]:
    cert, key = self_signed(tmp_path, "partner.test")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            seen.append(head.decode("latin-1"))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    client_ctx = ssl.create_default_context(cafile=str(cert))
    try:
        yield port, client_ctx, seen
    finally:
        server.close()
        await server.wait_closed()


async def test_pinned_https_verifies_the_certificate_against_the_host_name(
    tls_server: TlsServer, spy_backend: SpyBackend, make_resolver: MakeResolver
) -> None:
    port, client_ctx, seen = tls_server
    dns = make_resolver({"partner.test": ["127.0.0.1"], "impostor.test": ["127.0.0.1"]})
    config = OutboundConfig(allow_cidrs=("127.0.0.0/8",))
    async with GuardedHttp(
        config, resolver=dns, network_backend=spy_backend, ssl_context=client_ctx
    ) as http:
        response = await http.request("GET", f"https://partner.test:{port}/")
        assert response.content == b"ok"
        assert f"host: partner.test:{port}" in seen[0].lower()
        # Same IP, other name: the certificate does not match, so the request fails.
        with pytest.raises(httpx.ConnectError):
            await http.request("GET", f"https://impostor.test:{port}/")
    assert {ipaddress.ip_address(h) for h, _ in spy_backend.connects} == {
        ipaddress.ip_address("127.0.0.1")
    }
