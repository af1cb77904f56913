"""The one guarded outbound HTTP client (SSRF guard, identity.md §6.1).

Every outbound call the connector makes on behalf of a counterparty-influenced address (DSP
callbacks, did:web documents, push destinations, HTTP data sources, refresh endpoints) goes through
`GuardedHttp`:

1. the URL is vetted: scheme (https; http only when allowed), no userinfo, optional port allow-list;
2. the host is resolved and **every** answer must pass `refusal_reason` (private, loopback,
   link-local, CGNAT, multicast, NAT64, 6to4, Teredo, IPv4-mapped forms of those, unspecified,
   reserved, cloud metadata) unless the address or host is allow-listed;
3. the TCP connection is made by `PinningBackend` to a vetted IP (resolution and vetting happen in
   the same step as the connect, so DNS rebinding cannot swap the address) while the URL, the
   `Host` header, SNI and certificate checks keep the host name;
4. redirects are followed manually (at most `max_redirects`), each hop vetted again; credentials
   (`Authorization`, `Cookie`, `X-Api-Key`) are dropped when a redirect changes the origin;
5. timeouts and a response size cap apply; proxies from the environment are ignored
   (`trust_env=False`), since a proxy would bypass the pinning.

Refusals raise `OutboundRefusedError` (code `bad_request`) before any connection is attempted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

import httpcore
import httpx
from pydantic import BaseModel, ConfigDict, Field

from connector.core.errors import BadRequestError

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "GuardedHttp",
    "OutboundConfig",
    "OutboundRefusedError",
    "PinningBackend",
    "Resolver",
    "ResponseTooLargeError",
    "VettedTarget",
    "refusal_reason",
    "system_resolver",
    "vet_offline",
]

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Resolves `(host, port)` to IP address strings. Injectable so tests never touch real DNS.
Resolver = Callable[[str, int], Awaitable[list[str]]]

DEFAULT_MAX_RESPONSE_BYTES: Final = 1024 * 1024

# Ranges that Python's `is_global` reports as global but that tunnel to (possibly internal) IPv4
# space, plus ones we name explicitly to give a precise reason.
_CGNAT: Final = ipaddress.ip_network("100.64.0.0/10")
_METADATA: Final = ipaddress.ip_address("169.254.169.254")
_NAT64: Final = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SIX_TO_FOUR: Final = ipaddress.ip_network("2002::/16")
_TEREDO: Final = ipaddress.ip_network("2001::/32")

_HOST_RE: Final = re.compile(r"^[A-Za-z0-9_.-]+$")
# Host names the C resolver reads as IPv4 without asking DNS (decimal, octal, hex, short forms).
_NUMERIC_HOST_RE: Final = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$")
_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_CREDENTIAL_HEADERS: Final = ("authorization", "cookie", "x-api-key", "proxy-authorization")


class OutboundRefusedError(BadRequestError):
    """An outbound request was refused by the guard (destination, scheme, redirect or size)."""


class ResponseTooLargeError(OutboundRefusedError):
    """The response body exceeded the configured cap; the connection is closed."""


class OutboundConfig(BaseModel):
    """Settings of the guarded client (embedded by the lead as `settings.outbound`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allow_cidrs: tuple[str, ...] = Field(
        default=(), description="CIDRs accepted even if private/loopback (on-prem partners, tests)."
    )
    allow_hosts: tuple[str, ...] = Field(
        default=(), description="Host names whose resolved addresses are always accepted."
    )
    allow_http: bool = Field(default=False, description="Permit plain http:// (tests/dev only).")
    allowed_ports: tuple[int, ...] | None = Field(
        default=None, description="If set, only these destination ports are permitted."
    )
    connect_timeout: float = Field(default=3.0, gt=0)
    read_timeout: float = Field(default=10.0, gt=0)
    total_timeout: float = Field(
        default=10.0, gt=0, description="Cap for `request()` (not for streamed bodies)."
    )
    max_redirects: int = Field(default=3, ge=0)
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, gt=0)
    max_connections: int = Field(default=100, gt=0)


def _as_network(value: str) -> IPNetwork:
    return ipaddress.ip_network(value, strict=False)


