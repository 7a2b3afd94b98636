"""The article cache: extracted text addressed by the SHA-256 of the normalized URL, one record per URL.

    <root>/articles/records.jsonl          one JSON line per fetched URL (latest wins): status, content
                                           type, final URL, words, bytes, failure reason
    <root>/articles/texts/ab/abcd….txt     the extracted text (UTF-8), for records with reason null

A URL with a record is never fetched again (a re-run resumes with the rest), unless asked to retry
failures. A text file exists exactly when the URL's latest record is a success (a failure removes
an older file), so the file system is the lookup index: `HydratedReferences` serves the dataset
builder with one `open` per linked URL and loads nothing up front.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.hydrate.fetch import normalize_url
from pipeline.hydrate.records import iter_records, read_records

ARTICLES = "articles"
RECORDS = "records.jsonl"


def url_key(normalized_url: str) -> str:
    return hashlib.sha256(normalized_url.encode()).hexdigest()


class ArticleCache:
    def __init__(self, root: Path):
        self.folder = Path(root) / ARTICLES
        self.records_path = self.folder / RECORDS

    def text_path(self, key: str) -> Path:
        return self.folder / "texts" / key[:2] / f"{key}.txt"

    def records(self) -> dict[str, dict[str, Any]]:
        """key -> latest record (whole records: for tests and small caches)."""
        return read_records(self.records_path, "key")

    def outcomes(self) -> dict[str, str | None]:
        """key -> failure reason of the latest record (None: extracted), streamed: ~100 bytes per URL."""
        latest: dict[str, str | None] = {}
        for record in iter_records(self.records_path):
            key = record.get("key")
            if isinstance(key, str):
                latest[key] = record.get("reason")
        return latest

    def has_text(self, key: str) -> bool:
        """The text of an extracted record is there (a power cut can lose a file its record names)."""
        try:
            return self.text_path(key).stat().st_size > 0
        except FileNotFoundError:
            return False

    def read_text(self, key: str) -> str | None:
        try:
            return self.text_path(key).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None


def neutralize(text: str) -> str:
    """Article text safe inside `<ref>…</ref>`: whitespace collapsed, no tag can close or open the ref."""
    return " ".join(text.split()).replace("</ref", "</ ref").replace("<ref", "< ref")


class HydratedReferences:
    """Article text for expanded URLs, cut to `max_words` words per message.

    Pickled into the builder's worker processes, so it holds only a path and a number."""

    def __init__(self, root: Path, max_words: int = 200):
        self.root = Path(root)
        self.max_words = max_words

    def lookup(self, urls: Sequence[str]) -> dict[str, str]:
        if self.max_words <= 0:
            return {}
        cache = ArticleCache(self.root)
        found: dict[str, str] = {}
        for url in urls:
            try:
                key = url_key(normalize_url(url))
            except ValueError:
                continue
            text = cache.read_text(key)
            if text:
                found[url] = _first_words(neutralize(text), self.max_words)
        return found


def _first_words(text: str, n: int) -> str:
    words = text.split(" ")
    return text if len(words) <= n else " ".join(words[:n]) + " …"
