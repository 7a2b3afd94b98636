"""The official X/Twitter export: a zip or folder of `data/*.js` files.

Each file is `window.YTD.<name>.part<N> = [ ... ]`. The export is assembled into
the archive.json shape (as the Community Archive's uploader does) and normalized
by the same code, so both sources give identical records.
"""

from __future__ import annotations

import functools
import hashlib
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.sources.archive_json import parse_json_bytes
from pipeline.sources.archive_schema import SECTIONS as DOC_SECTIONS
from pipeline.sources.archive_schema import ArchiveDoc, decode_section
from pipeline.sources.base import AccountArchive, Problems, SourceError, check_digest
from pipeline.sources.normalize import RecordError, normalize_archive, parse_iso_time

SOURCE = "twitter-export"

# data file stem (without -partN) -> archive.json key
SECTIONS = {
    "account": "account",
    "profile": "profile",
    "tweets": "tweets",
    "tweet": "tweets",
    "note-tweet": "note-tweet",
    "community-tweet": "community-tweet",
    "like": "like",
    "follower": "follower",
    "following": "following",
}
_DATA_FILE = re.compile(r"^(?P<stem>[a-z-]+?)(?:-part(?P<part>\d+))?\.js$")
MAX_MEMBER_BYTES = 4 << 30
"""A zip member claiming more than this is refused rather than read into memory."""


def ytd_body(data: bytes, origin: str) -> bytes:
    """The JSON part of `window.YTD.x.part0 = [...]` (or `window.__THAR_CONFIG = {...}`)."""
    starts = [i for i in (data.find(b"["), data.find(b"{")) if i >= 0]
    if not starts:
        raise SourceError(origin, "no JSON array or object in file")
    return data[min(starts) :]


def parse_ytd(data: bytes, origin: str) -> Any:
    return parse_json_bytes(ytd_body(data, origin), origin)


class _Reader:
    """Lists and reads the files of an export, from a folder or a zip."""

    def __init__(self, path: Path):
        self.path = path
        self.names: dict[str, Callable[[], bytes]] = {}
        if path.is_dir():
            data_dir = path / "data" if (path / "data").is_dir() else path
            if not any(data_dir.glob("*.js")):
                raise SourceError(str(path), "no data/*.js files: not an X/Twitter export folder")
            for file in data_dir.glob("*.js"):
                self.names[file.name] = file.read_bytes
        elif zipfile.is_zipfile(path):
            self._open_zip(path)
        elif path.exists():
            raise SourceError(str(path), "neither a folder nor a zip file")
        else:
            raise SourceError(str(path), "no such file or folder")

    def _open_zip(self, path: Path) -> None:
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise SourceError(str(path), f"unreadable zip ({exc})") from exc
        members = [m for m in archive.infolist() if not m.is_dir()]
        data_members = [m for m in members if re.search(r"(^|/)data/[^/]+\.js$", m.filename)]
        if not data_members:
            raise SourceError(str(path), "zip has no data/ folder with .js files: not an X/Twitter export")
        # The shallowest data/ folder is the export's (zips often wrap everything in a top folder).
        prefix = min((m.filename.rsplit("data/", 1)[0] for m in data_members), key=len)
        for member in data_members:
            if not member.filename.startswith(prefix + "data/") or "/" in member.filename[len(prefix) + 5 :]:
                continue
            if member.file_size > MAX_MEMBER_BYTES:
                raise SourceError(str(path), f"{member.filename} claims {member.file_size} bytes; refusing")
            self.names[member.filename.rsplit("/", 1)[-1]] = functools.partial(archive.read, member)


def read_export(
    path: Path, problems: Problems, known: frozenset[str] = frozenset()
) -> tuple[ArchiveDoc, int | None, str]:
    """The export as an archive document, its generation time (ms) when manifest.js has it, and its digest.

    The digest covers the data files used, in name order; UnchangedInput when it is in `known`.
    """
    reader = _Reader(path)
    parts: dict[str, list[tuple[int, str]]] = {}
    for name in reader.names:
        match = _DATA_FILE.match(name)
        if match and match.group("stem") in SECTIONS:
            key = SECTIONS[match.group("stem")]
            parts.setdefault(key, []).append((int(match.group("part") or 0), name))
    if "tweets" not in parts:
        raise SourceError(str(path), "export has no tweets.js or tweet.js")
    if "account" not in parts:
        raise SourceError(str(path), "export has no account.js")
    used = sorted(name for files in parts.values() for _, name in files)
    used += ["manifest.js"] if "manifest.js" in reader.names else []
    contents = {name: reader.names[name]() for name in used}
    hasher = hashlib.sha256()
    for name in used:
        hasher.update(name.encode() + b"\0" + contents[name])
    digest = check_digest(str(path), hasher.hexdigest(), known)
    sections: dict[str, Any] = {}
    for key, files in parts.items():
        items: list[Any] = []
        for _, name in sorted(files):
            origin = f"{path}:{name}"
            body = ytd_body(contents[name], origin)
            decoded = decode_section(
                body, key, origin, problems, functools.partial(parse_json_bytes, origin=origin)
            )
            if decoded is None:
                raise SourceError(origin, "expected a JSON array of records")
            items.extend(decoded)
        sections[DOC_SECTIONS[key][0]] = items
    generated_ms = None
    if "manifest.js" in contents:
        manifest = parse_ytd(contents["manifest.js"], f"{path}:manifest.js")
        info = manifest.get("archiveInfo") if isinstance(manifest, dict) else None
        generated = info.get("generationDate") if isinstance(info, dict) else None
        if isinstance(generated, str):
            try:
                generated_ms = parse_iso_time(generated)
            except RecordError:
                problems.coerce("manifest.archiveInfo.generationDate", generated)
    return ArchiveDoc(**sections), generated_ms, digest


def load_twitter_export(path: Path, known: frozenset[str] = frozenset()) -> AccountArchive:
    problems = Problems(str(path))
    doc, generated_ms, digest = read_export(path, problems, known)
    return normalize_archive(
        doc, origin=str(path), source=SOURCE, snapshot_at_ms=generated_ms, problems=problems, digest=digest
    )


def discover_exports(paths: list[Path]) -> list[Path]:
    """Zips and export folders named directly, or found one level inside a folder of exports."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir() and not (path / "data").is_dir() and not any(path.glob("*.js")):
            found.extend(sorted(p for p in path.iterdir() if p.suffix == ".zip" or (p / "data").is_dir()))
        else:
            found.append(path)
    return found
