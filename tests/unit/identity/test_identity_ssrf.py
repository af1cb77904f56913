"""SSRF guard refusals. Nothing here may open a socket: a fake resolver answers DNS and a spy
network backend fails the test on any connect attempt."""

import ipaddress
from collections.abc import Iterable

import httpcore
import pytest

from connector.core.errors import ErrorCode
from connector.http.outbound import (
    GuardedHttp,
    OutboundConfig,
    OutboundRefusedError,
    refusal_reason,
)


class NoConnectBackend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.attempts: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.attempts.append((host, port))
        raise AssertionError(f"connection attempted to {host}:{port}")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AssertionError("unix connect attempted")

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("unexpected sleep")


class FakeDns:
    def __init__(
        self, table: dict[str, list[str]], *, second: dict[str, list[str]] | None = None
    ) -> None:
        self.table = table
        self.second = second or {}
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host in self.second and self.calls.count(host) > 1:
            return list(self.second[host])
        if host not in self.table:
            raise OSError("NXDOMAIN")
        return list(self.table[host])


def client(dns: FakeDns, backend: NoConnectBackend, **config: object) -> GuardedHttp:
    return GuardedHttp(OutboundConfig.model_validate(config), resolver=dns, network_backend=backend)


REFUSED = [
    "127.0.0.1",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "::1",
    "::",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "fe80::1",
    "fc00::1",
    "64:ff9b::1",
    "64:ff9b::a00:1",
    "2002::1",
    "2002:7f00:1::",
    "2001::1",
    "ff02::1",
]


@pytest.mark.parametrize("address", REFUSED)
def test_refusal_reason_for_internal_ranges(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is None


def test_specific_reasons() -> None:
    def reason(a: str) -> str | None:
        return refusal_reason(ipaddress.ip_address(a))

    assert reason("169.254.169.254") == "cloud metadata address"
    assert reason("100.64.0.1") == "carrier-grade NAT address"
    assert reason("64:ff9b::1") == "NAT64 address"
    assert reason("2002::1") == "6to4 address"
    assert str(reason("::ffff:127.0.0.1")).startswith(
        "IPv4-mapped address of a refused range (loopback"
    )


def test_allow_list_overrides_including_mapped_forms() -> None:
    loopback = [ipaddress.ip_network("127.0.0.0/8")]
    assert refusal_reason(ipaddress.ip_address("127.0.0.1"), loopback) is None
    assert refusal_reason(ipaddress.ip_address("::ffff:127.0.0.1"), loopback) is None
    assert refusal_reason(ipaddress.ip_address("10.0.0.1"), loopback) == "private address"


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.1/",
        "https://169.254.169.254/latest/meta-data/",
        "https://100.64.0.1/",
        "https://[::ffff:127.0.0.1]/",
        "https://[64:ff9b::1]/",
        "https://[2002::1]/",
        "https://127.0.0.1/",
        "https://[::1]/",
    ],
)
async def test_ip_literal_destinations_refused_before_connect(url: str) -> None:
    dns, backend = FakeDns({}), NoConnectBackend()
    async with client(dns, backend) as http:
        with pytest.raises(OutboundRefusedError) as info:
            await http.request("GET", url)
    assert info.value.code is ErrorCode.BAD_REQUEST
    assert backend.attempts == []


@pytest.mark.parametrize("answer", ["10.0.0.1", "192.168.1.1", "169.254.169.254", "::1", "fd00::1"])
async def test_host_resolving_to_private_address_refused(answer: str) -> None:
    dns, backend = FakeDns({"partner.example": [answer]}), NoConnectBackend()
    async with client(dns, backend) as http:
        with pytest.raises(OutboundRefusedError, match="refused"):
            await http.request("GET", "https://partner.example/cb")
    assert backend.attempts == []


async def test_mixed_public_and_private_answers_refused() -> None:
    dns = FakeDns({"mixed.example": ["93.184.216.34", "10.0.0.1"]})
    backend = NoConnectBackend()
    async with client(dns, backend) as http:
        with pytest.raises(OutboundRefusedError, match="private address"):
            await http.request("GET", "https://mixed.example/")
    assert backend.attempts == []


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "127.1"])
async def test_numeric_host_forms_are_judged_by_resolved_address(host: str) -> None:
    dns, backend = FakeDns({host: ["127.0.0.1"]}), NoConnectBackend()
    async with client(dns, backend) as http:
        with pytest.raises(OutboundRefusedError, match="loopback"):
            await http.request("GET", f"https://{host}/")
    assert backend.attempts == []


async def test_dns_rebinding_is_caught_at_connect_time() -> None:
    # Pre-flight sees a public address, the connect-time resolution a private one: the pinning
    # backend vets again and refuses before any socket is opened.
    dns = FakeDns({"rebind.example": ["93.184.216.34"]}, second={"rebind.example": ["10.0.0.1"]})
    backend = NoConnectBackend()
    async with client(dns, backend) as http:
        with pytest.raises(OutboundRefusedError, match="private address"):
            await http.request("GET", "https://rebind.example/")
    assert backend.attempts == []
    assert dns.calls == ["rebind.example", "rebind.example"]


@pytest.mark.parametrize(
    ("url", "config", "match"),
    [
        ("http://partner.example/", {}, "plain http"),
        ("ftp://partner.example/", {}, "scheme"),
        ("file:///etc/passwd", {}, "scheme"),
        ("https://user:pw@partner.example/", {}, "credentials"),
        ("https://partner.example:8443/", {"allowed_ports": (443,)}, "port 8443"),
        ("https://unknown.example/", {}, "does not resolve"),
        ("https://exa mple/", {}, "not a valid host name"),
        ("https://[::1/", {}, "invalid URL"),
    ],
)
async def test_url_level_refusals(url: str, config: dict[str, object], match: str) -> None:
    dns, backend = FakeDns({"partner.example": ["93.184.216.34"]}), NoConnectBackend()
    async with client(dns, backend, **config) as http:
        with pytest.raises(OutboundRefusedError, match=match):
            await http.request("GET", url)
    assert backend.attempts == []


async def test_vet_reports_addresses_without_connecting() -> None:
    dns, backend = FakeDns({"partner.example": ["93.184.216.34"]}), NoConnectBackend()
    async with client(dns, backend) as http:
        target = await http.vet("https://partner.example/callback")
    assert (target.host, target.port, target.addresses) == (
        "partner.example",
        443,
        ("93.184.216.34",),
    )
    assert backend.attempts == []


async def test_internationalized_host_is_vetted_in_its_ascii_form() -> None:
    dns = FakeDns({"xn--bcher-kva.example": ["10.0.0.1"]})
    backend = NoConnectBackend()
    async with client(dns, backend) as http:
        with pytest.raises(OutboundRefusedError, match="private address"):
            await http.request("GET", "https://bücher.example/")
    assert dns.calls == ["xn--bcher-kva.example"]


async def test_allow_hosts_accepts_internal_partner() -> None:
    dns, backend = FakeDns({"erp.corp": ["10.1.2.3"]}), NoConnectBackend()
    async with client(dns, backend, allow_hosts=("erp.corp",)) as http:
        assert (await http.vet("https://erp.corp/")).addresses == ("10.1.2.3",)
        with pytest.raises(OutboundRefusedError):
            await http.vet("https://10.1.2.3/")
