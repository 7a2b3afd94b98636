"""The article cache: extracted text addressed by the SHA-256 of the normalized URL, one record per URL.

    <root>/articles/records.jsonl          one JSON line per fetched URL (latest wins): status, content
                                           type, final URL, words, bytes, failure reason
    <root>/articles/texts/ab/abcd….txt     the extracted text (UTF-8), for records with reason null

A URL with a record is never fetched again (a re-run resumes with the rest), unless asked to retry
failures. `HydratedReferences` serves the texts to the dataset builder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.hydrate.fetch import normalize_url
from pipeline.hydrate.records import read_records

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
        """key -> latest record."""
        return read_records(self.records_path, "key")

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

    Pickled into the builder's worker processes, so it holds only paths and numbers; each process
    loads the set of extracted keys once, on first use, and reads texts per lookup."""

    def __init__(self, root: Path, max_words: int = 200):
        self.root = Path(root)
        self.max_words = max_words
        self._ok: frozenset[str] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "max_words": self.max_words, "_ok": None}

    def _extracted(self) -> frozenset[str]:
        if self._ok is None:
            records = ArticleCache(self.root).records()
            self._ok = frozenset(k for k, r in records.items() if r.get("reason") is None)
        return self._ok

    def lookup(self, urls: Sequence[str]) -> dict[str, str]:
        if self.max_words <= 0:
            return {}
        cache = ArticleCache(self.root)
        extracted = self._extracted()
        found: dict[str, str] = {}
        for url in urls:
            try:
                key = url_key(normalize_url(url))
            except ValueError:
                continue
            if key not in extracted:
                continue
            text = cache.read_text(key)
            if text:
                found[url] = _first_words(neutralize(text), self.max_words)
        return found


def _first_words(text: str, n: int) -> str:
    words = text.split(" ")
    return text if len(words) <= n else " ".join(words[:n]) + " …"
