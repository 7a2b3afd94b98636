"""Community Archive `archive.json` files (the storage shape: one JSON object per account)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from pipeline.sources.archive_schema import decode_document
from pipeline.sources.base import AccountArchive, Problems, SourceError, check_digest
from pipeline.sources.normalize import normalize_archive

SOURCE = "archive"

# CA's uploader strips control characters before parsing; some real exports need it.
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def parse_json_bytes(data: bytes, origin: str) -> Any:
    """orjson first; on failure, once more with control characters stripped; then a clear error."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as first:
        cleaned = _CONTROL_BYTES.sub(b"", data)
        if cleaned != data:
            try:
                return orjson.loads(cleaned)
            except orjson.JSONDecodeError:
                pass
        if not data.strip():
            raise SourceError(origin, "empty file") from first
        raise SourceError(origin, f"invalid JSON ({first}); is the file truncated?") from first


def load_archive_json(path: Path, known: frozenset[str] = frozenset()) -> AccountArchive:
    """Read, decode and normalize one archive.json; UnchangedInput when its SHA-256 is in `known`."""
    origin = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(origin, f"cannot read: {exc.strerror or exc}") from exc
    digest = check_digest(origin, hashlib.sha256(data).hexdigest(), known)
    problems = Problems(origin)
    doc = decode_document(data, origin, problems, lambda raw: parse_json_bytes(raw, origin))
    return normalize_archive(doc, origin=origin, source=SOURCE, problems=problems, digest=digest)


def discover_files(paths: Iterable[Path], pattern: str = "*.json") -> list[Path]:
    """Files named directly, plus those matching `pattern` under directories (sorted, deduplicated).

    Hidden files inside directories (such as a synthetic corpus's `.synth.json`) are not archives.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
        if path.is_dir():
            candidates = sorted(p for p in path.rglob(pattern) if p.is_file() and not p.name.startswith("."))
        else:
            candidates = [path]
        for candidate in candidates:
            resolved = candidate.resolve()
            if resolved not in seen:
                seen.add(resolved)
                found.append(candidate)
    return found
