"""Hydration statistics from the record logs: success rates, bytes, words, failures by reason.
They go into `personas hydrate stats`, the dataset cards and the build report."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from pipeline.hydrate.cache import ArticleCache
from pipeline.hydrate.images import RECORDS, images_folder
from pipeline.hydrate.records import iter_records


class HydrationStats(BaseModel):
    urls_total: int = 0
    urls_ok: int = 0
    url_words: int = 0
    urls_truncated: int = 0
    url_bytes: int = 0
    url_failures: dict[str, int] = Field(default_factory=dict)
    images_total: int = 0
    images_ok: int = 0
    image_bytes: int = 0
    image_failures: dict[str, int] = Field(default_factory=dict)

    @property
    def url_success_rate(self) -> float:
        return self.urls_ok / self.urls_total if self.urls_total else 0.0

    @property
    def image_success_rate(self) -> float:
        return self.images_ok / self.images_total if self.images_total else 0.0

    @property
    def ran(self) -> bool:
        return bool(self.urls_total or self.images_total)

    def as_dict(self) -> dict[str, Any]:
        """Flat, ordered measures for cards and the report (keys `urls_total` and `urls_ok` feed its plot)."""
        out: dict[str, Any] = {
            "urls_total": self.urls_total,
            "urls_ok": self.urls_ok,
            "url_success_rate": round(self.url_success_rate, 4),
            "url_words": self.url_words,
            "urls_truncated": self.urls_truncated,
            "url_bytes": self.url_bytes,
        }
        out.update({f"url_failures: {k}": v for k, v in sorted(self.url_failures.items())})
        out.update(
            images_total=self.images_total,
            images_ok=self.images_ok,
            image_success_rate=round(self.image_success_rate, 4),
            image_bytes=self.image_bytes,
        )
        out.update({f"image_failures: {k}": v for k, v in sorted(self.image_failures.items())})
        return out


def hydration_stats(root: Path) -> HydrationStats:
    stats = HydrationStats()
    url_failures: Counter[str] = Counter()
    for record in _latest(ArticleCache(root).records_path, ("reason", "bytes", "words", "truncated")):
        stats.urls_total += 1
        stats.url_bytes += record.get("bytes") or 0
        if record.get("reason") is None:
            stats.urls_ok += 1
            stats.url_words += record.get("words") or 0
            stats.urls_truncated += bool(record.get("truncated"))
        else:
            url_failures[str(record["reason"])] += 1
    image_failures: Counter[str] = Counter()
    for record in _latest(images_folder(root) / RECORDS, ("reason", "bytes")):
        stats.images_total += 1
        if record.get("reason") is None:
            stats.images_ok += 1
            stats.image_bytes += record.get("bytes") or 0
        else:
            image_failures[str(record["reason"])] += 1
    stats.url_failures = dict(url_failures)
    stats.image_failures = dict(image_failures)
    return stats


def _latest(path: Path, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """The latest record per key, keeping only `fields` (a record log can hold millions of lines)."""
    latest: dict[Any, dict[str, Any]] = {}
    for record in iter_records(path):
        key = record.get("key")
        latest[tuple(key) if isinstance(key, list) else key] = {f: record.get(f) for f in fields}
    return list(latest.values())