def refusal_reason(ip: IPAddress, allow: Sequence[IPNetwork] = ()) -> str | None:
    """Why `ip` must not be contacted, or None if it may. Allow-listed networks always pass."""
    if any(ip.version == net.version and ip in net for net in allow):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped
        if mapped is not None:
            inner = refusal_reason(mapped, allow)
            return None if inner is None else f"IPv4-mapped address of a refused range ({inner})"
        if any(ip in net for net in _NAT64):
            return "NAT64 address"
        if ip in _SIX_TO_FOUR:
            return "6to4 address"
        if ip in _TEREDO:
            return "Teredo address"
    if ip.is_unspecified:
        return "unspecified address"
    if ip == _METADATA:
        return "cloud metadata address"
    if ip.is_loopback:
        return "loopback address"
    if ip.is_link_local:
        return "link-local address"
    if ip.is_multicast:
        return "multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "carrier-grade NAT address"
    if ip.is_private:
        return "private address"
    if ip.is_reserved:
        return "reserved address"
    if not ip.is_global:
        return "not a globally routable address"
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the event loop's `getaddrinfo` (TCP answers only, order preserved)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in seen:
            seen.append(address)
    return seen


@dataclass(frozen=True, slots=True)
class VettedTarget:
    """A URL that passed the guard, with the addresses it resolved to (all of them vetted)."""

    url: httpx.URL
    host: str
    port: int
    addresses: tuple[str, ...]


class _Guard:
    """Shared vetting logic of `GuardedHttp` and `PinningBackend`."""

    def __init__(self, config: OutboundConfig, resolver: Resolver) -> None:
        self._config = config
        self._resolver = resolver
        self._allow_nets: tuple[IPNetwork, ...] = tuple(_as_network(c) for c in config.allow_cidrs)
        self._allow_hosts = frozenset(h.lower().rstrip(".") for h in config.allow_hosts)

    def check_url(self, url: httpx.URL) -> tuple[str, int]:
        scheme = url.scheme
        if scheme not in ("https", "http"):
            raise OutboundRefusedError(f"scheme {scheme!r} is not allowed")
        if scheme == "http" and not self._config.allow_http:
            raise OutboundRefusedError("plain http is not allowed (https required)")
        if url.userinfo:
            raise OutboundRefusedError("credentials in the URL are not allowed")
        # The ASCII (IDNA) form is what httpcore connects to, so that is what we resolve and vet.
        host = url.raw_host.decode("ascii", errors="replace")
        if not host:
            raise OutboundRefusedError("URL has no host")
        if not _HOST_RE.match(host):
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise OutboundRefusedError("URL host is not a valid host name") from None
        port = url.port or (443 if scheme == "https" else 80)
        allowed_ports = self._config.allowed_ports
        if allowed_ports is not None and port not in allowed_ports:
            raise OutboundRefusedError(f"port {port} is not allowed")
        return host, port

    async def vetted_addresses(self, host: str, port: int) -> tuple[str, ...]:
        """Resolve `host` and return its addresses if every one of them may be contacted."""
        host_allowed = host.lower().rstrip(".") in self._allow_hosts
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            answers = [str(literal)]
        else:
            try:
                async with asyncio.timeout(self._config.connect_timeout):
                    answers = await self._resolver(host, port)
            except (OSError, TimeoutError) as exc:
                raise OutboundRefusedError(
                    f"host {host!r} does not resolve ({type(exc).__name__})"
                ) from None
        if not answers:
            raise OutboundRefusedError(f"host {host!r} does not resolve")
        vetted: list[str] = []
        for answer in answers:
            try:
                ip = ipaddress.ip_address(answer)
            except ValueError:
                raise OutboundRefusedError(
                    f"host {host!r} resolved to an invalid address"
                ) from None
            if not host_allowed:
                reason = refusal_reason(ip, self._allow_nets)
                if reason is not None:
                    raise OutboundRefusedError(f"destination {host!r} refused: {reason} ({ip})")
            # Drop an IPv6 scope id for connect(); the address itself was vetted above.
            vetted.append(str(ip).split("%", 1)[0])
        return tuple(vetted)

    async def vet(self, url: httpx.URL) -> VettedTarget:
        host, port = self.check_url(url)
        addresses = await self.vetted_addresses(host, port)
        return VettedTarget(url=url, host=host, port=port, addresses=addresses)

    def vet_offline(self, url: httpx.URL) -> None:
        """`check_url` plus the address rules for what is known without resolving: an IP
        literal, a numeric IPv4 form (`2130706433`, `0x7f.1`, `127.1`, as `inet_aton` reads
        it) and the `localhost` names (RFC 6761). Other host names are judged when resolved."""
        host, _port = self.check_url(url)
        name = host.lower().rstrip(".")
        if name in self._allow_hosts:
            return
        if name == "localhost" or name.endswith(".localhost"):
            candidates = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
            if any(refusal_reason(ip, self._allow_nets) is None for ip in candidates):
                return
            raise OutboundRefusedError(f"destination {host!r} refused: loopback address")
        try:
            literal: IPAddress = ipaddress.ip_address(host)
        except ValueError:
            if not _NUMERIC_HOST_RE.match(name):
                return
            try:
                literal = ipaddress.IPv4Address(socket.inet_aton(name))
            except OSError:
                return
        reason = refusal_reason(literal, self._allow_nets)
        if reason is not None:
            raise OutboundRefusedError(f"destination {host!r} refused: {reason} ({literal})")


class PinningBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend that resolves, vets and connects in one step (IP pinning).

    httpcore hands us the URL's host name; we connect to one of its vetted addresses while TLS
    (SNI, certificate check) and the Host header still use the name.
    """

    def __init__(self, guard: _Guard, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._guard = guard
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._guard.vetted_addresses(host, port)
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None  # noqa: S101 - addresses is never empty
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundRefusedError("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PinnedTransport(httpx.AsyncHTTPTransport):
    def __init__(
        self,
        backend: httpcore.AsyncNetworkBackend,
        ssl_context: ssl.SSLContext,
        limits: httpx.Limits,
    ) -> None:
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        # httpx does not expose the network backend; swap in a pool that uses ours. A unit test
        # checks that connections really go through the backend, so an httpx change shows up.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=backend,
        )


class _CappedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._limit:
                raise ResponseTooLargeError(f"response body exceeds {self._limit} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


def _parse_url(url: str | httpx.URL) -> httpx.URL:
    try:
        return httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise OutboundRefusedError(f"invalid URL ({exc})") from None


_WRITE_STARTS: Final = ("http11.send_request_headers.started", "http2.send_request_headers.started")


def _on_write(
    before_write: Callable[[], Awaitable[None]],
) -> Callable[[str, dict[str, object]], Awaitable[None]]:
    """An httpcore trace hook calling `before_write` as the request headers are about to go out
    (after the connection is made, so a refused connection never calls it)."""

    async def trace(event: str, info: dict[str, object]) -> None:
        if event in _WRITE_STARTS:
            await before_write()

    return trace


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def _redirect_method(status: int, method: str) -> str:
    if status == 303 and method != "HEAD":
        return "GET"
    if status in (301, 302) and method == "POST":
        return "GET"
    return method


async def _no_resolver(host: str, port: int) -> list[str]:
    raise OSError("vet_offline never resolves")


def vet_offline(url: str | httpx.URL, config: OutboundConfig) -> None:
    """The guard's rules that need no network call (scheme, userinfo, host syntax, port
    allow-list, and the address rules for IP literals, numeric IPv4 forms and `localhost`):
    for validating an address when it is stored, long before anything contacts it. A host
    name that resolves to a refused address is refused when the address is used.

    Raises:
        OutboundRefusedError: the URL is refused by the rules above.
    """
    _Guard(config, _no_resolver).vet_offline(_parse_url(url))


class GuardedHttp:
    """Async outbound HTTP client with the SSRF guard (see the module docstring).

    `resolver` defaults to `system_resolver`; `network_backend` is the real socket layer under
    the pinning backend (tests pass a spy). `transport` replaces the whole transport (then only
    the pre-flight vetting guards the request: meant for `httpx.MockTransport` in tests).
    """

    def __init__(
        self,
        config: OutboundConfig | None = None,
        *,
        resolver: Resolver | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config if config is not None else OutboundConfig()
        self._guard = _Guard(self.config, resolver if resolver is not None else system_resolver)
        limits = httpx.Limits(
            max_connections=self.config.max_connections, max_keepalive_connections=20
        )
        if transport is None:
            context = ssl_context if ssl_context is not None else httpx.create_ssl_context()
            transport = _PinnedTransport(
                PinningBackend(self._guard, network_backend), context, limits
            )
        timeout = httpx.Timeout(
            connect=self.config.connect_timeout,
            read=self.config.read_timeout,
            write=self.config.read_timeout,
            pool=self.config.connect_timeout,
        )
        self._client = httpx.AsyncClient(
            transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
        )

    def vet_offline(self, url: str | httpx.URL) -> None:
        """`vet_offline` (module function) with this client's configuration."""
        vet_offline(url, self.config)

    async def vet(self, url: str | httpx.URL) -> VettedTarget:
        """Vet a destination without contacting it (e.g. a `callbackAddress` on receipt).

        Raises:
            OutboundRefusedError: the destination must not be contacted.
        """
        return await self._guard.vet(_parse_url(url))

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | AsyncIterator[bytes] | None = None,
        json: object = None,
        params: Mapping[str, str] | None = None,
        follow_redirects: bool = True,
        max_bytes: int | None = None,
        before_write: Callable[[], Awaitable[None]] | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """Send a request and yield the (final) response with an unread, optionally capped body.

        `before_write` is awaited once a connection is made, before the request's first byte is
        written (each hop); what it raises aborts the request unsent.

        Raises:
            OutboundRefusedError: a destination (first or a redirect hop) was refused.
            ResponseTooLargeError: while reading, when the body exceeds `max_bytes`.
        """
        response = await self._send(
            method,
            url,
            headers=headers,
            content=content,
            json=json,
            params=params,
            follow_redirects=follow_redirects,
            before_write=before_write,
        )
        try:
            if max_bytes is not None:
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                    raise ResponseTooLargeError(f"response body exceeds {max_bytes} bytes")
                assert isinstance(response.stream, httpx.AsyncByteStream)  # noqa: S101
                response.stream = _CappedStream(response.stream, max_bytes)
            yield response
        finally:
            await response.aclose()

    async def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        json: object = None,
        params: Mapping[str, str] | None = None,
        follow_redirects: bool = True,
        max_bytes: int | None = None,
        before_write: Callable[[], Awaitable[None]] | None = None,
    ) -> httpx.Response:
        """Send a request and return the response with its body read (capped, total timeout).

        Raises:
            OutboundRefusedError: a destination was refused or the body is too large.
            httpx.HTTPError: transport failures (the caller classifies them as retryable).
        """
        limit = max_bytes if max_bytes is not None else self.config.max_response_bytes
        async with asyncio.timeout(self.config.total_timeout):
            async with self.stream(
                method,
                url,
                headers=headers,
                content=content,
                json=json,
                params=params,
                follow_redirects=follow_redirects,
                max_bytes=limit,
                before_write=before_write,
            ) as response:
                await response.aread()
                return response

    async def _send(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        headers: Mapping[str, str] | None,
        content: bytes | AsyncIterator[bytes] | None,
        json: object,
        params: Mapping[str, str] | None,
        follow_redirects: bool,
        before_write: Callable[[], Awaitable[None]] | None = None,
    ) -> httpx.Response:
        current = _parse_url(url)
        extensions = {} if before_write is None else {"trace": _on_write(before_write)}
        if params:
            current = current.copy_merge_params(params)
        hop_headers = httpx.Headers(headers or {})
        hop_method = method.upper()
        hop_content = content
        hop_json = json
        for hop in range(self.config.max_redirects + 1):
            await self.vet(current)
            request = self._client.build_request(
                hop_method,
                current,
                headers=hop_headers,
                content=hop_content,
                json=hop_json,
                extensions=extensions,
            )
            response = await self._client.send(request, stream=True)
            location = response.headers.get("location")
            if (
                not follow_redirects
                or response.status_code not in _REDIRECT_STATUSES
                or location is None
            ):
                return response
            await response.aclose()
            if hop == self.config.max_redirects:
                break
            try:
                target = current.join(location)
            except httpx.InvalidURL:
                raise OutboundRefusedError("redirect to an invalid URL") from None
            if not _same_origin(current, target):
                for name in _CREDENTIAL_HEADERS:
                    hop_headers.pop(name, None)
            new_method = _redirect_method(response.status_code, hop_method)
            if new_method != hop_method:
                hop_content = None
                hop_json = None
                hop_headers.pop("content-type", None)
                hop_headers.pop("content-length", None)
            elif hop_content is not None and not isinstance(hop_content, bytes):
                # A streamed body cannot be replayed on 307/308.
                raise OutboundRefusedError("redirect of a streamed request body is not supported")
            hop_method = new_method
            logger.debug(
                "outbound redirect", extra={"status": response.status_code, "to": str(target.host)}
            )
            current = target
        raise OutboundRefusedError(f"too many redirects (max {self.config.max_redirects})")

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> GuardedHttp:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
