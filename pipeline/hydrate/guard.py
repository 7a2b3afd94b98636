"""The SSRF guard: only public addresses are ever connected to, and only the ones that were vetted.

URLs in tweets come from strangers, so a link could name `localhost`, a cloud metadata address
(169.254.169.254), a private network, or a public hostname whose DNS answer is private. The guard:

1. allows only http and https URLs;
2. resolves the host itself (fixed `hosts` answers first, then DNS) and refuses the connection when
   *any* answer is not a global unicast address (loopback, private, link-local, multicast, reserved,
   unspecified, shared/CGNAT, documentation ranges; IPv4 addresses embedded in IPv6 via the mapped,
   6to4, Teredo and NAT64 forms are judged by their IPv4 address);
3. connects to the vetted IP itself (`PinnedBackend`), so a second DNS answer (rebinding) cannot
   swap it, while HTTP keeps the original Host header and TLS the original server name (SNI and
   certificate checks).

Because the check sits in the connection layer, every connection is vetted, redirects included.
`allow_networks` exempts ranges for loopback test servers only; it is empty by default.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

ALLOWED_SCHEMES = frozenset({"http", "https"})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class BlockedAddress(Exception):
    """A URL or address the guard refuses; `reason` is a short failure code for the records."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, Teredo, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """True for a global unicast address that is safe to connect to."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            return is_public(inner)
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback or ip.is_link_local:
        return False
    if ip.is_private or ip.is_reserved:
        return False
    return ip.is_global


class AddressPolicy:
    """Which addresses may be connected to: public ones, plus `allow_networks` (tests only)."""

    def __init__(self, allow_networks: Iterable[str] = ()):
        self.allow = [ipaddress.ip_network(n, strict=False) for n in allow_networks]

    def permits(self, ip: IPAddress) -> bool:
        if any(ip.version == net.version and ip in net for net in self.allow):
            return True
        return is_public(ip)


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address DNS (getaddrinfo) gives for host, in its order."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BlockedAddress("dns", f"{host}: {exc.strerror or exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _parse_ip(value: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(value.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return None


class Guard:
    """Resolves and vets hosts: `addresses(host, port)` returns only addresses it is safe to connect to."""

    def __init__(
        self,
        policy: AddressPolicy,
        hosts: Mapping[str, str] | None = None,
        resolver: Resolver = system_resolver,
    ):
        self.policy = policy
        self.hosts = {k.lower().rstrip("."): v for k, v in (hosts or {}).items()}
        self.resolver = resolver

    async def addresses(self, host: str, port: int) -> list[str]:
        name = host.lower().rstrip(".")
        if name.startswith("[") and name.endswith("]"):
            name = name[1:-1]
        literal = _parse_ip(name)
        if literal is not None:
            answers = [str(literal)]
        elif name in self.hosts:
            answers = [self.hosts[name]]
        else:
            answers = await self.resolver(name, port)
        if not answers:
            raise BlockedAddress("dns", f"{host}: no address")
        vetted = []
        for answer in answers:
            ip = _parse_ip(answer)
            if ip is None:
                raise BlockedAddress("dns", f"{host}: unusable answer {answer!r}")
            # One bad answer refuses the host: a round-robin pair of public and private answers
            # is the classic way around a guard that checks only the first.
            if not self.policy.permits(ip):
                raise BlockedAddress("blocked_address", f"{host} resolves to non-public {ip}")
            vetted.append(str(ip))
        return vetted

    def check_url(self, url: httpx.URL) -> None:
        """Refuse a URL before any connection: scheme, host present, credentials."""
        if url.scheme not in ALLOWED_SCHEMES:
            raise BlockedAddress("scheme", f"{url.scheme or 'no'} scheme")
        if not url.host:
            raise BlockedAddress("invalid_url", "no host")
        if url.userinfo:
            raise BlockedAddress("invalid_url", "credentials in URL")


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects to the guard's vetted addresses for a host instead of letting the socket layer resolve it."""

    def __init__(self, guard: Guard):
        self.guard = guard
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.guard.addresses(host, port)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress("blocked_address", "unix sockets are never used")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over `PinnedBackend`; proxies and environment settings are never used,
    since a proxy would resolve names where the guard cannot see."""

    def __init__(self, guard: Guard, limits: httpx.Limits, verify: ssl.SSLContext | bool = True):
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
        super().__init__(verify=context, trust_env=False, limits=limits)
        # httpx has no public hook for the network backend, so the pool it built is replaced by
        # the same pool over the pinned backend (same TLS context and limits).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedBackend(guard),
        )
