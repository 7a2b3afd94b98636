"""Fetching untrusted URLs: httpx over the pinned transport, per-host politeness, caps on size and time.

Redirects are followed by hand (at most `max_redirects`), so every hop is checked again: its scheme
here, its address in the guard's connection layer. A response is read only when its status and
content type are wanted and its declared length fits; the body is counted while it streams (after
decompression, so a compressed bomb stops at the cap too) and dropped when it passes `max_bytes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from pipeline.config import HydrateConfig
from pipeline.hydrate.guard import (
    AddressPolicy,
    BlockedAddress,
    Guard,
    PinnedTransport,
    Resolver,
    system_resolver,
)

log = logging.getLogger(__name__)

REDIRECTS = frozenset({301, 302, 303, 307, 308})
TRACKING_PARAMS = frozenset({"fbclid", "gclid", "mc_cid", "mc_eid", "igshid", "ref_src"})


def normalize_url(raw: str) -> str:
    """The cache identity of a URL: scheme and host lowercased, default port, fragment and tracking
    parameters (utm_*, fbclid, ...) dropped. Raises ValueError for a URL that cannot be fetched."""
    try:
        url = httpx.URL(raw.strip())
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"invalid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"not an http(s) URL: {raw[:200]!r}")
    # raw_path is what goes on the wire ("/" for an empty path): setting it gives both spellings one key
    url = url.copy_with(fragment=None, raw_path=url.raw_path)
    items = url.params.multi_items()
    kept = [(k, v) for k, v in items if not (k.startswith("utm_") or k in TRACKING_PARAMS)]
    if len(kept) != len(items):  # rebuilt only when something goes: a query is otherwise kept verbatim
        url = url.copy_with(params=kept) if kept else url.copy_with(query=None)
    return str(url)


@dataclass
class FetchResult:
    url: str
    final_url: str | None = None
    status: int | None = None
    content_type: str | None = None
    encoding: str | None = None
    body: bytes | None = None
    bytes: int = 0
    redirects: int = 0
    reason: str | None = None  # a failure code; None when the body was fetched
    detail: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.reason is None


class _Failure(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail or reason


class HostGate:
    """Per-host politeness: at most `per_host` requests in flight, starts `interval_s` apart."""

    def __init__(self, per_host: int, interval_s: float):
        self.per_host = per_host
        self.interval_s = interval_s
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._next_start: dict[str, float] = {}

    @contextlib.asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        semaphore = self._slots.setdefault(host, asyncio.Semaphore(self.per_host))
        async with semaphore:
            if self.interval_s:
                loop = asyncio.get_running_loop()
                start = max(loop.time(), self._next_start.get(host, 0.0))
                self._next_start[host] = start + self.interval_s
                await asyncio.sleep(start - loop.time())
            yield


Accept = Callable[[str], bool]


class Fetcher:
    """`async with Fetcher(config) as f: await f.fetch(url, accept, max_bytes)`; never raises for a URL."""

    def __init__(
        self, config: HydrateConfig, resolver: Resolver | None = None, verify: ssl.SSLContext | bool = True
    ):
        self.config = config
        self.verify = verify  # certificate checks: the system's CAs, or a test CA's context
        self.guard = Guard(AddressPolicy(config.allow_networks), config.hosts, resolver or system_resolver)
        self.gate = HostGate(config.per_host, config.host_interval_s)
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Fetcher:
        # Links point at many hosts, so idle keep-alive connections are rarely reused, and httpcore's
        # pool scans every connection it holds for each request: keep few idle ones, briefly.
        limits = httpx.Limits(
            max_connections=self.config.concurrency * 2,
            max_keepalive_connections=min(self.config.concurrency, 8),
            keepalive_expiry=5.0,
        )
        self._client = httpx.AsyncClient(
            transport=PinnedTransport(self.guard, limits, self.verify),
            timeout=httpx.Timeout(
                connect=self.config.connect_timeout_s,
                read=self.config.read_timeout_s,
                write=self.config.read_timeout_s,
                pool=None,
            ),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": self.config.user_agent},
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def fetch(
        self, url: str, accept: Accept, max_bytes: int, headers: dict[str, str] | None = None
    ) -> FetchResult:
        result = FetchResult(url=url)
        clock = time.perf_counter()
        try:
            await self._fetch(result, accept, max_bytes, headers or {})
        except _Failure as exc:
            result.reason, result.detail = exc.reason, exc.detail
        except BlockedAddress as exc:
            result.reason, result.detail = exc.reason, str(exc)
        except (httpx.TimeoutException, TimeoutError):
            result.reason, result.detail = "timeout", "timed out"
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            result.reason, result.detail = "invalid_url", str(exc)
        except httpx.ConnectError as exc:
            result.reason, result.detail = "connect", str(exc) or "connection failed"
        except (httpx.TransportError, httpx.DecodingError, httpx.TooManyRedirects) as exc:
            result.reason, result.detail = "network", f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # an unforeseen failure of one URL must not stop the run
            log.warning("unexpected failure fetching %s: %r", url, exc)
            result.reason, result.detail = "error", f"{type(exc).__name__}: {exc}"
        if result.reason is not None:
            result.body = None
        result.seconds = time.perf_counter() - clock
        return result

    async def _fetch(
        self, result: FetchResult, accept: Accept, max_bytes: int, headers: dict[str, str]
    ) -> None:
        assert self._client is not None, "use Fetcher as an async context manager"
        current = httpx.URL(result.url)
        budget = self.config.total_timeout_s  # network time; waiting for a host's turn is not counted
        while True:
            self.guard.check_url(current)
            result.final_url = str(current)
            async with self.gate.slot(current.host):
                started = time.monotonic()
                try:
                    async with asyncio.timeout(budget):
                        location = await self._request(current, result, accept, max_bytes, headers)
                finally:
                    budget -= time.monotonic() - started
            if location is None:
                return
            if result.redirects >= self.config.max_redirects:
                raise _Failure("too_many_redirects", f"more than {self.config.max_redirects} redirects")
            result.redirects += 1
            try:
                current = current.join(location)
            except httpx.InvalidURL as exc:
                raise _Failure("invalid_url", f"redirect to an invalid URL: {exc}") from None
            if budget <= 0:
                raise _Failure("timeout", "time budget spent on redirects")

    async def _request(
        self, url: httpx.URL, result: FetchResult, accept: Accept, max_bytes: int, headers: dict[str, str]
    ) -> str | None:
        """One hop: the redirect target, or None once the body (or a failure) is in `result`."""
        assert self._client is not None
        async with self._client.stream("GET", url, headers=headers) as response:
            result.status = response.status_code
            if response.status_code in REDIRECTS:
                location = response.headers.get("location")
                if not location:
                    raise _Failure("redirect_without_location", f"{response.status_code} without Location")
                return location
            if response.status_code >= 400:
                raise _Failure(f"http_{response.status_code}", response.reason_phrase)
            if response.status_code != 200:
                raise _Failure("http_status", f"unexpected status {response.status_code}")
            content_type = _media_type(response.headers.get("content-type"))
            result.content_type = content_type
            if not accept(content_type):
                raise _Failure("content_type", f"skipped content type {content_type or 'none'}")
            declared = _int(response.headers.get("content-length"))
            if declared is not None and declared > max_bytes:
                raise _Failure("too_large", f"declared {declared:,} bytes > {max_bytes:,}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise _Failure("too_large", f"body passed {max_bytes:,} bytes")
                chunks.append(chunk)
            result.body = b"".join(chunks)
            result.bytes = size
            result.encoding = response.charset_encoding
            return None


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def interleave_by_host(urls: list[str]) -> list[str]:
    """URLs reordered round-robin over their hosts, so that workers waiting on one busy host's
    politeness limit do not hold up the rest."""
    by_host: dict[str, list[str]] = {}
    for url in urls:
        by_host.setdefault(httpx.URL(url).host, []).append(url)
    queues = list(by_host.values())
    ordered: list[str] = []
    for depth in range(max((len(q) for q in queues), default=0)):
        ordered.extend(q[depth] for q in queues if depth < len(q))
    return ordered


async def run_all(items: list[Any], concurrency: int, handle: Callable[[Any], Any]) -> None:
    """`await handle(item)` for every item, `concurrency` at a time, in order of start."""
    queue = iter(items)

    async def worker() -> None:
        for item in queue:  # one shared iterator: each item is taken by exactly one worker
            await handle(item)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(items)) or 1)))
