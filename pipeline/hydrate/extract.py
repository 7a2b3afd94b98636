"""Main text of an HTML page (trafilatura), capped in words. The HTML is only parsed, never rendered
or executed: trafilatura reads the tree with lxml and drops scripts, styles, navigation and ads."""

from __future__ import annotations

import os
import re
import tempfile
from concurrent.futures import Executor, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

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


def extraction_pool(workers: int) -> Executor | None:
    """Processes for extraction (parsing is the CPU-bound part of hydration); None runs it in a thread."""
    if workers < 0:
        return None
    from pipeline.cpu import default_workers

    return ProcessPoolExecutor(
        max_workers=default_workers(workers, 1 << 30),
        mp_context=get_context("spawn"),
        initializer=_warm_up,
    )


def _warm_up() -> None:
    import trafilatura  # noqa: F401 (import once per worker, not in the first task's time)
