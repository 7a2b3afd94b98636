"""The one dataset writer: Hugging Face dataset folders (Parquet shards + a dataset card), written atomically.

A dataset folder looks like what `datasets.load_dataset(path)` and the Hub expect:

    README.md                          the card: YAML metadata (configs, features, splits, license, ...) + prose
    data/train-00000-of-00002.parquet  each split, sharded
    data/test-00000-of-00001.parquet

Rows stream in batches (`add`), so a dataset larger than memory can be written. The
folder is built beside its destination and renamed into place at `close`, so a reader
never sees a half-written dataset and an interrupted build leaves the old one intact.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.datasets.card import CardSpec, SplitInfo, render_card
from pipeline.store.atomic import fsync_dir, fsync_file

DEFAULT_SHARD_ROWS = 250_000


@dataclass
class _Split:
    name: str
    shards: list[Path] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    writer: pq.ParquetWriter | None = None
    writer_rows: int = 0


class DatasetWriter:
    """Write one dataset folder: `add` batches per split, then `close` with a card."""

    def __init__(self, destination: Path, schema: pa.Schema, *, shard_rows: int = DEFAULT_SHARD_ROWS):
        self.destination = Path(destination)
        self.schema = schema
        self.shard_rows = shard_rows
        self.destination.parent.mkdir(parents=True, exist_ok=True)
        self._work = self.destination.parent / f".{self.destination.name}.{uuid.uuid4().hex[:8]}.tmp"
        (self._work / "data").mkdir(parents=True)
        self._splits: dict[str, _Split] = {}
        self._closed = False

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.abort()

    def add(self, split: str, rows: pa.Table | pa.RecordBatch | Iterable[Mapping[str, Any]]) -> None:
        """Append rows (a table, a record batch, or dicts in schema order) to a split."""
        table = self._as_table(rows)
        if table.num_rows == 0:
            self._splits.setdefault(split, _Split(split))
            return
        state = self._splits.setdefault(split, _Split(split))
        offset = 0
        while offset < table.num_rows:
            if state.writer is None or state.writer_rows >= self.shard_rows:
                self._roll(state)
            assert state.writer is not None
            take = min(table.num_rows - offset, self.shard_rows - state.writer_rows)
            state.writer.write_table(table.slice(offset, take))
            state.writer_rows += take
            state.rows += take
            offset += take

    def _as_table(self, rows: pa.Table | pa.RecordBatch | Iterable[Mapping[str, Any]]) -> pa.Table:
        if isinstance(rows, pa.RecordBatch):
            rows = pa.Table.from_batches([rows])
        if isinstance(rows, pa.Table):
            return rows.select(self.schema.names).cast(self.schema)
        return pa.Table.from_pylist(list(rows), schema=self.schema)

    def _roll(self, state: _Split) -> None:
        if state.writer is not None:
            state.writer.close()
        path = self._work / "data" / f"{state.name}-{len(state.shards):05d}.parquet"
        state.shards.append(path)
        state.writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        state.writer_rows = 0

    def abort(self) -> None:
        for state in self._splits.values():
            if state.writer is not None:
                state.writer.close()
        shutil.rmtree(self._work, ignore_errors=True)
        self._closed = True

    def close(self, card: CardSpec) -> dict[str, SplitInfo]:
        """Finish the shards, write the card, and move the folder into place atomically."""
        if self._closed:
            raise RuntimeError("writer already closed")
        infos: dict[str, SplitInfo] = {}
        for state in self._splits.values():
            if state.writer is not None:
                state.writer.close()
                state.writer = None
            if not state.shards:  # datasets cannot load a split of zero rows: an empty split is left out
                continue
            total = len(state.shards)
            for index, path in enumerate(state.shards):
                final = path.with_name(f"{state.name}-{index:05d}-of-{total:05d}.parquet")
                path.rename(final)
                state.bytes += final.stat().st_size
                fsync_file(final)
            infos[state.name] = SplitInfo(name=state.name, num_examples=state.rows, num_bytes=state.bytes)
        (self._work / "README.md").write_text(render_card(card, self.schema, list(infos.values())))
        fsync_file(self._work / "README.md")
        fsync_dir(self._work / "data")
        fsync_dir(self._work)
        self._replace_destination()
        self._closed = True
        return infos

    def _replace_destination(self) -> None:
        old = None
        if self.destination.exists():
            old = self.destination.parent / f".{self.destination.name}.{uuid.uuid4().hex[:8]}.old"
            os.rename(self.destination, old)
        os.rename(self._work, self.destination)
        fsync_dir(self.destination.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def write_dataset(
    destination: Path,
    schema: pa.Schema,
    splits: Mapping[str, pa.Table | Iterable[Mapping[str, Any]]],
    card: CardSpec,
    *,
    shard_rows: int = DEFAULT_SHARD_ROWS,
) -> dict[str, SplitInfo]:
    """Write a whole dataset at once (for data that fits in memory)."""
    with DatasetWriter(destination, schema, shard_rows=shard_rows) as writer:
        for name, rows in splits.items():
            writer.add(name, rows)
        return writer.close(card)
