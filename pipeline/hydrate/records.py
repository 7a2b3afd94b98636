"""Append-only record logs: one JSON line per finished item, made durable in batches, read back on resume.

A line is appended with a single `write` on an O_APPEND descriptor, so lines never interleave;
a crash can leave at most a torn last line, which readers skip (and the next writer cuts). Files
a record names are not fsynced one by one (that would cost more than fetching them): whoever
resumes checks that the file is there and redoes the item when a power cut lost it. A later line
for the same key supersedes an earlier one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)


def read_records(path: Path, key: str) -> dict[Any, dict[str, Any]]:
    """The latest record per `key` value; a torn or corrupt line is skipped (logged)."""
    latest: dict[Any, dict[str, Any]] = {}
    for record in iter_records(path):
        if key in record:
            latest[_hashable(record[key])] = record
    return latest


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        return
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.endswith(b"\n"):
                log.warning("%s: ignoring a torn last line (an interrupted run)", path)
                return
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                log.warning("%s:%d: ignoring an unreadable line", path, number)
                continue
            if isinstance(record, dict):
                yield record


class RecordLog:
    """Buffered appends to a record log; `commit` (also every `commit_every_s`) makes them durable."""

    def __init__(self, path: Path, commit_every_s: float = 1.0):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._heal_torn_tail()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lines: list[bytes] = []
        self.commit_every_s = commit_every_s
        self._last_commit = time.monotonic()

    def _heal_torn_tail(self) -> None:
        """Cut a torn last line (left by a crash) so that the next append starts on a fresh line."""
        if not self.path.is_file():
            return
        with open(self.path, "rb+") as handle:
            end = handle.seek(0, os.SEEK_END)
            if end == 0:
                return
            handle.seek(end - 1)
            if handle.read(1) == b"\n":
                return
            position = end
            while position > 0:  # scan back in chunks for the last complete line
                start = max(0, position - 65536)
                handle.seek(start)
                newline = handle.read(position - start).rfind(b"\n")
                if newline >= 0:
                    handle.truncate(start + newline + 1)
                    return
                position = start
            handle.truncate(0)

    def append(self, record: dict[str, Any]) -> None:
        self._lines.append(orjson.dumps(record) + b"\n")
        if time.monotonic() - self._last_commit >= self.commit_every_s:
            self.commit()

    def commit(self) -> None:
        if not self._lines:
            self._last_commit = time.monotonic()
            return
        os.write(self._fd, b"".join(self._lines))
        os.fsync(self._fd)
        self._lines.clear()
        self._last_commit = time.monotonic()

    def close(self) -> None:
        try:
            self.commit()
        finally:
            os.close(self._fd)

    def __enter__(self) -> RecordLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
