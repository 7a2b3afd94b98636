"""`personas hydrate urls`: fetch every external link of the store once, extract its main text, cache it."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import httpx

from pipeline.config import HydrateConfig
from pipeline.hydrate.cache import ArticleCache, url_key
from pipeline.hydrate.extract import ARTICLE_TYPES, Extractor
from pipeline.hydrate.fetch import Fetcher, FetchResult, interleave_by_host, normalize_url, run_all
from pipeline.hydrate.guard import Resolver
from pipeline.hydrate.records import RecordLog
from pipeline.store import Store
from pipeline.store.atomic import exclusive_lock

log = logging.getLogger(__name__)

LINKS_QUERY = """
SELECT DISTINCT u.expanded_url
FROM urls u JOIN tweets t USING (tweet_id)
WHERE u.status_tweet_id IS NULL AND u.expanded_url IS NOT NULL AND NOT t.deleted AND NOT t.is_retweet
ORDER BY 1
"""
# Links to X itself that are not tweets (profiles, spaces, searches) need a login: never fetched.
X_HOSTS = frozenset({"twitter.com", "www.twitter.com", "mobile.twitter.com", "x.com", "www.x.com", "t.co"})


def linked_urls(store: Store) -> list[str]:
    """Expanded external URLs of live, non-retweet tweets (links to tweets are quotes, not articles)."""
    con = store.connect()
    try:
        return [row[0] for row in con.sql(LINKS_QUERY).fetchall()]
    finally:
        con.close()


@dataclass
class UrlRun:
    """What one `hydrate urls` run did."""

    distinct: int = 0  # distinct normalized URLs in the store
    cached: int = 0  # already recorded before this run (not fetched again)
    skipped: Counter[str] = field(default_factory=Counter)  # not fetched, with the reason
    fetched: int = 0
    ok: int = 0
    words: int = 0
    bytes: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    remaining: int = 0  # left for a later run (--limit)
    seconds: float = 0.0


def plan_urls(
    urls: list[str], cache: ArticleCache, *, retry_failed: bool = False
) -> tuple[list[str], UrlRun, list[tuple[str, str]]]:
    """Which normalized URLs to fetch; also the invalid ones (raw URL, reason) to record."""
    run = UrlRun()
    outcomes = cache.outcomes()
    todo: dict[str, None] = {}
    invalid: list[tuple[str, str]] = []
    seen: set[str] = set()
    unusable = 0
    for raw in urls:
        try:
            url = normalize_url(raw)
        except ValueError as exc:
            unusable += 1
            if url_key(raw) in outcomes:
                run.cached += 1
            else:
                invalid.append((raw, str(exc)))
            continue
        if url in seen:
            continue
        seen.add(url)
        if httpx.URL(url).host in X_HOSTS:
            run.skipped["link to X"] += 1
            continue
        key = url_key(url)
        if key in outcomes:
            ok = outcomes[key] is None
            if (ok and cache.has_text(key)) or (not ok and not retry_failed):
                run.cached += 1
                continue
        todo[url] = None
    run.distinct = len(seen) + unusable
    return interleave_by_host(list(todo)), run, invalid


def _record(url: str, result: FetchResult | None, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "key": url_key(url),
        "url": url,
        "fetched_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if result is not None:
        base.update(
            final_url=result.final_url,
            status=result.status,
            content_type=result.content_type,
            bytes=result.bytes,
            redirects=result.redirects,
            seconds=round(result.seconds, 3),
            reason=result.reason,
            detail=result.detail[:300] if result.reason else "",
        )
    base.update(extra)
    return base


def hydrate_urls(
    urls: list[str],
    config: HydrateConfig,
    *,
    limit: int | None = None,
    retry_failed: bool = False,
    resolver: Resolver | None = None,
    executor: Executor | None = None,
    on_planned: Callable[[int], None] | None = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> UrlRun:
    """Fetch and extract the URLs not yet in the cache (at most `limit`); records are durable as they go.
    `executor` runs extraction (kept open for the caller); by default a pool of `extract_workers`."""
    clock = time.perf_counter()
    cache = ArticleCache(config.dir)
    with exclusive_lock(cache.folder / ".lock", blocking=False, what="the article cache"):
        run = _hydrate_urls(urls, config, cache, limit, retry_failed, resolver, executor, on_planned, on_done)
    run.seconds = time.perf_counter() - clock
    return run


def _hydrate_urls(
    urls: list[str],
    config: HydrateConfig,
    cache: ArticleCache,
    limit: int | None,
    retry_failed: bool,
    resolver: Resolver | None,
    executor: Executor | None,
    on_planned: Callable[[int], None] | None,
    on_done: Callable[[dict[str, Any]], None] | None,
) -> UrlRun:
    todo, run, invalid = plan_urls(urls, cache, retry_failed=retry_failed)
    if limit is not None:
        run.remaining = max(0, len(todo) - limit)
        todo = todo[:limit]
    if on_planned:
        on_planned(len(todo))
    extractor = Extractor(config.extract_workers, executor)
    try:
        with RecordLog(cache.records_path, config.commit_every_s) as records:
            for raw, reason in invalid:
                run.failures["invalid_url"] += 1
                records.append(
                    {"key": url_key(raw), "url": raw[:2000], "reason": "invalid_url", "detail": reason}
                )
            asyncio.run(_fetch_all(todo, config, cache, records, run, extractor, resolver, on_done))
    finally:
        extractor.close()
    if extractor.restarts:
        log.warning("an extraction worker died %d time(s); the pool was restarted", extractor.restarts)
    return run


async def _fetch_all(
    todo: list[str],
    config: HydrateConfig,
    cache: ArticleCache,
    records: RecordLog,
    run: UrlRun,
    extractor: Extractor,
    resolver: Resolver | None,
    on_done: Callable[[dict[str, Any]], None] | None,
) -> None:

    async def one(url: str) -> None:
        result = await fetcher.fetch(url, lambda ctype: ctype in ARTICLE_TYPES, config.max_bytes)
        run.fetched += 1
        run.bytes += result.bytes
        extra: dict[str, Any] = {}
        if result.ok and result.body is not None:
            key = url_key(url)
            args = (
                result.body,
                result.content_type or "",
                result.encoding,
                config.max_words,
                cache.text_path(key),
            )
            try:
                words, truncated = await extractor(*args)
            except BrokenProcessPool:
                extra.update(reason="extract_error", detail="the extraction worker crashed on this page")
            except Exception as exc:  # a page that breaks the parser is one failed URL
                log.warning("extraction failed for %s: %r", url, exc)
                extra.update(reason="extract_error", detail=f"{type(exc).__name__}: {exc}"[:300])
            else:
                if words:
                    extra.update(words=words, truncated=truncated)
                else:
                    extra.update(reason="no_text", detail="no main text found")
        record = _record(url, result, **extra)
        if record["reason"] is not None:  # a retried URL that fails now has no text any more
            cache.text_path(record["key"]).unlink(missing_ok=True)
        records.append(record)
        if record["reason"] is None:
            run.ok += 1
            run.words += record["words"]
        else:
            run.failures[record["reason"]] += 1
        if on_done:
            on_done(record)

    async with Fetcher(config, resolver) as fetcher:
        await run_all(todo, config.concurrency, one)
