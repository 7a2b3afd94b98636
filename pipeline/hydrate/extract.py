"""Main text of an HTML page (trafilatura), capped in words. The HTML is only parsed, never rendered
or executed: trafilatura reads the tree with lxml and drops scripts, styles, navigation and ads."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
TEXT_TYPES = frozenset({"text/plain"})
ARTICLE_TYPES = HTML_TYPES | TEXT_TYPES
_WORD = re.compile(r"\S+")


def cap_words(text: str, max_words: int) -> tuple[str, int, bool]:
    """The text cut after `max_words` words (line breaks kept), its word count, and whether it was cut."""
    count = 0
    for match in _WORD.finditer(text):
        count += 1
        if count > max_words:
            return text[: match.start()].rstrip(), max_words, True
    return text, count, False


def extract_text(
    body: bytes, content_type: str, encoding: str | None, max_words: int
) -> tuple[str, int, bool]:
    """(text, words, truncated) of a fetched body; empty text when the page has no main text."""
    if content_type in TEXT_TYPES:
        text = body.decode(encoding or "utf-8", errors="replace")
        text = "\n".join(line.strip() for line in text.splitlines() if line.strip())
    else:
        import trafilatura

        # Bytes go in undecoded: trafilatura reads the page's own charset declaration.
        text = (
            trafilatura.extract(
                body,
                include_comments=False,
                include_tables=True,
                include_images=False,
                include_links=False,
                favor_precision=True,
                fast=True,
                deduplicate=False,  # its cache spans documents: a second page repeating a first would come back empty
            )
            or ""
        )
    return cap_words(text.strip(), max_words)


def extract_to_file(
    body: bytes, content_type: str, encoding: str | None, max_words: int, path: Path
) -> tuple[int, bool]:
    """`extract_text`, written beside `path` and renamed over it when there is text: (words, truncated).
    Runs in the extraction worker, so neither parsing nor file-system calls hold up the fetching loop."""
    text, words, truncated = extract_text(body, content_type, encoding, max_words)
    if not text:
        return 0, False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:8]}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return words, truncated


def extraction_pool(workers: int) -> Executor:
    """Processes for extraction (parsing is the CPU-bound part of hydration); 0 = one per core."""
    from pipeline.cpu import default_workers

    return ProcessPoolExecutor(
        max_workers=default_workers(workers, 1 << 30),
        mp_context=get_context("spawn"),
        initializer=_warm_up,
    )


class Extractor:
    """Runs `task` (default `extract_to_file`) in worker processes, or in a thread when `workers` < 0.

    A worker that dies (a parser crash on a hostile page) breaks the whole pool and every task in
    flight with it. The pool is started again for what follows, and each task caught in the break
    is tried once more on its own, in a one-off process, one at a time: innocent pages succeed, and
    only the page that crashes alone fails (BrokenProcessPool)."""

    def __init__(
        self,
        workers: int,
        executor: Executor | None = None,
        task: Callable[..., tuple[int, bool]] = extract_to_file,
    ):
        self.workers = workers
        self.task = task
        self.restarts = 0
        self._given = executor
        self._pool = executor
        self._alone: asyncio.Lock | None = None

    async def __call__(self, *args: Any) -> tuple[int, bool]:
        if self.workers < 0 and self._given is None:
            return await asyncio.to_thread(self.task, *args)
        if self._pool is None:
            self._pool = extraction_pool(max(self.workers, 0))
        pool = self._pool
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool, self.task, *args)
        except BrokenProcessPool:
            if self._pool is pool:  # the first task to notice replaces the pool
                self.restarts += 1
                self._pool = None
                if pool is not self._given:
                    pool.shutdown(wait=False, cancel_futures=True)
        self._alone = self._alone or asyncio.Lock()
        async with self._alone:
            one_off = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
            try:
                return await loop.run_in_executor(one_off, self.task, *args)
            finally:
                one_off.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._pool is not None and self._pool is not self._given:
            self._pool.shutdown(cancel_futures=True)
        self._pool = None


def _warm_up() -> None:
    import trafilatura  # noqa: F401 (import once per worker, not in the first task's time)
